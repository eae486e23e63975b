import type { Context } from "hono";
import { renderToString } from "preact-render-to-string";
import type { VNode } from "preact";
import { DocsArticle, DocsNotFound, DocsShell, type DocsShellProps } from "../../components/docs.tsx";
import { SequenceDiagram } from "../../components/docs_diagram.tsx";
import { DocLibrary, type DocSet } from "../../lib/docs/library.ts";
import { parseSequence } from "../../lib/docs/sequence.ts";
import { InvoiceCoinsTable, InvoiceStatusTable } from "../../components/invoice_docs.tsx";

/** Fenced `sequence` blocks become inline SVG diagrams, rendered (and escaped) by Preact; invoice tables likewise. */
export function docLibrary(set: DocSet): DocLibrary {
  return new DocLibrary(set, {
    blocks: {
      sequence: (source) =>
        renderToString(<SequenceDiagram diagram={parseSequence(source)} id={`seq-${shortHash(source)}`} />),
      // Tables drawn from the lists the invoice code runs on.
      "invoice-coins": () => renderToString(<InvoiceCoinsTable />),
      "invoice-statuses": () => renderToString(<InvoiceStatusTable />),
    },
  });
}

function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(36);
}

export type ShellOptions = Pick<DocsShellProps, "section" | "extraLinks" | "noindex">;

/** Answers one page of a doc set: the Markdown page for the slug, or the set's designed 404. */
export async function docResponse(
  c: Context,
  library: DocLibrary,
  slug: string,
  shell: ShellOptions,
  cacheControl: string,
): Promise<Response> {
  const page = await library.page(slug);
  const home = library.href("");
  c.header("cache-control", cacheControl);
  if (!page) {
    return c.html(
      render(
        <DocsShell {...shell} title="Page not found" homeHref={home} nav={library.nav()} currentSlug={null}>
          <DocsNotFound homeHref={home} />
        </DocsShell>,
      ),
      404,
    );
  }
  return c.html(
    render(
      <DocsShell
        {...shell}
        title={page.title}
        homeHref={home}
        nav={library.nav()}
        currentSlug={slug}
        headings={page.headings}
      >
        <DocsArticle page={page} />
      </DocsShell>,
    ),
  );
}

export function render(vnode: VNode): string {
  return "<!doctype html>" + renderToString(vnode);
}
