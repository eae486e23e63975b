/**
 * Operator commands for shops and keys:
 *   deno task shop route SHOP_ID --account ACCOUNT_ID [--currency C] [--type fiat|crypto] --actor EMAIL
 *     (adds a rule; with neither --currency nor --type it sets the shop's default account)
 *   deno task shop create --name NAME [--allowed-host HOST]... [--postback-url URL] --actor EMAIL
 *   deno task shop key create SHOP_ID [--publishable] --actor EMAIL
 *     (--publishable: apay_pk_, for the embedded checkout in the browser)
 *   deno task shop key revoke SHOP_ID KEY_ID --actor EMAIL
 *   deno task shop list
 *   deno task shop signing SHOP_ID ed25519|hmac [--overlap-hours H] --actor EMAIL
 *   deno task shop signing SHOP_ID end-overlap --actor EMAIL   (every previous secret or key stops signing now)
 *   deno task shop redirects SHOP_ID on|off --actor EMAIL
 *   deno task shop embed SHOP_ID [--origin https://shop.example]... --actor EMAIL
 *     (no --origin: nobody may frame its pages)
 * Every command but list is audited under the operator who runs it: --actor is their (active) operator email,
 * recorded as `EMAIL (cli)`.
 * Keys and secrets are printed once, at creation; we keep only the key's hash.
 * A shop on key pairs gets its public key (`whpk_...`) from `list` at any time.
 */
import { listApiKeys, listShops } from "../lib/db/shops.ts";
import {
  createShop,
  createShopKey,
  endSigningOverlap,
  revokeShopKey,
  SECRET_OVERLAP_MS,
  setEmbedOrigins,
  setRedirectSigning,
  shopSigners,
  shopSigning,
  SigningLimitError,
  switchShopSigning,
} from "../lib/shops.ts";
import {
  ACTOR_OPTION,
  ACTOR_USAGE,
  fail,
  parseCommandArgs,
  printJson,
  refuseOptionsNotTaken,
  requireActor,
  runCommand,
} from "./_context.ts";
import { addShopRoute } from "../lib/accounts/routing.ts";
import { keyKind } from "../lib/auth/api_keys.ts";

const USAGE = `usage:
  deno task shop route SHOP_ID --account ACCOUNT_ID [--currency C] [--type fiat|crypto] --actor EMAIL
  deno task shop create --name NAME [--allowed-host HOST]... [--postback-url URL] --actor EMAIL
  deno task shop key create SHOP_ID [--publishable] --actor EMAIL   (a browser key for the embedded checkout)
  deno task shop key revoke SHOP_ID KEY_ID --actor EMAIL
  deno task shop list
  deno task shop signing SHOP_ID ed25519|hmac [--overlap-hours H] --actor EMAIL
    (--overlap-hours: default 24, the old secret or key signs too; 0 to 720, 0: it stops at once and does not count
    toward the three that may sign)
  deno task shop signing SHOP_ID end-overlap --actor EMAIL   (every previous secret or key stops signing at once)
  deno task shop redirects SHOP_ID on|off --actor EMAIL
  deno task shop embed SHOP_ID [--origin ORIGIN]... --actor EMAIL
    (sites that may frame its checkout and forms; none = nobody)
${ACTOR_USAGE}`;

/** Where the operator gives each field a refusal names: the option (a route's fields are its rule's). */
const GIVEN_AS = {
  name: "--name",
  allowedHosts: "--allowed-host",
  defaultPostbackUrl: "--postback-url",
  embedOrigins: "--origin",
  "rules.accountId": "--account",
  defaultAccountId: "--account",
  "rules.currency": "--currency",
  "rules.type": "--type",
};

/** The longest overlap a rotation takes (switchShopSigning's 30 days), in the hours the option is given in. */
const MAX_OVERLAP_HOURS = (30 * SECRET_OVERLAP_MS) / 3_600_000;

const { values, positionals, given } = parseCommandArgs({
  account: { type: "string" },
  currency: { type: "string" },
  type: { type: "string" },
  name: { type: "string" },
  "allowed-host": { type: "string", multiple: true },
  "postback-url": { type: "string" },
  "overlap-hours": { type: "string" },
  origin: { type: "string", multiple: true },
  publishable: { type: "boolean" },
  ...ACTOR_OPTION,
}, USAGE);

// Checked before the store is opened: a call that is not one of the commands above gets the usage, not a complaint
// about the database it never needed. An argument too many is refused too, not ignored (see parseCommandArgs).
const [cmd, sub, ...rest] = positionals;
const signing = cmd === "signing" && rest.length === 1 ? rest[0] : undefined;
const valid = (cmd === "route" && sub && !rest.length && values.account) || (cmd === "create" && values.name && !sub) ||
  (cmd === "key" && ((sub === "create" && rest.length === 1) || (sub === "revoke" && rest.length === 2))) ||
  signing === "ed25519" || signing === "hmac" || signing === "end-overlap" ||
  (cmd === "redirects" && rest.length === 1 && (rest[0] === "on" || rest[0] === "off")) ||
  (cmd === "embed" && sub && !rest.length) || (cmd === "list" && !sub);
if (!valid) fail(USAGE);
const command = cmd === "key" ? `shop key ${sub}` : `shop ${cmd}`;
/** The options each command reads besides --actor. */
const OPTIONS_TAKEN: Record<string, string[]> = {
  route: ["account", "currency", "type"],
  create: ["name", "allowed-host", "postback-url"],
  "key create": ["publishable"],
  signing: signing === "end-overlap" ? [] : ["overlap-hours"],
  embed: ["origin"],
};
refuseOptionsNotTaken(given, OPTIONS_TAKEN[cmd === "key" ? command.slice(5) : cmd] ?? [], command, USAGE);
const actorEmail = cmd === "list" ? undefined : requireActor(values.actor, command, USAGE);
const overlapHours = signing === "ed25519" || signing === "hmac" ? parseOverlapHours(values["overlap-hours"]) : 0;

