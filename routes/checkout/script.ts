import { type Context, Hono } from "hono";
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

let built: BuiltScript | null | undefined;

/** static/checkout.js as built by `deno task build`, read once (it changes only with a deploy); null when not built. */
function loadScript(): BuiltScript | null {
  if (built === undefined) {
    try {
      const body = Deno.readFileSync(SCRIPT_FILE);
      built = { body, version: sha256Hex(new TextDecoder().decode(body)).slice(0, 12) };
    } catch {
      built = null;
    }
  }
  return built;
}

/** The versioned path of checkout.js (long-cached), or the plain one when the script is not built. */
export function checkoutScriptPath(): string {
  const script = loadScript();
  return script ? `/checkout.${script.version}.js` : "/checkout.js";
}

/**
 * `/checkout.js` (short cache) and `/checkout.<version>.js` (cached for a year): the embed script shops
 * load from their own pages. Registered before the page middlewares: it is a cross-origin script, so it
 * needs `Cross-Origin-Resource-Policy: cross-origin` rather than the pages' same-origin.
 *
 * Both are static paths (an older version is simply not found): a parameter at the root beside the app's static
 * paths would put every route of the app on Hono's slower router.
 */
export function checkoutScriptRoutes() {
  const app = new Hono();
  const script = loadScript();
  const serve = (c: Context, cacheControl: string) =>
    script
      ? c.body(script.body, 200, {
        "content-type": "text/javascript; charset=utf-8",
        "cache-control": cacheControl,
        "cross-origin-resource-policy": "cross-origin",
        "x-content-type-options": "nosniff",
      })
      : c.text("Not found.", 404, { "cache-control": "no-store" });
  app.get("/checkout.js", (c) => serve(c, `public, max-age=${PLAIN_MAX_AGE_S}`));
  if (script) app.get(`/checkout.${script.version}.js`, (c) => serve(c, IMMUTABLE));
  return app;
}
