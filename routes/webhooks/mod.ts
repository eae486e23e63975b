import { type Context, Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { unauthenticatedLimiter } from "../../lib/auth/rate_limit.ts";
import { AppError } from "../../lib/errors.ts";
import { handleProviderWebhook } from "../../lib/payments/webhook.ts";
import { handleChainNotice } from "../../lib/invoices/deposits.ts";
import { clientAddress } from "../_client_address.ts";
import { requestText } from "../_body_limit.ts";

/** Provider webhooks in. A 2xx means the change and its postback are committed. */
export function webhookRoutes(ctx: AppContext) {
  const app = new Hono();
  const limiter = unauthenticatedLimiter(ctx);
  /**
   * Rejected webhooks (bad signature, unknown account or payment) count against the sender's address, and one over
   * its limit is answered 429. Every webhook's signature is checked all the same (a hash over a bounded body), so a
   * correctly signed one always goes through: bad API keys, or forged webhooks, from the same address (a proxy, a
   * shared egress) must not hold up a provider's news. Accepted ones are never counted.
   */
  const verify = async (c: Context, accountId?: string) => {
    const address = clientAddress(c);
    // The signature covers the exact bytes, so read raw text and parse only after verifying.
    const body = await requestText(c);
    try {
      return await handleProviderWebhook(ctx, c.req.raw.headers, body, accountId);
    } catch (err) {
      if (err instanceof AppError && (err.code === "invalid_webhook" || err.status === 404)) {
        limiter.take(address, ctx.now());
      }
      throw err;
    }
  };
  /**
   * A provider sends webhooks as fast as its payments settle, and each one waits on the provider's status API and
   * a commit. Past WEBHOOKS_IN_FLIGHT_MAX at once, more are refused at once with 503 and Retry-After (providers
   * retry; Bansky within a second), before their body is read: a burst then costs retries, not memory without
   * bound, and the webhooks already in flight keep their pace.
   */
  let inFlight = 0;
  app.use("/payment-verify/*", async (c, next) => {
    if (inFlight >= ctx.config.webhooksInFlightMax) {
      c.header("retry-after", "1");
      return c.json(
        { status: "error", error: { code: "overloaded", message: "Too many webhooks at once; retry." } },
        503,
      );
    }
    inFlight++;
    try {
      await next();
    } finally {
      inFlight--;
    }
  });
  // The body is bounded by the app's body limit (64 KiB) before this runs.
  app.post("/payment-verify", async (c) => c.json({ status: "success", outcome: await verify(c) }));
  // Each account has its own webhook address; the one above is the default account's.
  app.post(
    "/payment-verify/:accountId",
    async (c) => c.json({ status: "success", outcome: await verify(c, c.req.param("accountId")) }),
  );
  // The chain service's notices about deposits at our addresses (crypto invoices); same limits as provider webhooks.
  app.post("/chain-notify", async (c) => {
    const address = clientAddress(c);
    const body = await requestText(c);
    try {
      return c.json({ status: "success", outcome: await handleChainNotice(ctx, c.req.raw.headers, body) });
    } catch (err) {
      if (err instanceof AppError && (err.code === "invalid_webhook" || err.status === 404)) {
        limiter.take(address, ctx.now());
      }
      throw err;
    }
  });
  return app;
}
