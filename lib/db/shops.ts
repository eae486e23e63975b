import { ConflictError } from "../errors.ts";
import { collectValues } from "./kv.ts";
import { groupReader } from "./group_read.ts";
import { addAuditOps, type NewAuditEntry } from "./audit.ts";
import type { ShopRouting } from "../accounts/types.ts";

export interface Shop {
  id: string;
  name: string;
  status: "active" | "disabled";
  /** Lower-case hostnames the shop's URLs may point at; empty = any. */
  allowedHosts: string[];
  defaultPostbackUrl: string | null;
  /**
   * What signs the shop's postbacks and redirects: a shared secret (`whsec_...`, HMAC, shown to the shop
   * once) or, for a shop on key pairs, our Ed25519 private key (`whsk_...`, never shown; the shop gets
   * its `whpk_` public key). Never in a listing, a log or an audit entry.
   */
  webhookSecret: string;
  /**
   * Secrets or keys replaced by a rotation or a switch of scheme, newest first: each keeps signing beside the
   * current one until its own `expiresAt` (the overlap promised when it was replaced). Secret like `webhookSecret`.
   */
  previousSecrets?: PreviousSecret[];
  /** How records written before `previousSecrets` kept their one replaced secret; read as that list's only entry. */
  previousWebhookSecret?: string | null;
  previousSecretExpiresAt?: number | null;
  /** API requests each of its keys may make per minute (per isolate); absent or null = RATE_LIMIT_PER_MINUTE. */
  rateLimitPerMinute?: number | null;
  /** False when the shop turned signed redirects off; absent means on. */
  signRedirects?: boolean;
  createdAt: number;
  /** Which accounts take its payments; absent = the platform default. Kept on the shop so the key lookup reads it. */
  routing?: ShopRouting;
  /**
   * Origins (`https://shop.example`) whose pages may frame the shop's buyer pages (embedded checkout, forms);
   * absent or empty = nobody may. Every other page of ours refuses to be framed.
   */
  embedOrigins?: string[];
}

/** A replaced signing secret or key, still signing until `expiresAt`. */
export interface PreviousSecret {
  secret: string;
  expiresAt: number;
}

/** A secret key (`apay_sk_`, the server's) or a publishable one (`apay_pk_`, safe in a browser). */
export type ApiKeyKind = "secret" | "publishable";

export interface ApiKeyRecord {
  id: string;
  shopId: string;
  /** The first characters of the key, so people can tell keys apart. */
  hint: string;
  createdAt: number;
  revokedAt: number | null;
  /** Absent on secret keys (every key made before publishable ones existed). */
  kind?: ApiKeyKind;
  /** The whole key, for publishable keys only: it is public, and the checkout config hands it out. */
  publishableKey?: string;
}

const shopKey = (id: string) => ["shops", id] as const;
const apiKeyKey = (hash: string) => ["api_keys", hash] as const;
const apiKeyByShopKey = (shopId: string, keyId: string) => ["api_keys_by_shop", shopId, keyId] as const;

/** Stores a shop together with its first API key and its audit entry, in one atomic operation. */
export async function createShopWithKey(
  kv: Deno.Kv,
  shop: Shop,
  key: { record: ApiKeyRecord; hash: string },
  audit: NewAuditEntry,
) {
  const op = kv.atomic()
    .check({ key: shopKey(shop.id), versionstamp: null })
    .check({ key: apiKeyKey(key.hash), versionstamp: null })
    .set(shopKey(shop.id), shop)
    .set(apiKeyKey(key.hash), key.record)
    .set(apiKeyByShopKey(shop.id, key.record.id), key.hash);
  if (!(await addAuditOps(op, audit).commit()).ok) throw new ConflictError("Shop or key already exists.");
}

export function getShopEntry(kv: Deno.Kv, id: string): Promise<Deno.KvEntryMaybe<Shop>> {
  return kv.get<Shop>(shopKey(id));
}

/** Replaces a shop read as `entry`, with its audit record, in one atomic operation; false if it changed meanwhile. */
export async function replaceShop(kv: Deno.Kv, entry: Deno.KvEntry<Shop>, next: Shop, audit: NewAuditEntry) {
  const op = kv.atomic().check(entry).set(shopKey(next.id), next);
  return (await addAuditOps(op, audit).commit()).ok;
}

