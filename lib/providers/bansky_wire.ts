import { z } from "zod";
import type { ProviderStatus } from "./types.ts";
import type { RefundStatus } from "../refunds/status.ts";
import { constantTimeEqual, hmacSha256Hex } from "../crypto.ts";

/**
 * Bansky's wire format, shared by our adapter and the sandbox that imitates it.
 * Webhooks carry `Bansky-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
 */
export const BANSKY_STATUSES = ["pending", "paid", "declined", "expired", "cancelled"] as const;
export type BanskyStatus = typeof BANSKY_STATUSES[number];

export const banskyStatusToOurs = {
  pending: "pending",
  paid: "succeeded",
  declined: "failed",
  expired: "expired",
  cancelled: "cancelled",
} as const satisfies Record<BanskyStatus, ProviderStatus>;

export const InitResponse = z.object({ id: z.string().min(1).max(200), url: z.url({ protocol: /^https?$/ }) });
export const StatusResponse = z.object({ id: z.string(), status: z.enum(BANSKY_STATUSES) });
/**
 * `POST /payments/{ref}/cancel`: 200 with status "cancelled", or 409 with the
 * status the payment has instead when Bansky cannot cancel it. This follows
 * the sandbox until Bansky's cancel API is confirmed.
 */
export const CancelResponse = StatusResponse;
export const WebhookBody = z.object({
  eventId: z.string().min(1).max(200),
  // Our payment id, echoed back (the spec: it identifies the postback). News without it is acknowledged and ignored.
  id: z.string().min(1).max(200).optional(),
  ref: z.string().min(1).max(200),
  status: z.enum(BANSKY_STATUSES),
});
export type WebhookBody = z.infer<typeof WebhookBody>;

/**
 * Refunds: `POST /payments/{ref}/refunds` with `{id, amount}` (our refund id,
 * Bansky idempotent on it) answers the refund; `GET /refunds/{ref}` reads it;
 * a refund that settles later is announced by a webhook with `type: "refund"`.
 * This follows the sandbox until Bansky's refund API is confirmed.
 */
export const BANSKY_REFUND_STATUSES = ["pending", "refunded", "failed"] as const;
export type BanskyRefundStatus = typeof BANSKY_REFUND_STATUSES[number];

export const banskyRefundStatusToOurs = {
  pending: "pending",
  refunded: "succeeded",
  failed: "failed",
} as const satisfies Record<BanskyRefundStatus, RefundStatus>;

export const RefundRequest = z.object({ id: z.string().min(1).max(200), amount: z.int().positive() });
export const RefundResponse = z.object({ id: z.string().min(1).max(200), status: z.enum(BANSKY_REFUND_STATUSES) });
export const RefundWebhookBody = z.object({
  type: z.literal("refund"),
  eventId: z.string().min(1).max(200),
  /** Our refund id. */
  id: z.string().min(1).max(200),
  /** Bansky's refund reference. */
  ref: z.string().min(1).max(200),
  status: z.enum(BANSKY_REFUND_STATUSES),
});
export type RefundWebhookBody = z.infer<typeof RefundWebhookBody>;

export const SIGNATURE_HEADER = "bansky-signature";
export const WEBHOOK_TOLERANCE_SECONDS = 300;

export function signBanskyWebhook(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${hmacSha256Hex(secret, `${timestamp}.${body}`)}`;
}

/** Why a signature header fails, or null when it is valid and fresh. */
export function checkBanskySignature(
  secret: string,
  header: string | null,
  body: string,
  nowSeconds: number,
): string | null {
  if (!header) return "missing signature";
  const parts = Object.fromEntries(header.split(",").map((p) => p.trim().split("=", 2)));
  const timestamp = Number(parts.t);
  if (!Number.isInteger(timestamp)) return "malformed signature";
  if (Math.abs(nowSeconds - timestamp) > WEBHOOK_TOLERANCE_SECONDS) return "timestamp outside the allowed window";
  const mac = String(parts.v1 ?? "");
  if (!/^[0-9a-f]{64}$/.test(mac)) return "malformed signature";
  return constantTimeEqual(mac, hmacSha256Hex(secret, `${timestamp}.${body}`)) ? null : "signature mismatch";
}
