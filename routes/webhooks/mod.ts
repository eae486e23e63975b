import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { handleProviderWebhook } from "../../lib/payments/webhook.ts";

/** Provider webhooks in. A 2xx means the change and its postback are committed. */
export function webhookRoutes(ctx: AppContext) {
  const app = new Hono();
  // The body is bounded by the app's body limit (64 KiB) before this runs.
  app.post("/payment-verify", async (c) => {
    // The signature covers the exact bytes, so read raw text and parse only after verifying.
    const outcome = await handleProviderWebhook(ctx, c.req.raw.headers, await c.req.text());
    return c.json({ status: "success", outcome });
  });
  // Each account has its own webhook address; the one above is the default account's.
  app.post("/payment-verify/:accountId", async (c) => {
    const outcome = await handleProviderWebhook(ctx, c.req.raw.headers, await c.req.text(), c.req.param("accountId"));
    return c.json({ status: "success", outcome });
  });
  return app;
}
