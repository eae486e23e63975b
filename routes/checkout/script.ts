import { Hono } from "hono";
import { sha256Hex } from "../../lib/crypto.ts";

const SCRIPT_FILE = new URL("../../static/checkout.js", import.meta.url);
/** The plain URL is what shops copy from the docs: a new release reaches them within this time. */
const PLAIN_MAX_AGE_S = 300;
const IMMUTABLE = "public, max-age=31536000, immutable";

interface BuiltScript {
  body: Uint8Array<ArrayBuffer>;
  /** The first 12 hex digits of its SHA-256: the versioned URL /checkout.<version>.js. */
  version: string;
}

let built: Promise<BuiltScript | null> | undefined;

/** static/checkout.js as built by `deno task build`, read once (it changes only with a deploy). */
function loadScript(): Promise<BuiltScript | null> {
  built ??= Deno.readFile(SCRIPT_FILE).then(
    (body) => ({ body, version: sha256Hex(new TextDecoder().decode(body)).slice(0, 12) }),
    () => null,
  );
  return built;
}

/** The versioned path of checkout.js (long-cached), or the plain one when the script is not built. */
export async function checkoutScriptPath(): Promise<string> {
  const script = await loadScript();
  return script ? `/checkout.${script.version}.js` : "/checkout.js";
}

/**
 * `/checkout.js` (short cache) and `/checkout.<version>.js` (cached for a year): the embed script shops
 * load from their own pages. Registered before the page middlewares: it is a cross-origin script, so it
 * needs `Cross-Origin-Resource-Policy: cross-origin` rather than the pages' same-origin.
 */
export function checkoutScriptRoutes() {
  const app = new Hono();
  app.get("/:file{checkout(\\.[0-9a-f]{12})?\\.js}", async (c) => {
    const script = await loadScript();
    const version = c.req.param("file").match(/^checkout\.([0-9a-f]{12})\.js$/)?.[1];
    if (!script || (version !== undefined && version !== script.version)) {
      return c.text("Not found.", 404, { "cache-control": "no-store" });
    }
    return c.body(script.body, 200, {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": version ? IMMUTABLE : `public, max-age=${PLAIN_MAX_AGE_S}`,
      "cross-origin-resource-policy": "cross-origin",
      "x-content-type-options": "nosniff",
    });
  });
  return app;
}
