import { Hono } from "hono";

const TYPES: Record<string, string> = {
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  svg: "image/svg+xml",
};
const STATIC_DIR = new URL("../static/", import.meta.url);

/** Serves files from static/ (read once, then kept in memory; the folder is small and immutable per deploy). */
export function staticRoutes() {
  const app = new Hono();
  const cache = new Map<string, Uint8Array<ArrayBuffer>>();
  app.get("/:name{[a-z0-9_.-]+}", async (c) => {
    const name = c.req.param("name");
    const type = TYPES[name.split(".").pop() ?? ""];
    if (!type || name.startsWith(".")) return c.notFound();
    let body = cache.get(name);
    if (!body) {
      try {
        body = await Deno.readFile(new URL(name, STATIC_DIR));
      } catch {
        return c.notFound();
      }
      cache.set(name, body);
    }
    return c.body(body, 200, { "content-type": type, "cache-control": "public, max-age=300" });
  });
  return app;
}
