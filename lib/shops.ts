import { z } from "zod";
import { newApiKey } from "./auth/api_keys.ts";
import { NotFoundError, ValidationError } from "./errors.ts";
import {
  addApiKey,
  type ApiKeyRecord,
  createShopWithKey,
  getShop,
  getShopEntry,
  replaceShop,
  revokeApiKey,
  type Shop,
} from "./db/shops.ts";
import { sortableId } from "./ids.ts";
import { writeAudit } from "./db/audit.ts";
import { newWebhookSecret } from "./relay/signing.ts";
import { normalizePostbackUrl, type Resolver, resolveWithDns } from "./relay/url_guard.ts";
import { parseOrThrow, text } from "./validation.ts";

const Hostname = z.string().trim().toLowerCase().max(253)
  .regex(/^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "is not a hostname");

export const NewShopSchema = z.strictObject({
  name: text(1, 100),
  allowedHosts: z.array(Hostname).max(50).default([]),
  defaultPostbackUrl: z.string().max(2048).nullable().default(null),
});

export interface NewShop {
  shop: Shop;
  /** Shown once; we keep only its hash. */
  apiKey: string;
}

/** Creates a shop with its first API key and postback signing secret. */
export async function createShop(
  kv: Deno.Kv,
  input: z.input<typeof NewShopSchema>,
  opts: { allowLocalUrls: boolean; now: number; actor?: string; resolve?: Resolver },
): Promise<NewShop> {
  const data = parseOrThrow(NewShopSchema, input, "shop");
  data.defaultPostbackUrl = await checkDefaultPostbackUrl(data, opts);
  const shop: Shop = {
    id: `shop_${sortableId().toLowerCase()}`,
    name: data.name,
    status: "active",
    allowedHosts: data.allowedHosts,
    defaultPostbackUrl: data.defaultPostbackUrl,
    webhookSecret: newWebhookSecret(),
    createdAt: opts.now,
  };
  const key = newApiKey(shop.id, opts.now);
  await createShopWithKey(kv, shop, key.record, key.hash);
  await writeAudit(kv, {
    at: opts.now,
    actor: opts.actor ?? "system",
    action: "shop.create",
    target: shop.id,
    before: null,
    after: redactShop(shop),
  });
  return { shop, apiKey: key.key };
}

/** Adds another key to a shop (for rotation); returns the key, shown once. */
export async function createShopKey(
  kv: Deno.Kv,
  shopId: string,
  { now, actor = "system" }: { now: number; actor?: string },
): Promise<{ apiKey: string; record: ApiKeyRecord }> {
  if (!(await getShop(kv, shopId))) throw new NotFoundError("Unknown shop.");
  const key = newApiKey(shopId, now);
  await addApiKey(kv, key.record, key.hash);
  await writeAudit(kv, { at: now, actor, action: "key.create", target: shopId, before: null, after: key.record });
  return { apiKey: key.key, record: key.record };
}

/** Revokes one of a shop's keys; it fails from the next request on. */
export async function revokeShopKey(
  kv: Deno.Kv,
  key: { shopId: string; keyId: string },
  { now, actor = "system" }: { now: number; actor?: string },
): Promise<ApiKeyRecord> {
  const { shopId, keyId } = key;
  const revoked = await revokeApiKey(kv, shopId, keyId, now);
  if (!revoked) throw new NotFoundError("Unknown key for this shop.");
  await writeAudit(kv, { at: now, actor, action: "key.revoke", target: shopId, before: null, after: revoked });
  return revoked;
}

/** The secrets postbacks are signed with now: the current one, plus the previous one during a rotation's overlap. */
export function signingSecrets(shop: Shop, now: number): string[] {
  const previous = shop.previousWebhookSecret && (shop.previousSecretExpiresAt ?? 0) > now
    ? [shop.previousWebhookSecret]
    : [];
  return [shop.webhookSecret, ...previous];
}

export const SECRET_OVERLAP_MS = 24 * 60 * 60 * 1000;

export const ShopSettingsSchema = z.strictObject({
  name: text(1, 100),
  allowedHosts: z.array(Hostname).max(50),
  defaultPostbackUrl: z.string().max(2048).nullable(),
});

/** Applies an edit to a shop (read-modify-write with audit), retrying if someone else saved first. */
async function changeShop(
  kv: Deno.Kv,
  shopId: string,
  actor: string,
  action: string,
  now: number,
  change: (shop: Shop) => Shop,
): Promise<Shop> {
  for (;;) {
    const entry = await getShopEntry(kv, shopId);
    if (!entry.value) throw new NotFoundError("Unknown shop.");
    const next = change(entry.value);
    const audit = { at: now, actor, action, target: shopId, before: redactShop(entry.value), after: redactShop(next) };
    if (await replaceShop(kv, entry as Deno.KvEntry<Shop>, next, audit)) return next;
  }
}

/**
 * A shop's default postback URL passes the same guard as a payment's own
 * (URL rules, then where its host resolves to) and is kept in the same form.
 */
async function checkDefaultPostbackUrl(
  data: { defaultPostbackUrl: string | null; allowedHosts: string[] },
  opts: { allowLocalUrls: boolean; resolve?: Resolver },
): Promise<string | null> {
  if (!data.defaultPostbackUrl) return null;
  const checked = await normalizePostbackUrl(data.defaultPostbackUrl, {
    allowLocal: opts.allowLocalUrls,
    allowedHosts: data.allowedHosts,
    resolve: opts.resolve ?? resolveWithDns,
  });
  if (checked.problem) throw new ValidationError("The shop is invalid.", { defaultPostbackUrl: checked.problem });
  return checked.url;
}

/** A shop as the audit log keeps it: never its secrets. */
function redactShop(shop: Shop) {
  const { webhookSecret: _s, previousWebhookSecret: _p, ...rest } = shop;
  return rest;
}

export async function updateShopSettings(
  kv: Deno.Kv,
  shopId: string,
  input: z.input<typeof ShopSettingsSchema>,
  opts: { actor: string; allowLocalUrls: boolean; now: number; resolve?: Resolver },
): Promise<Shop> {
  const data = parseOrThrow(ShopSettingsSchema, input, "shop");
  data.defaultPostbackUrl = await checkDefaultPostbackUrl(data, opts);
  return await changeShop(kv, shopId, opts.actor, "shop.update", opts.now, (s) => ({ ...s, ...data }));
}

export function setShopStatus(
  kv: Deno.Kv,
  shopId: string,
  status: Shop["status"],
  opts: { actor: string; now: number },
) {
  return changeShop(kv, shopId, opts.actor, status === "active" ? "shop.enable" : "shop.disable", opts.now, (s) => ({
    ...s,
    status,
  }));
}

/** A new signing secret, shown once; the old one keeps signing for 24 h so shops can switch without losing postbacks. */
export async function rotateShopSecret(
  kv: Deno.Kv,
  shopId: string,
  opts: { actor: string; now: number },
): Promise<{ shop: Shop; secret: string }> {
  const secret = newWebhookSecret();
  const shop = await changeShop(kv, shopId, opts.actor, "shop.rotate_secret", opts.now, (s) => ({
    ...s,
    webhookSecret: secret,
    previousWebhookSecret: s.webhookSecret,
    previousSecretExpiresAt: opts.now + SECRET_OVERLAP_MS,
  }));
  return { shop, secret };
}
