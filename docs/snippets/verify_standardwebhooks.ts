// npm install standardwebhooks
import { Webhook, WebhookVerificationError } from "standardwebhooks";

/** A payment's postback; refund and invoice postbacks carry their own record as `data` (see the docs). */
export interface PaymentPostback {
  type: "payment.succeeded" | "payment.failed" | "payment.expired" | "payment.cancelled";
  timestamp: string;
  data: {
    id: string;
    paymentId: string;
    status: "succeeded" | "failed" | "expired" | "cancelled";
    amount: number;
    currency: string;
    type: "fiat" | "crypto";
    email: string;
    createdAt: string;
    finalizedAt: string;
    late: boolean;
    checkoutSessionId: string | null;
  };
}

export type Postback =
  | PaymentPostback
  | { type: `refund.${string}` | `invoice.${string}`; timestamp: string; data: { id: string } };

/**
 * Checks the signature (any `v1` entry may match) and that webhook-timestamp is
 * within 5 minutes of now. Throws WebhookVerificationError otherwise.
 * `rawBody` must be the exact text we sent: verify before parsing JSON.
 */
export function verifyPostback(secret: string, headers: Record<string, string>, rawBody: string): Postback {
  return new Webhook(secret).verify(rawBody, headers) as Postback;
}

/** A fetch-style handler (Deno, Bun, Cloudflare Workers, Hono, Next.js route handlers). */
export async function handlePostback(req: Request, secret: string): Promise<Response> {
  const rawBody = await req.text();
  let postback: Postback;
  try {
    postback = verifyPostback(secret, Object.fromEntries(req.headers), rawBody);
  } catch (err) {
    if (err instanceof WebhookVerificationError) return new Response("bad signature", { status: 400 });
    throw err;
  }
  // Deduplicate on req.headers.get("webhook-id"): retries carry the same id.
  console.log(postback.type, postback.data.id);
  return new Response(null, { status: 204 });
}
