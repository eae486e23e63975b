import { z } from "zod";
import type { ProviderStatus } from "./types.ts";

/**
 * Bansky's wire format, shared by our adapter and the sandbox that imitates it.
 * Webhooks carry `Bansky-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
 */
export const BANSKY_STATUSES = ["pending", "paid", "declined", "expired"] as const;
export type BanskyStatus = typeof BANSKY_STATUSES[number];

export const banskyStatusToOurs = {
  pending: "pending",
  paid: "succeeded",
  declined: "failed",
  expired: "expired",
} as const satisfies Record<BanskyStatus, ProviderStatus>;

export const InitResponse = z.object({ id: z.string().min(1).max(200), url: z.url({ protocol: /^https?$/ }) });
export const StatusResponse = z.object({ id: z.string(), status: z.enum(BANSKY_STATUSES) });
export const WebhookBody = z.object({
  eventId: z.string().min(1).max(200),
  id: z.string().min(1).max(200),
  ref: z.string().min(1).max(200),
  status: z.enum(BANSKY_STATUSES),
});
export type WebhookBody = z.infer<typeof WebhookBody>;

export const SIGNATURE_HEADER = "bansky-signature";
export const WEBHOOK_TOLERANCE_SECONDS = 300;

const encoder = new TextEncoder();

function hmacKey(secret: string, usage: "sign" | "verify") {
  return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

function toHex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[0-9a-f]{64}$/.test(hex)) return null;
  return new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
}

export async function signBanskyWebhook(secret: string, timestamp: number, body: string): Promise<string> {
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret, "sign"), encoder.encode(`${timestamp}.${body}`));
  return `t=${timestamp},v1=${toHex(mac)}`;
}

/** Why a signature header fails, or null when it is valid and fresh. Comparison is constant-time (WebCrypto verify). */
export async function checkBanskySignature(
  secret: string,
  header: string | null,
  body: string,
  nowSeconds: number,
): Promise<string | null> {
  if (!header) return "missing signature";
  const parts = Object.fromEntries(header.split(",").map((p) => p.trim().split("=", 2)));
  const timestamp = Number(parts.t);
  if (!Number.isInteger(timestamp)) return "malformed signature";
  if (Math.abs(nowSeconds - timestamp) > WEBHOOK_TOLERANCE_SECONDS) return "timestamp outside the allowed window";
  const mac = fromHex(parts.v1 ?? "");
  if (!mac) return "malformed signature";
  const ok = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(secret, "verify"),
    mac,
    encoder.encode(`${timestamp}.${body}`),
  );
  return ok ? null : "signature mismatch";
}
