import { type Context, Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { authenticateShop } from "../../lib/auth/api_keys.ts";
import { sharedLimiter, unauthenticatedLimiter } from "../../lib/auth/rate_limit.ts";
import { UnauthorizedError, ValidationError } from "../../lib/errors.ts";
import { limitedAddress } from "../_client_address.ts";
import { readJson } from "../_read_json.ts";
import { initPayment, requestNameKey } from "../../lib/payments/init.ts";
import type { PaymentName } from "../../lib/payments/names.ts";
import { cancelPayment } from "../../lib/payments/cancel.ts";
import { createShopRefund } from "../../lib/refunds/create.ts";
import { listShopRefunds } from "../../lib/refunds/query.ts";
import { refundView } from "../../lib/refunds/view.ts";
import { getShopPayment, getShopPaymentByTxId } from "../../lib/payments/query.ts";
import { paymentView, payUrl } from "../../lib/payments/view.ts";
import { shopOptions } from "../../lib/accounts/routing.ts";
import { checkKeyScope, checkoutApiRoutes, type CheckoutEnv } from "./v1/checkout.ts";
import { formApiRoutes } from "./forms.ts";
import { createInvoice } from "../../lib/invoices/create.ts";
import { cancelShopInvoice } from "../../lib/invoices/cancel.ts";
import { getShopInvoice } from "../../lib/invoices/query.ts";
import { invoiceView } from "../../lib/invoices/view.ts";
import { cryptoOptions } from "../../lib/invoices/coins.ts";

/** init-payment's full path: it authorizes itself (see the API's middleware). */
const INIT_PAYMENT_PATH = "/api/v1/init-payment";

/** The shop API reads less than pages and webhooks: its largest valid body is a few KiB. */
export const MAX_API_BODY_BYTES = 16 * 1024;

type Env = CheckoutEnv;

/** The shop-facing JSON API: every route authenticates with the shop's key. */
export function apiV1Routes(ctx: AppContext) {
  const app = new Hono<Env>();
  const limiter = sharedLimiter(ctx, "api_keys", ctx.config.rateLimitPerMinute);
  const unauthenticated = unauthenticatedLimiter(ctx);

  /**
   * Authenticates the request's key (and reads `alsoRead`'s keys in the same trip), applies the key's rate limit
   * and scope, and sets the shop; throws the 401/403/429 otherwise.
   */
  const authorize = async (c: Context<Env>, alsoRead?: (shopId: string) => Deno.KvKey[]) => {
    let auth;
    try {
      auth = await authenticateShop(ctx.kv, c.req.header("authorization"), { alsoRead });
    } catch (err) {
      // Bad or missing keys count per address; a valid key is never held back by its address.
      if (err instanceof UnauthorizedError) unauthenticated.take(limitedAddress(c), ctx.now());
      throw err;
    }
    const { shop, keyId, kind } = auth;
    if (kind === "publishable") {
      // A publishable key is public: counted per buyer's address, a stranger cannot spend the shop's whole budget and
      // stop its checkout for every buyer. A buyer's page mounts a checkout once per visit.
      limiter.take(`${keyId} ${limitedAddress(c)}`, ctx.now(), ctx.config.unauthenticatedPerMinute);
    } else {
      limiter.take(keyId, ctx.now(), shop.rateLimitPerMinute ?? undefined);
    }
    checkKeyScope(kind, c.req.method, c.req.path.replace(/^\/api\/v1/, ""));
    c.set("shop", shop);
    c.set("publishableKey", kind === "publishable" ? c.req.header("authorization")!.split(/\s+/)[1] : null);
    return auth.also;
  };

  app.use(async (c, next) => {
    // init-payment authorizes itself, to read the payment a retry names with the key (one trip instead of two).
    if (!(c.req.method === "POST" && c.req.path === INIT_PAYMENT_PATH)) await authorize(c);
    await next();
  });

  app.route("/checkout", checkoutApiRoutes(ctx));

  // The body is already read and bounded (MAX_API_BODY_BYTES) by the app's body limit.
  app.post("/init-payment", async (c) => {
    const idempotencyKey = c.req.header("idempotency-key");
    // A body that cannot be read is reported only once the key is good: strangers learn nothing but 401.
    const body = await readJson(c).then((value) => ({ value }), (error: unknown) => ({ error }));
    // Which payment a retry's name names is read with the key; asked again if the key's shop was not the one remembered.
    let named = null as { shopId: string; name: PaymentName } | null;
    const [entry] = await authorize(c, (shopId) => {
      const guess = "value" in body ? requestNameKey(shopId, body.value, idempotencyKey) : null;
      named = guess && { shopId, name: guess.name };
      return guess ? [guess.key] : [];
    });
    if ("error" in body) throw body.error;
    const readAhead = named && entry
      ? { ...named, key: { id: (entry as Deno.KvEntryMaybe<string>).value, versionstamp: entry.versionstamp } }
      : undefined;
    const { payment, replay } = await initPayment(ctx, c.var.shop, body.value, { idempotencyKey, readAhead });
    return c.json(
      { status: "success", id: payment.id, url: payUrl(payment.id, ctx.config.publicBaseUrl) },
      replay ? 200 : 201,
    );
  });

  app.get("/payments/:id", async (c) => {
    const p = await getShopPayment(ctx, c.var.shop, c.req.param("id"));
    return c.json({ status: "success", payment: paymentView(p, ctx.config.publicBaseUrl) });
  });

  app.post("/payments/:id/cancel", async (c) => {
    const p = await cancelPayment(ctx, c.var.shop, c.req.param("id"));
    return c.json({ status: "success", payment: paymentView(p, ctx.config.publicBaseUrl) });
  });

  app.post("/payments/:id/refunds", async (c) => {
    const body = await readJson(c);
    const { refund, replay } = await createShopRefund(ctx, c.var.shop, c.req.param("id"), body, {
      idempotencyKey: c.req.header("idempotency-key"),
    });
    return c.json({ status: "success", refund: refundView(refund) }, replay ? 200 : 201);
  });

  app.get("/payments/:id/refunds", async (c) => {
    const refunds = await listShopRefunds(ctx, c.var.shop, c.req.param("id"));
    return c.json({ status: "success", refunds: refunds.map(refundView) });
  });

  // Crypto coins and networks come from the one list in lib/invoices/coins.ts.
  app.get("/options", async (c) => {
    const { fiatCurrencies, fiatAmountSteps } = await shopOptions(ctx, c.var.shop);
    return c.json({
      status: "success",
      fiat: { currencies: fiatCurrencies, amountSteps: fiatAmountSteps },
      crypto: cryptoOptions(),
    });
  });

  app.post("/invoices", async (c) => {
    const body = await readJson(c);
    const { invoice, created } = await createInvoice(ctx, c.var.shop, body, {
      idempotencyKey: c.req.header("idempotency-key"),
    });
    return c.json({ status: "success", invoice }, created ? 201 : 200);
  });

  app.get("/invoices/:id", async (c) => {
    const inv = await getShopInvoice(ctx, c.var.shop, c.req.param("id"));
    return c.json({ status: "success", invoice: invoiceView(inv, ctx.config.publicBaseUrl) });
  });

  app.post("/invoices/:id/cancel", async (c) => {
    const inv = await cancelShopInvoice(ctx, c.var.shop, c.req.param("id"));
    return c.json({ status: "success", invoice: invoiceView(inv, ctx.config.publicBaseUrl) });
  });

  app.route("/forms", formApiRoutes(ctx));

  app.get("/payments", async (c) => {
    const shopTxId = c.req.query("shopTxId");
    if (!shopTxId || shopTxId.length > 64) {
      throw new ValidationError("Give shopTxId (at most 64 characters).", { shopTxId: "is required" });
    }
    const p = await getShopPaymentByTxId(ctx, c.var.shop, shopTxId);
    return c.json({ status: "success", payment: paymentView(p, ctx.config.publicBaseUrl) });
  });

  return app;
}