await runCommand(async (server, actor) => {
  const { kv, config } = server.ctx;
  const now = Date.now();
  if (cmd === "route") {
    const { routing, changed } = await addShopRoute(server.ctx, sub, {
      accountId: values.account!, // checked above, before the store was opened
      currency: values.currency,
      type: values.type,
    }, { actor });
    if (!changed) console.error(`note: shop ${sub} is already routed so; nothing changed`);
    printJson({ shopId: sub, routing });
  } else if (cmd === "create") {
    const { shop, apiKey } = await createShop(kv, {
      name: values.name!, // checked above
      allowedHosts: values["allowed-host"] ?? [],
      defaultPostbackUrl: values["postback-url"] ?? null,
    }, { allowLocalUrls: config.allowLocalUrls, now, actor });
    printJson({ shopId: shop.id, apiKey, webhookSecret: shop.webhookSecret });
  } else if (cmd === "key" && sub === "create" && rest.length === 1) {
    const kind = values.publishable ? "publishable" : "secret";
    const { apiKey, record } = await createShopKey(kv, rest[0], { now, actor, kind });
    printJson({ shopId: record.shopId, keyId: record.id, kind, apiKey });
  } else if (cmd === "key" && sub === "revoke" && rest.length === 2) {
    const record = await revokeShopKey(kv, { shopId: rest[0], keyId: rest[1] }, { now, actor });
    printJson({ shopId: record.shopId, keyId: record.id, revokedAt: new Date(record.revokedAt!).toISOString() });
  } else if (signing === "ed25519" || signing === "hmac") {
    const { shop, secret, publicKey } = await switchShopSigning(kv, sub, {
      actor,
      now,
      scheme: signing,
      overlapMs: Math.round(overlapHours * 3_600_000),
    }).catch((err) => {
      // The way out only the command line has: with no overlap the replaced one stops at once and does not count.
      if (err instanceof SigningLimitError) {
        fail(`${err.code}: ${err.message} Or rotate with --overlap-hours 0: the replaced one then stops at once.`);
      }
      throw err;
    });
    printJson({
      shopId: shop.id,
      signingScheme: signing,
      ...(publicKey ? { publicKey } : { webhookSecret: secret }),
      previousSigning: previousSigning(shop, now),
    });
  } else if (signing === "end-overlap") {
    const shop = await endSigningOverlap(kv, sub, { actor, now });
    printJson({ shopId: shop.id, ...signingView(shop, now) });
  } else if (cmd === "redirects") {
    const shop = await setRedirectSigning(kv, sub, rest[0] === "on", { actor, now });
    printJson({ shopId: shop.id, signRedirects: shopSigning(shop).signRedirects });
  } else if (cmd === "embed") {
    const shop = await setEmbedOrigins(kv, sub, values.origin ?? [], {
      actor,
      now,
      allowLocalUrls: config.allowLocalUrls,
    });
    printJson({ shopId: shop.id, embedOrigins: shop.embedOrigins });
  } else {
    const shops = await listShops(kv);
    printJson(
      await Promise.all(shops.map(async (s) => ({
        shopId: s.id,
        name: s.name,
        status: s.status,
        allowedHosts: s.allowedHosts,
        defaultPostbackUrl: s.defaultPostbackUrl,
        embedOrigins: s.embedOrigins ?? [],
        ...signingView(s, now),
        keys: (await listApiKeys(kv, s.id)).map((k) => ({
          keyId: k.id,
          kind: keyKind(k),
          // A publishable key is public (it sits in the shop's pages): shown whole; a secret key never is.
          ...(k.publishableKey ? { publishableKey: k.publishableKey } : { hint: k.hint + "…" }),
          createdAt: new Date(k.createdAt).toISOString(),
          revokedAt: k.revokedAt ? new Date(k.revokedAt).toISOString() : null,
        })),
      }))),
    );
  }
}, { givenAs: GIVEN_AS, actor: actorEmail });

/** --overlap-hours as hours (24 when not given), or the command ends saying what it takes. */
function parseOverlapHours(option: string | undefined): number {
  const given = option?.trim();
  const hours = given === undefined ? 24 : given === "" ? NaN : Number(given);
  if (!(hours >= 0 && hours <= MAX_OVERLAP_HOURS)) {
    fail(`--overlap-hours must be a number of hours from 0 (no overlap) to ${MAX_OVERLAP_HOURS}\n${USAGE}`);
  }
  return hours;
}

type ShopRecord = Parameters<typeof shopSigning>[0];

/** How a shop signs, for `list`: its public key if on key pairs, never a secret; what else signs until when. */
function signingView(shop: ShopRecord, now: number) {
  const { scheme, publicKey, signRedirects } = shopSigning(shop);
  return {
    signingScheme: scheme,
    ...(publicKey ? { publicKey } : {}),
    previousSigning: previousSigning(shop, now),
    signRedirects,
  };
}

/** The replaced secrets or keys still signing, newest first: their kind, a key pair's public key, and until when. */
function previousSigning(shop: ShopRecord, now: number) {
  return shopSigners(shop, now).slice(1).map((p) => ({
    signingScheme: p.scheme,
    ...(p.publicKey ? { publicKey: p.publicKey } : {}),
    signsUntil: new Date(p.until!).toISOString(),
  }));
}
