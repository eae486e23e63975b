import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import type { AppContext } from "../lib/context.ts";
import { AppError, NotFoundError } from "../lib/errors.ts";
import { describeError, log } from "../lib/log.ts";
import { healthRoutes } from "./health.ts";
import { countRequests, metricsRoutes } from "./metrics.ts";
import type { DemoShop } from "../lib/demo.ts";
import type { Sandbox } from "../sandbox/bansky.tsx";
import type { ChainSimulator } from "../sandbox/chain.ts";
import { apiV1Routes, MAX_API_BODY_BYTES } from "./api/v1.ts";
import { browserRoutesCors } from "./api/v1/checkout.ts";
import { adminApiV1Routes } from "./api/admin/v1.ts";
import { limitBodies } from "./_body_limit.ts";
import { framingPolicy, HSTS } from "./_headers.ts";
import { integrationRoutes } from "./integration/mod.tsx";
import { webhookRoutes } from "./webhooks/mod.ts";
import { demoRoutes } from "./demo.tsx";
import { staticRoutes } from "./static.ts";
import { renderPage } from "../components/html.tsx";
import { BUYER_NOT_FOUND, MessagePage } from "../components/message_page.tsx";
import { consoleRoutes, internalDocsBehindSignIn } from "./admin/mod.tsx";
import type { ConsoleEnv } from "./admin/_session.ts";
import { AdminLayout } from "../components/admin_layout.tsx";
import { portalRoutes } from "./portal/mod.tsx";
import { publicDocsRoutes } from "./docs/mod.tsx";
import { checkoutPageRoutes } from "./checkout/mod.tsx";
import { checkoutScriptRoutes } from "./checkout/script.ts";
import { formPageRoutes } from "./forms/mod.tsx";
import { invoicePageRoutes } from "./invoices/mod.tsx";
import type { Context, MiddlewareHandler } from "hono";

export interface AppOptions {
  /** The embedded provider sandbox, mounted at /sandbox/bansky. */
  sandbox?: Sandbox;
  /** The embedded chain simulator, mounted at /sandbox/chain. */
  chainSimulator?: ChainSimulator;
  demo?: { shop: DemoShop; selfUrl: string };
}

/** Builds the whole HTTP surface. Routes stay thin; errors map to one JSON shape in one place. */
export function createApp(ctx: AppContext, opts: AppOptions = {}) {
  const httpsOnly = ctx.config.publicBaseUrl.startsWith("https:");
  const app = new Hono();
  // Before everything else, so that every answer is counted (only when metrics are on: no cost otherwise).
  if (ctx.metrics) app.use(countRequests(ctx.metrics));
  // Every answer but the buyer's redirects (the hot path, which logs nothing) names its request, the body limit's
  // refusals included: a shop or an operator quoting it finds the log lines.
  const nameRequest = requestId();
  app.use((c, next) => (c.req.path.startsWith("/integration/") ? next() : nameRequest(c, next)));
  // Before the body limit, so its refusals reach the pages that call the browser routes too.
  app.use("/api/v1/*", browserRoutesCors());
  // Before any route, so no route or middleware reads more than its limit (forms and webhooks 64 KiB).
  app.use(limitBodies({ byPrefix: { "/api/v1/": MAX_API_BODY_BYTES } }));
  // The buyer's redirects and the shops' JSON API are the hot paths: they are registered before the page
  // middlewares (which then never run for them) and set the few headers a redirect or JSON answer needs.
  app.route("/integration", integrationRoutes(ctx));
  const api = new Hono();
  api.use(async (c, next) => {
    // Set before the handler, so they go into its answer as it is made: set on a finished answer, Hono copies the
    // whole response to add them, on every API call.
    setApiHeaders(c);
    await next();
    // An answer built as a plain Response skips the headers set beforehand.
    if (!c.res.headers.has("x-content-type-options")) setApiHeaders(c);
  });
  api.route("/v1", apiV1Routes(ctx));
  api.route("/admin/v1", adminApiV1Routes(ctx));
  api.route("/", webhookRoutes(ctx));
  app.route("/api", api);
  // Loaded by shops' pages (a cross-origin script) and by their buyers' framed pages: headers of their own.
  app.route("/", checkoutScriptRoutes());
  if (opts.sandbox) app.route("/sandbox/bansky", opts.sandbox.app);

  // Outside secureHeaders so that a shop's buyer page can let that shop's sites frame it (see allowFraming).
  app.use(framingPolicy);
  app.use(secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'none'"],
      styleSrc: ["'self'"],
      scriptSrc: ["'self'"],
      connectSrc: ["'self'"],
      imgSrc: ["'self'", "data:"],
      // Only the configured Metabase may be framed (signed dashboards).
      frameSrc: ctx.config.metabase ? [new URL(ctx.config.metabase.siteUrl).origin] : ["'none'"],
      frameAncestors: ["'none'"],
      baseUri: ["'none'"],
    },
    // "same-origin" rather than "no-referrer": the latter makes browsers send "Origin: null" on our own form posts.
    referrerPolicy: "same-origin",
    // Only over https: browsers ignore it on http anyway, and a dev set-up must be able to drop TLS.
    strictTransportSecurity: httpsOnly ? HSTS : false,
  }));
  // Console and portal pages show keys and secrets once, and CSV exports carry buyers' data: never cached.
  app.use("/admin/*", noStore);
  app.use("/portal/*", noStore);
  app.use("/internal/*", noStore);

  app.route("/", healthRoutes(ctx));
  if (ctx.metrics && ctx.config.metricsToken) app.route("/", metricsRoutes(ctx.metrics, ctx.config.metricsToken));
  app.get("/", (c) => c.redirect(opts.demo ? "/demo" : "/healthz"));
  // Browsers ask every site for one: an empty answer, kept a day, instead of a 404 in every page's console.
  app.get("/favicon.ico", (c) => c.body(null, 204, { "cache-control": "public, max-age=86400" }));
  app.route("/static", staticRoutes());
  app.route("/admin", consoleRoutes(ctx));
  app.route("/portal", portalRoutes(ctx));
  // Buyers' form pages: outside the console's cookie CSRF (a framed form has no cookies); a signed token instead.
  app.route("/forms", formPageRoutes(ctx));
  app.route("/invoices", invoicePageRoutes(ctx));
  // Public documentation at /docs and the OpenAPI document at /openapi.json.
  app.route("/", publicDocsRoutes({ maxAmount: ctx.config.maxAmount, publicBaseUrl: ctx.config.publicBaseUrl }));
  app.route("/internal", internalDocsBehindSignIn(ctx));
  app.route("/checkout", checkoutPageRoutes(ctx));
  if (opts.chainSimulator) app.route("/sandbox/chain", opts.chainSimulator.app);
  if (opts.demo) app.route("/demo", demoRoutes(ctx, opts.demo.shop, opts.demo.selfUrl));

  app.notFound((c) => {
    if (c.req.path.startsWith("/api/")) {
      return c.json({ status: "error", error: { code: "not_found", message: "No such endpoint." } }, 404);
    }
    const buyer = buyerPage(c.req.path);
    if (buyer) return messagePage(c, BUYER_NOT_FOUND[buyer].title, BUYER_NOT_FOUND[buyer].text, 404);
    return messagePage(c, "Page not found", "There is nothing at this address.", 404);
  });

  app.onError((err, c) => {
    if (isPagePath(c.req.path)) return errorPage(c, err);
    // Refusals from before the API's own middleware (the body limit's 405, 408, 413) carry its headers too.
    if (c.req.path.startsWith("/api/")) setApiHeaders(c);
    if (err instanceof AppError) {
      for (const [k, v] of Object.entries(err.headers ?? {})) c.header(k, v);
      const error = { code: err.code, message: err.message, ...(err.fields ? { fields: err.fields } : {}) };
      return c.json({ status: "error", error }, err.status as 400);
    }
    log.error("unhandled error", { requestId: c.get("requestId"), path: c.req.path, error: describeError(err) });
    const message = "Something went wrong on our side. It has been logged.";
    return c.json({ status: "error", error: { code: "internal_error", message, requestId: c.get("requestId") } }, 500);
  });
  return app;
}

