import type { ComponentChildren } from "preact";
import type { DocPage, NavItem } from "../lib/docs/library.ts";
import type { Heading } from "../lib/docs/markdown.ts";

export interface DocsShellProps {
  /** The page's own title; the site name is appended. */
  title: string;
  /** "Docs" or "Internal": shown next to the brand and in the tab title. */
  section: string;
  homeHref: string;
  nav: NavItem[];
  currentSlug: string | null;
  /** Sections of the current page, listed under its navigation entry. */
  headings?: Heading[];
  /** Links under the navigation (e.g. the OpenAPI document). */
  extraLinks?: { href: string; label: string }[];
  /** Operators' pages are kept out of search engines. */
  noindex?: boolean;
  children: ComponentChildren;
}

/**
 * The documentation layout: navigation beside the content on wide screens,
 * above it on phones. Server-rendered, no script, styles from /static only.
 */
export function DocsShell(props: DocsShellProps) {
  const sections = (props.headings ?? []).filter((h) => h.depth === 2);
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        {props.noindex && <meta name="robots" content="noindex, nofollow" />}
        <title>{`${props.title} · AimbrellaPay ${props.section}`}</title>
        <link rel="stylesheet" href="/static/style.css" />
        <link rel="stylesheet" href="/static/docs.css" />
      </head>
      <body class="docs">
        <a class="skip-link" href="#content">Skip to content</a>
        <header class="docs-header">
          <a class="docs-brand" href={props.homeHref}>
            AimbrellaPay <span class="docs-section">{props.section}</span>
          </a>
        </header>
        <div class="docs-layout">
          <nav class="docs-nav" aria-label={`${props.section} pages`}>
            <ul>
              {props.nav.map((item) => {
                const current = item.slug === props.currentSlug;
                return (
                  <li key={item.href}>
                    <a href={item.href} aria-current={current ? "page" : undefined}>{item.label}</a>
                    {current && sections.length >= 3 && (
                      <ul class="docs-toc">
                        {sections.map((h) => (
                          <li key={h.id}>
                            <a href={`#${h.id}`}>{h.text}</a>
                          </li>
                        ))}
                      </ul>
                    )}
                  </li>
                );
              })}
            </ul>
            {props.extraLinks && props.extraLinks.length > 0 && (
              <ul class="docs-extra">
                {props.extraLinks.map((l) => (
                  <li key={l.href}>
                    <a href={l.href}>{l.label}</a>
                  </li>
                ))}
              </ul>
            )}
          </nav>
          <main id="content" class="docs-content">
            <article>{props.children}</article>
          </main>
        </div>
      </body>
    </html>
  );
}

/** A Markdown page. Its HTML comes from lib/docs/markdown.ts, which escapes everything it did not build itself. */
export function DocsArticle(props: { page: DocPage }) {
  return <div class="prose" dangerouslySetInnerHTML={{ __html: props.page.html }} />;
}

/** The docs' own 404: the navigation stays, so the reader can find their way. */
export function DocsNotFound(props: { homeHref: string }) {
  return (
    <div class="prose">
      <h1>Page not found</h1>
      <p>There is no documentation page at this address. It may have moved: pick a page from the list.</p>
      <p>
        <a href={props.homeHref}>Back to the overview</a>
      </p>
    </div>
  );
}
