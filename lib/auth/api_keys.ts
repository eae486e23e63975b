import { AppError, UnauthorizedError } from "../errors.ts";
import { getApiKeyAndShop, type Shop } from "../db/shops.ts";
import { base64url, randomBytes, randomId } from "../ids.ts";
import { sha256Hex } from "../crypto.ts";
import type { ApiKeyKind, ApiKeyRecord } from "../db/shops.ts";

/** Readable prefix so leaked keys are recognisable (and findable by secret scanners). */
export const API_KEY_PREFIX = "apay_sk_";
/** A publishable key: safe in a browser, good only for the embedded checkout's config and sessions it is given. */
export const PUBLISHABLE_KEY_PREFIX = "apay_pk_";

const PREFIXES: Record<ApiKeyKind, string> = { secret: API_KEY_PREFIX, publishable: PUBLISHABLE_KEY_PREFIX };

/** A new key: the prefix plus 192 random bits. Only its SHA-256 is stored (a publishable key is kept whole too). */
export function newApiKey(
  shopId: string,
  now: number,
  kind: ApiKeyKind = "secret",
): { key: string; hash: string; record: ApiKeyRecord } {
  const prefix = PREFIXES[kind];
  const key = prefix + base64url(randomBytes(24));
  const record: ApiKeyRecord = {
    id: randomId("key"),
    shopId,
    hint: key.slice(0, prefix.length + 4),
    createdAt: now,
    revokedAt: null,
    // Secret keys keep the shape they always had; a publishable key is public, so the config can hand it out.
    ...(kind === "publishable" ? { kind, publishableKey: key } : {}),
  };
  return { key, hash: sha256Hex(key), record };
}

/** A key record's kind: records older than publishable keys are secret keys. */
export function keyKind(record: ApiKeyRecord): ApiKeyKind {
  return record.kind ?? "secret";
}

/**
 * Which shop each key belongs to, by key hash. That never changes, so knowing
 * it lets one read fetch the key record and the shop together; both are still
 * read fresh on every request, so a revocation or a disabled shop takes effect
 * at once. Bounded: when full it starts over.
 */
const shopOfKey = new Map<string, string>();
const SHOP_OF_KEY_MAX = 10_000;

/**
 * Finds the shop behind an Authorization header (`Bearer KEY`, or the original
 * spec's `Token KEY`). Keys are looked up on every request, never cached, so a
 * revocation takes effect at once. Which routes a publishable key may call is
 * the router's business (`kind`). `alsoRead` names keys the caller will need
 * for the shop (init-payment's replay check): they come in the same read, one
 * trip to the store instead of two one after the other.
 */
export async function authenticateShop(
  kv: Deno.Kv,
  authorization: string | undefined,
  opts: { alsoRead?: (shopId: string) => Deno.KvKey[] } = {},
): Promise<{ shop: Shop; keyId: string; kind: ApiKeyKind; also: Deno.KvEntryMaybe<unknown>[] }> {
  const match = authorization?.match(/^(?:Bearer|Token)\s+(\S{1,200})$/i);
  if (!match || !(match[1].startsWith(API_KEY_PREFIX) || match[1].startsWith(PUBLISHABLE_KEY_PREFIX))) {
    throw new UnauthorizedError();
  }
  const hash = sha256Hex(match[1]);
  const { record, shop, also } = await getApiKeyAndShop(kv, hash, shopOfKey.get(hash), opts.alsoRead);
  if (!record || record.revokedAt !== null || !shop) throw new UnauthorizedError();
  if (!shopOfKey.has(hash)) {
    if (shopOfKey.size >= SHOP_OF_KEY_MAX) shopOfKey.clear();
    shopOfKey.set(hash, record.shopId);
  }
  if (shop.status !== "active") throw new AppError(403, "shop_disabled", "This shop is disabled.");
  return { shop, keyId: record.id, kind: keyKind(record), also };
}

/** A publishable key used where only a secret key will do. */
export class PublishableKeyRefusedError extends AppError {
  constructor() {
    super(
      403,
      "publishable_key_not_allowed",
      "A publishable key (apay_pk_) only reads the checkout config and mounts checkout sessions; use a secret key (apay_sk_) from your server.",
    );
  }
}
