import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";

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
  return new Uint8Array(hmacOuter(key, text).digest());
}

/** HMAC-SHA-256 of UTF-8 text, hex (Bansky's signatures). */
export function hmacSha256Hex(key: Uint8Array | string, text: string): string {
  return hmacOuter(key, text).digest("hex");
}

/** HMAC-SHA-256 of UTF-8 text, standard base64 (Standard Webhooks signatures). */
export function hmacSha256Base64(key: Uint8Array | string, text: string): string {
  return hmacOuter(key, text).digest("base64");
}

/**
 * HMAC (RFC 2104) built from two SHA-256 hashes, with each key's padded blocks worked out once: Deno's
 * node:crypto createHmac costs about as much as four hashes (17 µs against 7 here), and every init-payment,
 * webhook and postback makes one. The outer hash, ready for its digest.
 */
function hmacOuter(key: Uint8Array | string, text: string) {
  const { inner, outer } = paddedKey(key);
  const innerHash = createHash("sha256").update(inner).update(text).digest("binary");
  return createHash("sha256").update(outer).update(innerHash, "binary");
}

const BLOCK_BYTES = 64;
/**
 * Few keys are ever used (the process's secrets); the string map is bounded all the same. A byte key's pads are
 * found by its array and used only while the array still holds the bytes they were made from.
 */
const padsOfText = new Map<string, PaddedKey>();
const padsOfBytes = new WeakMap<Uint8Array, PaddedKey & { madeFrom: Uint8Array }>();
const MAX_TEXT_KEYS = 1_000;

interface PaddedKey {
  inner: Buffer;
  outer: Buffer;
}

function paddedKey(key: Uint8Array | string): PaddedKey {
  if (typeof key === "string") {
    let pads = padsOfText.get(key);
    if (!pads) {
      if (padsOfText.size >= MAX_TEXT_KEYS) padsOfText.clear();
      padsOfText.set(key, pads = padKey(Buffer.from(key)));
    }
    return pads;
  }
  const known = padsOfBytes.get(key);
  // A copy to compare with (a Buffer's slice would share its memory).
  if (known && sameBytes(known.madeFrom, key)) return known;
  const pads = padKey(key);
  padsOfBytes.set(key, { ...pads, madeFrom: new Uint8Array(key) });
  return pads;
}

function padKey(key: Uint8Array): PaddedKey {
  const bytes = key.length > BLOCK_BYTES ? createHash("sha256").update(key).digest() : key;
  const pads = { inner: Buffer.alloc(BLOCK_BYTES, 0x36), outer: Buffer.alloc(BLOCK_BYTES, 0x5c) };
  for (let i = 0; i < bytes.length; i++) {
    pads.inner[i] ^= bytes[i];
    pads.outer[i] ^= bytes[i];
  }
  return pads;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
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
