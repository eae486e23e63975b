import type { Context, MiddlewareHandler } from "hono";

/** Strict-Transport-Security for https deployments: two years with subdomains, the value preload lists ask for. */
export const HSTS = "max-age=63072000; includeSubDomains";

/** What each response's page said about being framed: absent = by nobody, the default for every page. */
const framers = new WeakMap<Request, string[]>();

/**
 * Lets `origins` frame this one response (a shop's buyer page: embedded checkout, a form). Every other
 * answer keeps `frame-ancestors 'none'`. An empty list changes nothing.
 */
export function allowFraming(c: Context, origins: readonly string[]) {
  if (origins.length) framers.set(c.req.raw, [...origins]);
}

/** Pages that frame other pages (besides the configured Metabase): the sources their frame-src lists. */
const frameSources = new WeakMap<Request, string[]>();

/** Lets this one page frame `sources` (the demo shop's page framing our own checkout: `'self'`). */
export function allowFrameSources(c: Context, sources: readonly string[]) {
  if (sources.length) frameSources.set(c.req.raw, [...sources]);
}

/** Pages that a window they opened, or that opened them, must still reach (the checkout's payment popup). */
const keepsOpener = new WeakSet<Request>();
/** Pages whose framed checkout opens the payment popup: `same-origin` would cut that popup off from the frame. */
const opensPopups = new WeakSet<Request>();

/**
 * Lets the popups this page's frames open keep their tie to them (`Cross-Origin-Opener-Policy:
 * same-origin-allow-popups`): what a shop's page that embeds the checkout needs, the demo shop's included.
 */
export function allowPopups(c: Context) {
  opensPopups.add(c.req.raw);
}

/**
 * Lets this one response keep its tie to the window that opened it: no `Cross-Origin-Opener-Policy:
 * same-origin`, which would cut a popup off from the shop's framed checkout that opened it.
 */
export function allowOpener(c: Context) {
  keepsOpener.add(c.req.raw);
}

/**
 * Registered outside `secureHeaders` (which writes its headers on the way out), so it can rewrite them:
 * a page that called `allowFraming` gets its shop's origins in `frame-ancestors` and no X-Frame-Options
 * (whose SAMEORIGIN would forbid the shop's page; browsers that know CSP ignore it anyway).
 */
export const framingPolicy: MiddlewareHandler = async (c, next) => {
  await next();
  if (keepsOpener.has(c.req.raw)) c.res.headers.set("cross-origin-opener-policy", "unsafe-none");
  else if (opensPopups.has(c.req.raw)) c.res.headers.set("cross-origin-opener-policy", "same-origin-allow-popups");
  const sources = frameSources.get(c.req.raw);
  const policy = c.res.headers.get("content-security-policy");
  if (sources && policy) {
    c.res.headers.set("content-security-policy", policy.replace(/frame-src [^;]*/, `frame-src ${sources.join(" ")}`));
  }
  const origins = framers.get(c.req.raw);
  if (!origins) return;
  const csp = c.res.headers.get("content-security-policy");
  if (csp) {
    c.res.headers.set(
      "content-security-policy",
      csp.replace(/frame-ancestors [^;]*/, `frame-ancestors ${origins.join(" ")}`),
    );
  }
  c.res.headers.delete("x-frame-options");
};
