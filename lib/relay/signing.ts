import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import { randomBytes, sequentialId } from "../ids.ts";
import { constantTimeEqual, hmacSha256Base64 } from "../crypto.ts";

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): the signed
 * content is `${webhook-id}.${webhook-timestamp}.${body}`. A shop signs either
 * with a shared secret (`whsec_` + base64 key: HMAC-SHA256, sent as
 * `v1,<base64>`) or with an Ed25519 key pair (we keep `whsk_` + base64 of the
 * 32-byte private seed, the shop holds `whpk_` + base64 of the 32-byte public
 * key; sent as `v1a,<base64 of the 64-byte signature>`). Several entries,
 * space-separated, during a rotation or a switch. Any Standard Webhooks
 * library verifies the `v1` entries; `v1a` needs only Ed25519 (WebCrypto has it).
 */
const SECRET_PREFIX = "whsec_";
const PRIVATE_PREFIX = "whsk_";
const PUBLIC_PREFIX = "whpk_";

/** DER headers that turn a raw 32-byte Ed25519 seed or public key into PKCS#8 / SPKI (RFC 8410). */
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");

/** A new shop signing secret: `whsec_` + base64 of 32 random bytes. */
export function newWebhookSecret(): string {
  return SECRET_PREFIX + btoa(String.fromCharCode(...randomBytes(32)));
}

/** A new Ed25519 signing key (`whsk_...`, ours alone); its public half comes from `publicKeyOf`. */
export function newSigningKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync("ed25519");
  const seed = Buffer.from(privateKey.export({ format: "der", type: "pkcs8" })).subarray(PKCS8_ED25519.length);
  const secret = PRIVATE_PREFIX + seed.toString("base64");
  return { privateKey: secret, publicKey: publicKeyOf(secret) };
}

/** Whether a signing secret is an Ed25519 private key (`whsk_`) rather than a shared HMAC secret. */
export function isKeyPairSecret(secret: string): boolean {
  return secret.startsWith(PRIVATE_PREFIX);
}

/** The `whpk_` public key for a `whsk_` private key; safe to show anyone. */
export function publicKeyOf(privateKey: string): string {
  const spki = createPublicKey(privateKeyObject(privateKey)).export({ format: "der", type: "spki" });
  return PUBLIC_PREFIX + Buffer.from(spki).subarray(SPKI_ED25519.length).toString("base64");
}

/**
 * A new message id, stable across every retry of one postback. Time first (sequentialId): the delivery record
 * and its attempts are keyed by it, so postbacks made together are written to the same pages of the store.
 */
export function newMessageId(now = Date.now()): string {
  return sequentialId("msg", now);
}

/** Decoded once per secret: the same array each time also lets crypto.ts reuse the key's HMAC pads. */
const decodedSecrets = new Map<string, Uint8Array<ArrayBuffer>>();

function secretBytes(secret: string): Uint8Array<ArrayBuffer> {
  let bytes = decodedSecrets.get(secret);
  if (!bytes) {
    const b64 = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
    bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    if (decodedSecrets.size >= KEY_CACHE_MAX) decodedSecrets.clear();
    decodedSecrets.set(secret, bytes);
  }
  return bytes;
}

function hmac(secret: string, content: string): string {
  return hmacSha256Base64(secretBytes(secret), content);
}

// Parsing a key costs more than signing with it: keep the KeyObjects of the keys in use.
// Bounded, and keyed by the secret itself, so a rotated key simply stops being asked for.
const KEY_CACHE_MAX = 1000;
const privateKeys = new Map<string, KeyObject>();
const publicKeys = new Map<string, KeyObject>();

function cached(cache: Map<string, KeyObject>, key: string, make: () => KeyObject): KeyObject {
  let k = cache.get(key);
  if (!k) {
    if (cache.size >= KEY_CACHE_MAX) cache.clear();
    k = make();
    cache.set(key, k);
  }
  return k;
}

function privateKeyObject(secret: string): KeyObject {
  return cached(privateKeys, secret, () => {
    const seed = Buffer.from(secret.slice(PRIVATE_PREFIX.length), "base64");
    if (seed.length !== 32) throw new Error("an Ed25519 signing key must be 32 bytes");
    return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: "der", type: "pkcs8" });
  });
}

function publicKeyObject(publicKey: string): KeyObject | null {
  const raw = Buffer.from(publicKey.slice(PUBLIC_PREFIX.length), "base64");
  if (raw.length !== 32) return null;
  return cached(
    publicKeys,
    publicKey,
    () => createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: "der", type: "spki" }),
  );
}