const noStore: MiddlewareHandler = async (c, next) => {
  await next();
  c.header("cache-control", "no-store");
};

/** What every JSON answer of the API carries: never sniffed as something else, never cached. */
function setApiHeaders(c: Context) {
  c.header("x-content-type-options", "nosniff");
  c.header("cache-control", "no-store");
}

/** Paths people read in a browser get designed HTML errors; the API keeps JSON. */
function isPagePath(path: string): boolean {
  return /^\/(admin|portal|internal|docs|demo|integration|forms|invoices)(\/|$)/.test(path);
}

/** The buyer's pages by their path (a form's and an invoice's), whose "not found" is told in the buyer's words. */
function buyerPage(path: string): keyof typeof BUYER_NOT_FOUND | null {
  const area = /^\/(forms|invoices)\//.exec(path)?.[1];
  return area === "forms" ? "form" : area === "invoices" ? "invoice" : null;
}

/** A message page; inside the console, for a signed-in operator, with the console's menu around it. */
function messagePage(c: Context, title: string, text: string, status: number) {
  const operator = (c as Context<ConsoleEnv>).get("operator");
  if (operator && c.req.path.startsWith("/admin")) {
    return c.html(
      renderPage(
        <AdminLayout title={title} path={c.req.path} email={operator.email} csrf={c.get("csrf") ?? ""}>
          <p>{text}</p>
          <p>
            <a href="/admin">Back to the overview</a>
          </p>
        </AdminLayout>,
      ),
      status as 404,
    );
  }
  return c.html(renderPage(<MessagePage title={title} text={text} />), status as 404);
}

function errorPage(c: Context, err: Error) {
  if (err instanceof AppError) {
    for (const [k, v] of Object.entries(err.headers ?? {})) c.header(k, v);
    if (err.code === "rate_limited") {
      // A person reads this page (a buyer on a form, an operator signing in): in their words, not the API's.
      const wait = Number(err.headers?.["retry-after"] ?? 60);
      return messagePage(c, "Too many tries", `Please wait ${wait} seconds, then try again.`, err.status);
    }
    const buyer = err instanceof NotFoundError ? buyerPage(c.req.path) : null;
    if (buyer) return messagePage(c, BUYER_NOT_FOUND[buyer].title, BUYER_NOT_FOUND[buyer].text, 404);
    const title = err.status === 404 ? "Not found" : err.status === 403 ? "Not allowed" : "That did not work";
    const text = err.fields
      ? `${err.message} ${Object.entries(err.fields).map(([k, v]) => `${k} ${v}`).join("; ")}.`
      : err.message;
    return messagePage(c, title, text, err.status);
  }
  const requestId: string | undefined = c.get("requestId");
  log.error("unhandled error", { requestId, path: c.req.path, error: describeError(err) });
  // The buyer's redirects name no request (their hot path skips the id): the log line has the path and the time.
  const quoted = requestId ? ` (request ${requestId})` : "";
  return c.html(
    renderPage(
      <MessagePage
        title="Something went wrong"
        text={`It is our fault and it has been logged${quoted}. Please try again.`}
      />,
    ),
    500,
  );
}
