import { Hono } from "hono";
import { INTERNAL_DOCS } from "../../lib/docs/catalog.ts";
import { docLibrary, docResponse, type ShellOptions } from "./_shared.tsx";

const internalDocs = docLibrary(INTERNAL_DOCS);
const SHELL: ShellOptions = { section: "Internal", noindex: true };
// Operator pages: never kept by shared caches.
const CACHE = "private, no-store";

/**
 * The operators' handbook (Markdown from docs/internal/). It has no
 * authentication of its own: mount it behind the operator session, at
 * `basePath` (default /internal), e.g. `app.route("/internal", internalDocsRoutes())`.
 */
export function internalDocsRoutes(opts: { basePath?: string } = {}) {
  const library = opts.basePath && opts.basePath !== INTERNAL_DOCS.basePath
    ? docLibrary({ ...INTERNAL_DOCS, basePath: opts.basePath })
    : internalDocs;
  const app = new Hono();
  app.get("/", (c) => docResponse(c, library, "", SHELL, CACHE));
  app.get("/:slug{[a-z0-9-]+}", (c) => docResponse(c, library, c.req.param("slug"), SHELL, CACHE));
  app.get("*", (c) => {
    if (c.req.path === `${library.href("")}/`) return c.redirect(library.href(""), 301);
    return docResponse(c, library, "/", SHELL, CACHE);
  });
  return app;
}
