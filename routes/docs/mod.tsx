import { Hono } from "hono";
import { ApiReference } from "../../components/docs_api_reference.tsx";
import { DocsShell } from "../../components/docs.tsx";
import { PUBLIC_DOCS } from "../../lib/docs/catalog.ts";
import { buildOpenApi, type OpenApiDocument, type OpenApiOptions } from "../../lib/docs/openapi.ts";
import { docLibrary, docResponse, render, type ShellOptions } from "./_shared.tsx";

/** One library per process: the files are read and rendered once, whatever number of apps is built. */
const publicDocs = docLibrary(PUBLIC_DOCS);
const SHELL: ShellOptions = {
  section: "Docs",
  extraLinks: [{ href: "/openapi.json", label: "OpenAPI document (JSON)" }],
};
const CACHE = "public, max-age=300";

/**
 * The public documentation at /docs (Markdown from docs/public/ plus the API
 * reference generated from the OpenAPI document) and the document itself at
 * /openapi.json. Mount at "/".
 */
export function publicDocsRoutes(opts: OpenApiOptions) {
  const app = new Hono();
  let spec: OpenApiDocument | undefined;
  const openApi = () => (spec ??= buildOpenApi(opts));

  app.get("/openapi.json", (c) => {
    // Public and static: tools (editors, generators) may fetch it from other origins.
    c.header("access-control-allow-origin", "*");
    c.header("cache-control", CACHE);
    return c.json(openApi());
  });
  app.get("/docs", (c) => docResponse(c, publicDocs, "", SHELL, CACHE));
  app.get("/docs/", (c) => c.redirect("/docs", 301));
  app.get("/docs/api-reference", (c) => {
    c.header("cache-control", CACHE);
    return c.html(render(
      <DocsShell {...SHELL} title="API reference" homeHref="/docs" nav={publicDocs.nav()} currentSlug="api-reference">
        <ApiReference spec={openApi()} specHref="/openapi.json" />
      </DocsShell>,
    ));
  });
  // A static path per page of the catalog, not `/docs/:slug`: a parameter beside `/docs/api-reference` would put
  // every route of the app on Hono's slower router. Any other path under /docs gets the designed 404 below.
  for (const { slug, file } of PUBLIC_DOCS.entries) {
    if (file && slug !== "") {
      app.get(`/docs/${slug}`, (c) => docResponse(c, publicDocs, slug, SHELL, CACHE));
    }
  }
  app.get("/docs/*", (c) => docResponse(c, publicDocs, "/", SHELL, CACHE));
  return app;
}
