import { type Context, Hono, type MiddlewareHandler } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { unauthenticatedLimiter } from "../../lib/auth/rate_limit.ts";
import { AppError } from "../../lib/errors.ts";
import { DEFAULT_ACCOUNT_ID } from "../../lib/accounts/types.ts";
import { handleProviderWebhook } from "../../lib/payments/webhook.ts";
import { handleChainNotice } from "../../lib/invoices/deposits.ts";
import { limitedAddress } from "../_client_address.ts";
import { requestText } from "../_body_limit.ts";

/** Provider webhooks in. A 2xx means the change and its postback are committed. */
export function webhookRoutes(ctx: AppContext) {
  const app = new Hono();
  const limiter = unauthenticatedLimiter(ctx);
  /**
   * Rejected webhooks (bad signature, unknown account or payment) count against the sender's address, and one over
   * its limit is answered 429. Accepted ones are never counted. Over the limit, a webhook for an account this isolate
   * has found before is still verified (a hash over a bounded body; the account at most one read per few seconds),
   * so a correctly signed one goes through: bad API keys or forged webhooks from the same address (a proxy, a shared
   * egress) must not hold up a provider's news. One naming any other id is refused before any work.
   */
  const verify = async (c: Context, accountId?: string) => {
    const address = limitedAddress(c);
    if (!ctx.providers.knows(accountId ?? DEFAULT_ACCOUNT_ID)) limiter.refuseIfOver(address, ctx.now());
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
   * retry; Bansky within a second), before anything but the body limit's read of at most 64 KiB: a burst then costs
   * retries, not memory or reads without bound, and the webhooks already in flight keep their pace. Chain notices
   * are bounded the same way.
   */
  let inFlight = 0;
  const boundInFlight: MiddlewareHandler = async (c, next) => {
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
  };
  app.use("/payment-verify/*", boundInFlight);
  app.use("/chain-notify", boundInFlight);
  // The body is bounded by the app's body limit (64 KiB) before this runs.
  app.post("/payment-verify", async (c) => c.json({ status: "success", outcome: await verify(c) }));
  // Each account has its own webhook address; the one above is the default account's.
  app.post(
    "/payment-verify/:accountId",
    async (c) => c.json({ status: "success", outcome: await verify(c, c.req.param("accountId")) }),
  );
  // The chain service's notices about deposits at our addresses (crypto invoices); same limits as provider webhooks.
  // Their signature is checked before anything is read, so one over the limit is verified too (see verify).
  app.post("/chain-notify", async (c) => {
    const address = limitedAddress(c);
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
