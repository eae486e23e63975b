import { AppError, UnauthorizedError } from "../errors.ts";
import { getApiKeyByHash, getShop, type Shop } from "../db/shops.ts";
import { base64url, randomBytes, randomId, sha256Hex } from "../ids.ts";
import type { ApiKeyRecord } from "../db/shops.ts";

/** Readable prefix so leaked keys are recognisable (and findable by secret scanners). */
export const API_KEY_PREFIX = "apay_sk_";

/** A new key: the prefix plus 192 random bits. Only its SHA-256 is stored. */
export function newApiKey(shopId: string, now: number): { key: string; hash: string; record: ApiKeyRecord } {
  const key = API_KEY_PREFIX + base64url(randomBytes(24));
  const record: ApiKeyRecord = {
    id: randomId("key"),
    shopId,
    hint: key.slice(0, API_KEY_PREFIX.length + 4),
    createdAt: now,
    revokedAt: null,
  };
  return { key, hash: sha256Hex(key), record };
}

/**
 * Finds the shop behind an Authorization header (`Bearer KEY`, or the original
 * spec's `Token KEY`). Keys are looked up on every request, never cached, so a
 * revocation takes effect at once.
 */
export async function authenticateShop(kv: Deno.Kv, authorization: string | undefined): Promise<Shop> {
  const match = authorization?.match(/^(?:Bearer|Token)\s+(\S{1,200})$/i);
  if (!match || !match[1].startsWith(API_KEY_PREFIX)) throw new UnauthorizedError();
  const record = await getApiKeyByHash(kv, sha256Hex(match[1]));
  if (!record || record.revokedAt !== null) throw new UnauthorizedError();
  const shop = await getShop(kv, record.shopId);
  if (!shop) throw new UnauthorizedError();
  if (shop.status !== "active") throw new AppError(403, "shop_disabled", "This shop is disabled.");
  return shop;
}
