/**
 * Operator commands for shops and keys:
 *   deno task shop create --name NAME [--allowed-host HOST]... [--postback-url URL]
 *   deno task shop key create SHOP_ID
 *   deno task shop key revoke SHOP_ID KEY_ID
 *   deno task shop list
 * Keys and secrets are printed once, at creation; we keep only the key's hash.
 */
import { parseArgs } from "node:util";
import { listApiKeys, listShops } from "../lib/db/shops.ts";
import { createShop, createShopKey, revokeShopKey } from "../lib/shops.ts";
import { fail, printJson, runCommand } from "./_context.ts";

const USAGE = `usage:
  deno task shop create --name NAME [--allowed-host HOST]... [--postback-url URL]
  deno task shop key create SHOP_ID
  deno task shop key revoke SHOP_ID KEY_ID
  deno task shop list`;

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    name: { type: "string" },
    "allowed-host": { type: "string", multiple: true },
    "postback-url": { type: "string" },
  },
});

await runCommand(async (server) => {
  const { kv, config } = server.ctx;
  const now = Date.now();
  const [cmd, sub, ...rest] = positionals;
  if (cmd === "create") {
    if (!values.name) fail(USAGE);
    const { shop, apiKey } = await createShop(kv, {
      name: values.name,
      allowedHosts: values["allowed-host"] ?? [],
      defaultPostbackUrl: values["postback-url"] ?? null,
    }, { allowLocalUrls: config.allowLocalUrls, now, actor: "cli" });
    printJson({ shopId: shop.id, apiKey, webhookSecret: shop.webhookSecret });
  } else if (cmd === "key" && sub === "create" && rest.length === 1) {
    const { apiKey, record } = await createShopKey(kv, rest[0], { now, actor: "cli" });
    printJson({ shopId: record.shopId, keyId: record.id, apiKey });
  } else if (cmd === "key" && sub === "revoke" && rest.length === 2) {
    const record = await revokeShopKey(kv, { shopId: rest[0], keyId: rest[1] }, { now, actor: "cli" });
    printJson({ shopId: record.shopId, keyId: record.id, revokedAt: new Date(record.revokedAt!).toISOString() });
  } else if (cmd === "list") {
    const shops = await listShops(kv);
    printJson(
      await Promise.all(shops.map(async (s) => ({
        shopId: s.id,
        name: s.name,
        status: s.status,
        allowedHosts: s.allowedHosts,
        defaultPostbackUrl: s.defaultPostbackUrl,
        keys: (await listApiKeys(kv, s.id)).map((k) => ({
          keyId: k.id,
          hint: k.hint + "…",
          createdAt: new Date(k.createdAt).toISOString(),
          revokedAt: k.revokedAt ? new Date(k.revokedAt).toISOString() : null,
        })),
      }))),
    );
  } else {
    fail(USAGE);
  }
});
