import { z } from "zod";
import { newApiKey } from "./auth/api_keys.ts";
import { NotFoundError, ValidationError } from "./errors.ts";
import { addApiKey, type ApiKeyRecord, createShopWithKey, getShop, revokeApiKey, type Shop } from "./db/shops.ts";
import { sortableId } from "./ids.ts";
import { newWebhookSecret } from "./relay/signing.ts";
import { checkShopUrl } from "./relay/url_guard.ts";
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
  opts: { allowLocalUrls: boolean; now: number },
): Promise<NewShop> {
  const data = parseOrThrow(NewShopSchema, input, "shop");
  if (data.defaultPostbackUrl) {
    const problem = checkShopUrl(data.defaultPostbackUrl, {
      allowLocal: opts.allowLocalUrls,
      allowedHosts: data.allowedHosts,
    });
    if (problem) throw new ValidationError("The shop is invalid.", { defaultPostbackUrl: problem });
  }
  const shop: Shop = {
    id: `shop_${sortableId().toLowerCase()}`,
    name: data.name,
    status: "active",
    allowedHosts: data.allowedHosts,
    defaultPostbackUrl: data.defaultPostbackUrl,
    webhookSecret: newWebhookSecret(),
    createdAt: opts.now,
  };
  const key = await newApiKey(shop.id, opts.now);
  await createShopWithKey(kv, shop, key.record, key.hash);
  return { shop, apiKey: key.key };
}

/** Adds another key to a shop (for rotation); returns the key, shown once. */
export async function createShopKey(
  kv: Deno.Kv,
  shopId: string,
  now: number,
): Promise<{ apiKey: string; record: ApiKeyRecord }> {
  if (!(await getShop(kv, shopId))) throw new NotFoundError("Unknown shop.");
  const key = await newApiKey(shopId, now);
  await addApiKey(kv, key.record, key.hash);
  return { apiKey: key.key, record: key.record };
}

export async function revokeShopKey(kv: Deno.Kv, shopId: string, keyId: string, now: number): Promise<ApiKeyRecord> {
  const revoked = await revokeApiKey(kv, shopId, keyId, now);
  if (!revoked) throw new NotFoundError("Unknown key for this shop.");
  return revoked;
}
