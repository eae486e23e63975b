import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { AppContext } from "../../lib/context.ts";
import { AppError } from "../../lib/errors.ts";
import { handleProviderWebhook } from "../../lib/payments/webhook.ts";

const MAX_WEBHOOK_BYTES = 64 * 1024;

/** Provider webhooks in. A 2xx means the change and its postback are committed. */
export function webhookRoutes(ctx: AppContext) {
  const app = new Hono();
  app.post(
    "/payment-verify",
    bodyLimit({
      maxSize: MAX_WEBHOOK_BYTES,
      onError: () => {
        throw new AppError(413, "body_too_large", "Webhook body too large.");
      },
    }),
    async (c) => {
      // The signature covers the exact bytes, so read raw text and parse only after verifying.
      const outcome = await handleProviderWebhook(ctx, c.req.raw.headers, await c.req.text());
      return c.json({ status: "success", outcome });
    },
  );
  return app;
}