/** One signature entry: `v1a,` for a `whsk_` key, `v1,` for a `whsec_` secret. */
function signEntry(secret: string, content: string): string {
  if (isKeyPairSecret(secret)) {
    return `v1a,${sign(null, Buffer.from(content), privateKeyObject(secret)).toString("base64")}`;
  }
  return `v1,${hmac(secret, content)}`;
}

/** A `v1,`/`v1a,` entry for each secret, space-separated (several during a rotation or a switch). */
export function signWebhook(secrets: readonly string[], msgId: string, timestamp: number, body: string) {
  const content = `${msgId}.${timestamp}.${body}`;
  return secrets.map((s) => signEntry(s, content)).join(" ");
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
 * Whether a signature list (`v1,... v1a,...`) holds an entry that verifies
 * `content` with one of `keys`: `whsec_` secrets check `v1` entries, `whpk_`
 * public keys check `v1a` entries. A `whsk_` key is never a verification key.
 */
function anyEntryVerifies(keys: readonly string[], signatures: string, content: string): boolean {
  const entries = signatures.split(" ").map((e) => e.split(",", 2));
  return keys.some((key) => {
    if (key.startsWith(PUBLIC_PREFIX)) {
      const pk = publicKeyObject(key);
      return pk !== null && entries.some(([version, sig]) => {
        if (version !== "v1a" || !sig) return false;
        const bytes = Buffer.from(sig, "base64");
        return bytes.length === 64 && verify(null, Buffer.from(content), pk, bytes);
      });
    }
    if (isKeyPairSecret(key)) return false;
    const expected = hmac(key, content);
    return entries.some(([version, sig]) => version === "v1" && sig !== undefined && constantTimeEqual(sig, expected));
  });
}

/**
 * Verifies a Standard Webhooks signature the way a shop would (used by the
 * demo shop and tests): any entry may match any of the shop's keys (a `whsec_`
 * secret or a `whpk_` public key); timestamps older or newer than
 * `toleranceSeconds` fail.
 */
export function verifyWebhook(
  keys: string | readonly string[],
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
  return anyEntryVerifies(typeof keys === "string" ? [keys] : keys, sigHeader, `${id}.${ts}.${body}`);
}

/** The query parameters of a signed redirect back to the shop; every name starts with `apay_`. */
export interface RedirectParams {
  apay_payment: string;
  apay_status: string;
  apay_ts: string;
  apay_sig: string;
}

/**
 * Signs what a redirect tells the shop's page. The content is
 * `${apay_payment}.${apay_ts}.${apay_status}`, signed exactly like a postback
 * whose id is the payment id and whose body is the status (one verifier serves
 * both); a postback's id (`msg_`) can never be a payment id (`pay_`), so
 * neither signature passes for the other.
 */
export function signRedirect(
  secrets: readonly string[],
  paymentId: string,
  status: string,
  timestamp: number,
): RedirectParams {
  return {
    apay_payment: paymentId,
    apay_status: status,
    apay_ts: String(timestamp),
    apay_sig: signWebhook(secrets, paymentId, timestamp, status),
  };
}

/**
 * Adds our parameters to a shop's URL without touching the rest: the shop's own
 * query string stays byte for byte, and a fragment stays last, where browsers
 * keep it.
 */
export function appendRedirectParams(url: string, params: RedirectParams): string {
  const hash = url.indexOf("#");
  const base = hash === -1 ? url : url.slice(0, hash);
  const fragment = hash === -1 ? "" : url.slice(hash);
  const query = new URLSearchParams(params as unknown as Record<string, string>).toString();
  const sep = !base.includes("?") ? "?" : base.endsWith("?") || base.endsWith("&") ? "" : "&";
  return base + sep + query + fragment;
}

/**
 * Verifies a signed redirect's parameters the way a shop's page would (demo
 * shop, tests): the signature over payment, timestamp and status, and a
 * timestamp within `toleranceSeconds`. Returns the payment and status, or null.
 */
export function verifyRedirect(
  keys: string | readonly string[],
  query: URLSearchParams,
  nowSeconds: number,
  toleranceSeconds = 300,
): { paymentId: string; status: string } | null {
  const paymentId = query.get("apay_payment");
  const status = query.get("apay_status");
  const ts = Number(query.get("apay_ts"));
  const sig = query.get("apay_sig");
  if (!paymentId || !status || !sig || !Number.isInteger(ts)) return null;
  if (Math.abs(nowSeconds - ts) > toleranceSeconds) return null;
  const ok = anyEntryVerifies(typeof keys === "string" ? [keys] : keys, sig, `${paymentId}.${ts}.${status}`);
  return ok ? { paymentId, status } : null;
}
