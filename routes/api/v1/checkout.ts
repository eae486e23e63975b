import { Hono, type MiddlewareHandler } from "hono";
import type { AppContext } from "../../../lib/context.ts";
import type { Shop } from "../../../lib/db/shops.ts";
import type { ApiKeyKind } from "../../../lib/db/shops.ts";
import { PublishableKeyRefusedError } from "../../../lib/auth/api_keys.ts";
import { NotFoundError } from "../../../lib/errors.ts";
import { readJson } from "../../_read_json.ts";
import { checkoutConfig } from "../../../lib/checkout/config.ts";
import {
  confirmCheckoutSession,
  createCheckoutSession,
  openSessionBySecret,
  sessionStatus,
} from "../../../lib/checkout/sessions.ts";

export type CheckoutEnv = { Variables: { shop: Shop; publishableKey: string | null } };

/**
 * The routes a publishable key may call, as "METHOD /path" below /api/v1: the checkout's config and
 * mounting a session it was given. Every other route of the API refuses it.
 */
export const PUBLISHABLE_KEY_ROUTES: ReadonlySet<string> = new Set([
  "GET /checkout/config",
  "POST /checkout/sessions/mount",
]);

/**
 * Pages on the shop's sites call PUBLISHABLE_KEY_ROUTES from the browser, so those answer cross-origin requests
 * (CORS), and their preflights before any key is asked for: a preflight carries no Authorization header. Any
 * origin may: the key goes in a header, never a cookie, so a page can only use a key it already holds. Every other
 * route stays closed to other origins (its preflight is refused as before). A preflight is a fixed answer that reads
 * nothing, so no rate limit counts it.
 */
export function browserRoutesCors(): MiddlewareHandler {
  return async (c, next) => {
    const path = c.req.path.replace(/^\/api\/v1/, "");
    if (c.req.method === "OPTIONS") {
      const asked = c.req.header("access-control-request-method")?.toUpperCase();
      if (!asked || !PUBLISHABLE_KEY_ROUTES.has(`${asked} ${path}`)) return await next();
      return c.body(null, 204, {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": asked,
        "access-control-allow-headers": "authorization, content-type",
        "access-control-max-age": "600",
      });
    }
    if (PUBLISHABLE_KEY_ROUTES.has(`${c.req.method} ${path}`)) {
      c.header("access-control-allow-origin", "*");
      // A page slowed down by the rate limit reads when to try again; one reporting a problem quotes the request.
      c.header("access-control-expose-headers", "retry-after, x-request-id");
    }
    await next();
  };
}

/** Refuses a publishable key everywhere but PUBLISHABLE_KEY_ROUTES. */
export function checkKeyScope(kind: ApiKeyKind, method: string, path: string) {
  if (kind === "publishable" && !PUBLISHABLE_KEY_ROUTES.has(`${method} ${path}`)) {
    throw new PublishableKeyRefusedError();
  }
}

/** Embedded checkout: config, sessions (server side, secret key), mount (browser, publishable key), confirm. */
export function checkoutApiRoutes(ctx: AppContext) {
  const app = new Hono<CheckoutEnv>();

  app.get("/config", async (c) => c.json(await checkoutConfig(ctx, c.var.shop, c.var.publishableKey)));

  app.post("/sessions", async (c) => {
    const body = await readJson(c);
    const { session, clientSecret, replay } = await createCheckoutSession(ctx, c.var.shop, body, {
      idempotencyKey: c.req.header("idempotency-key"),
    });
    return c.json({
      status: "success",
      sessionId: session.id,
      clientSecret,
      provider: session.provider,
      amount: session.amount,
      currency: session.currency,
      expiresAt: new Date(session.expiresAt).toISOString(),
    }, replay ? 200 : 201);
  });

  // What a browser may learn with the shop's publishable key and the secret it was handed: enough to draw its own UI.
  app.post("/sessions/mount", async (c) => {
    const body = await readJson(c) as { clientSecret?: unknown };
    const secret = typeof body.clientSecret === "string" ? body.clientSecret : "";
    const opened = await openSessionBySecret(ctx, secret);
    if (!opened || opened.shop.id !== c.var.shop.id) throw new NotFoundError("Unknown checkout session.");
    const { session, payment } = opened;
    return c.json({
      status: "success",
      session: {
        id: session.id,
        status: sessionStatus(payment),
        amount: session.amount,
        currency: session.currency,
        lineItems: session.lineItems,
        description: session.description,
        expiresAt: new Date(session.expiresAt).toISOString(),
      },
    });
  });

  app.post("/confirm", async (c) => {
    const body = await readJson(c) as { sessionId?: unknown };
    return c.json({ status: "success", session: await confirmCheckoutSession(ctx, c.var.shop, body.sessionId) });
  });

  return app;
}
