import { createHash, createHmac } from "node:crypto";

/**
 * The hashes, MACs and comparisons the app uses, in one place. Synchronous
 * on purpose (node:crypto, which Deno Deploy has): `crypto.subtle` hands every
 * call to a worker thread and back, which costs several times the hash itself
 * on the hot paths (key lookup, request fingerprint, postback signing).
 */

/** SHA-256 of UTF-8 text, hex. */
export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** SHA-256 of UTF-8 text, base64url: shorter as a KV key part. */
export function sha256Base64url(text: string): string {
  return createHash("sha256").update(text).digest("base64url");
}

/** HMAC-SHA-256 of UTF-8 text. */
export function hmacSha256(key: Uint8Array | string, text: string): Uint8Array {
  return new Uint8Array(createHmac("sha256", key).update(text).digest());
}

/** HMAC-SHA-256 of UTF-8 text, hex (Bansky's signatures). */
export function hmacSha256Hex(key: Uint8Array | string, text: string): string {
  return createHmac("sha256", key).update(text).digest("hex");
}

/** HMAC-SHA-256 of UTF-8 text, standard base64 (Standard Webhooks signatures). */
export function hmacSha256Base64(key: Uint8Array | string, text: string): string {
  return createHmac("sha256", key).update(text).digest("base64");
}

/**
 * Compares two strings in time that depends only on their length, so a
 * guess at a token or signature learns nothing from how fast it is refused.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
