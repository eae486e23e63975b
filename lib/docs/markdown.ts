import { Marked, type Tokens } from "marked";

/**
 * Markdown to HTML for the documentation pages. The files are ours, but the
 * renderer treats them as untrusted anyway: raw HTML is shown as text, link
 * and image targets are limited to safe schemes, every attribute and code
 * block is escaped. Fenced blocks in `blocks` languages (diagrams) are handed
 * to their renderer, which must return safe HTML itself.
 */
export interface MarkdownOptions {
  /** Renderers for fenced blocks by language, e.g. `sequence` diagrams. They must return escaped HTML. */
  blocks?: Record<string, (source: string) => string>;
  /**
   * Maps a relative link (`postbacks.md#verify`, `../architecture.md`) to its
   * address on the site; null keeps the link's text without a link.
   */
  resolveLink?: (href: string) => string | null;
}

export interface Heading {
  depth: number;
  id: string;
  text: string;
}

export interface RenderedMarkdown {
  html: string;
  /** The text of the first level-1 heading, or "" without one. */
  title: string;
  headings: Heading[];
}

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for HTML content and double- or single-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/** A heading's anchor: lower case, words joined by hyphens. */
export function slugify(text: string): string {
  return text.toLowerCase().normalize("NFKD").replace(/[^\p{L}\p{N}\s-]/gu, "").trim().replace(/[\s-]+/g, "-") ||
    "section";
}

/**
 * A link target we are willing to emit, or null. Browsers drop tabs and
 * newlines inside URLs ("java\tscript:"), so those go first; then only http,
 * https and mailto may carry a scheme, and anything else without a scheme is
 * relative to us.
 */
export function safeHref(raw: string): string | null {
  // deno-lint-ignore no-control-regex
  const href = raw.replace(/[\u0000-\u0020\u007f]/g, "");
  if (href === "" || href.startsWith("//") || href.startsWith("\\")) return null;
  const scheme = href.match(/^([a-z][a-z0-9+.-]*):/i);
  if (scheme) return ["http", "https", "mailto"].includes(scheme[1].toLowerCase()) ? href : null;
  return href;
}

/** Renders one Markdown document. Pure: the same input always gives the same HTML. */
export function renderMarkdown(source: string, opts: MarkdownOptions = {}): RenderedMarkdown {
  const headings: Heading[] = [];
  const usedIds = new Map<string, number>();
  const uniqueId = (text: string) => {
    const base = slugify(text);
    const n = (usedIds.get(base) ?? 0) + 1;
    usedIds.set(base, n);
    return n === 1 ? base : `${base}-${n}`;
  };
  const resolve = (href: string): string | null => {
    const safe = safeHref(href);
    if (safe === null) return null;
    if (/^(https?|mailto):/i.test(safe) || safe.startsWith("#") || safe.startsWith("/")) return safe;
    return opts.resolveLink ? opts.resolveLink(safe) : safe;
  };

  const marked = new Marked({
    gfm: true,
    async: false,
    renderer: {
      html(token: Tokens.HTML | Tokens.Tag) {
        // Raw HTML is never passed through: it shows as the text it is.
        const text = escapeHtml(token.text);
        return token.block ? `<p>${text}</p>\n` : text;
      },
      code({ text, lang }: Tokens.Code) {
        const language = (lang ?? "").match(/^\S*/)?.[0] ?? "";
        const block = opts.blocks?.[language];
        if (block) return block(text) + "\n";
        const cls = /^[a-z0-9_+-]+$/i.test(language) ? ` class="language-${language.toLowerCase()}"` : "";
        return `<pre><code${cls}>${escapeHtml(text.replace(/\n$/, ""))}\n</code></pre>\n`;
      },
      heading({ tokens, depth }: Tokens.Heading) {
        const inner = this.parser.parseInline(tokens);
        const text = this.parser.parseInline(tokens, this.parser.textRenderer);
        const id = uniqueId(text);
        headings.push({ depth, id, text });
        return `<h${depth} id="${escapeHtml(id)}">${inner}</h${depth}>\n`;
      },
      link({ href, title, tokens }: Tokens.Link) {
        const inner = this.parser.parseInline(tokens);
        const target = resolve(href);
        if (target === null) return `<span class="dead-link">${inner}</span>`;
        const external = /^https?:/i.test(target);
        const attrs = [
          `href="${escapeHtml(target)}"`,
          title ? `title="${escapeHtml(title)}"` : "",
          external ? `rel="noopener noreferrer"` : "",
        ].filter(Boolean).join(" ");
        return `<a ${attrs}>${inner}</a>`;
      },
      image({ href, title, text }: Tokens.Image) {
        // Images only from our own origin (the Content-Security-Policy allows nothing else anyway).
        const target = safeHref(href);
        if (target === null || !target.startsWith("/")) return escapeHtml(text);
        const t = title ? ` title="${escapeHtml(title)}"` : "";
        return `<img src="${escapeHtml(target)}" alt="${escapeHtml(text)}"${t}>`;
      },
    },
  });
  const html = marked.parse(source, { async: false });
  const title = headings.find((h) => h.depth === 1)?.text ?? "";
  return { html, title, headings };
}