export async function getShop(kv: Deno.Kv, id: string): Promise<Shop | null> {
  return (await kv.get<Shop>(shopKey(id))).value;
}

/** A shop read on a hot path (each postback attempt), sharing its read with concurrent ones: read-only. */
export async function getShopShared(kv: Deno.Kv, id: string): Promise<Shop | null> {
  const [entry] = await groupReader(kv).getMany<[Shop]>([shopKey(id)]);
  return entry.value;
}

/** The names of the shops `ids` names, by id (a shop gone since is left out): for pages that list other records. */
export async function getShopNames(kv: Deno.Kv, ids: Iterable<string>): Promise<Map<string, string>> {
  const unique = [...new Set(ids)];
  const names = new Map<string, string>();
  // getMany reads at most 10 keys at a time.
  for (let i = 0; i < unique.length; i += 10) {
    for (const entry of await kv.getMany<Shop[]>(unique.slice(i, i + 10).map(shopKey))) {
      if (entry.value) names.set(entry.value.id, entry.value.name);
    }
  }
  return names;
}

export function listShops(kv: Deno.Kv): Promise<Shop[]> {
  return collectValues(kv.list<Shop>({ prefix: ["shops"] }));
}

/** Stores another key of a shop with its audit entry, in one atomic operation. */
export async function addApiKey(kv: Deno.Kv, key: { record: ApiKeyRecord; hash: string }, audit: NewAuditEntry) {
  const op = kv.atomic()
    .check({ key: apiKeyKey(key.hash), versionstamp: null })
    .set(apiKeyKey(key.hash), key.record)
    .set(apiKeyByShopKey(key.record.shopId, key.record.id), key.hash);
  if (!(await addAuditOps(op, audit).commit()).ok) throw new ConflictError("Key already exists.");
}

/**
 * A key record and its shop, and the keys `alsoRead` names for that shop, in
 * one snapshot. Given the shop the key belongs to (`shopId`), it is all one
 * read; otherwise the shop and the other keys are read after the key.
 */
export async function getApiKeyAndShop(
  kv: Deno.Kv,
  keyHash: string,
  shopId?: string,
  alsoRead: (shopId: string) => Deno.KvKey[] = () => [],
): Promise<{ record: ApiKeyRecord | null; shop: Shop | null; also: Deno.KvEntryMaybe<unknown>[] }> {
  const readWith = (id: string, ...first: Deno.KvKey[]) =>
    groupReader(kv).getMany<unknown[]>([...first, shopKey(id), ...alsoRead(id)]);
  if (shopId) {
    const [record, shop, ...also] = await readWith(shopId, apiKeyKey(keyHash));
    const value = record.value as ApiKeyRecord | null;
    if (value?.shopId === shopId) return { record: value, shop: shop.value as Shop | null, also };
  }
  const record = (await kv.get<ApiKeyRecord>(apiKeyKey(keyHash))).value;
  if (!record) return { record, shop: null, also: [] };
  const [shop, ...also] = await readWith(record.shopId);
  return { record, shop: shop.value as Shop | null, also };
}

/**
 * Marks a key revoked, with its audit entry (given the key as revoked) in one atomic operation; the very next request
 * with it fails because lookups are never cached.
 */
export async function revokeApiKey(
  kv: Deno.Kv,
  key: { shopId: string; keyId: string },
  opts: { now: number; audit: (revoked: ApiKeyRecord) => NewAuditEntry },
): Promise<ApiKeyRecord | null> {
  const hash = (await kv.get<string>(apiKeyByShopKey(key.shopId, key.keyId))).value;
  if (!hash) return null;
  const entry = await kv.get<ApiKeyRecord>(apiKeyKey(hash));
  if (!entry.value) return null;
  const revoked = { ...entry.value, revokedAt: entry.value.revokedAt ?? opts.now };
  const op = kv.atomic().check(entry).set(apiKeyKey(hash), revoked);
  if (!(await addAuditOps(op, opts.audit(revoked)).commit()).ok) throw new ConflictError();
  return revoked;
}

export async function listApiKeys(kv: Deno.Kv, shopId: string): Promise<ApiKeyRecord[]> {
  const hashes = await collectValues(kv.list<string>({ prefix: ["api_keys_by_shop", shopId] }));
  const entries = await Promise.all(hashes.map((h) => kv.get<ApiKeyRecord>(apiKeyKey(h))));
  return entries.flatMap((e) => (e.value ? [e.value] : []));
}
