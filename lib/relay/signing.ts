import { base64url, randomBytes } from "../ids.ts";
import { constantTimeEqual, hmacSha256Base64 } from "../crypto.ts";

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): the signed
 * content is `${webhook-id}.${webhook-timestamp}.${body}`, HMAC-SHA256 with the
 * base64 secret after its `whsec_` prefix, sent as `v1,<base64>`. Any Standard
 * Webhooks library verifies what we send.
 */
const SECRET_PREFIX = "whsec_";

/** A new shop signing secret: `whsec_` + base64 of 32 random bytes. */
export function newWebhookSecret(): string {
  return SECRET_PREFIX + btoa(String.fromCharCode(...randomBytes(32)));
}

/** A new message id, stable across every retry of one postback. */
export function newMessageId(): string {
  return "msg_" + base64url(randomBytes(16));
}

function secretBytes(secret: string): Uint8Array<ArrayBuffer> {
  const b64 = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function hmac(secret: string, content: string): string {
  return hmacSha256Base64(secretBytes(secret), content);
}

/** `v1,<sig>` for each secret, space-separated (several during a secret rotation). */
export function signWebhook(secrets: readonly string[], msgId: string, timestamp: number, body: string) {
  return secrets.map((s) => `v1,${hmac(s, `${msgId}.${timestamp}.${body}`)}`).join(" ");
}

/** The headers of one postback attempt. */
export function webhookHeaders(secrets: readonly string[], msgId: string, timestamp: number, body: string) {
  return {
    "content-type": "application/json",
    "webhook-id": msgId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signWebhook(secrets, msgId, timestamp, body),
  };
}

/**
 * Verifies a Standard Webhooks signature the way a shop would (used by the
 * demo shop and tests): any `v1` entry may match; timestamps older or newer
 * than `toleranceSeconds` fail.
 */
export function verifyWebhook(
  secret: string,
  headers: Headers,
  body: string,
  nowSeconds: number,
  toleranceSeconds = 300,
): boolean {
  const id = headers.get("webhook-id");
  const ts = Number(headers.get("webhook-timestamp"));
  const sigHeader = headers.get("webhook-signature");
  if (!id || !Number.isInteger(ts) || !sigHeader) return false;
  if (Math.abs(nowSeconds - ts) > toleranceSeconds) return false;
  const expected = hmac(secret, `${id}.${ts}.${body}`);
  return sigHeader.split(" ").some((entry) => {
    const [version, sig] = entry.split(",", 2);
    return version === "v1" && sig !== undefined && constantTimeEqual(sig, expected);
  });
}
