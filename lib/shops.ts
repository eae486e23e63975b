import { z } from "zod";
import { newApiKey } from "./auth/api_keys.ts";
import { AppError, NotFoundError, ValidationError } from "./errors.ts";
import {
  addApiKey,
  type ApiKeyKind,
  type ApiKeyRecord,
  createShopWithKey,
  getShop,
  getShopEntry,
  type PreviousSecret,
  replaceShop,
  revokeApiKey,
  type Shop,
} from "./db/shops.ts";
import { sortableId } from "./ids.ts";
import { type AuditAction, writeAudit } from "./db/audit.ts";
import { isKeyPairSecret, newSigningKeyPair, newWebhookSecret, publicKeyOf } from "./relay/signing.ts";
import {
  DnsTimeoutError,
  type NormalizedUrl,
  normalizePostbackUrl,
  normalizeShopUrl,
  type Resolver,
  resolveWithDns,
} from "./relay/url_guard.ts";
import { parseOrThrow, text } from "./validation.ts";

const Hostname = z.string().trim().toLowerCase().max(253)
  .regex(/^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "is not a hostname");

/**
 * A shop's page the buyer goes back to (an invoice's or a form's `returnUrl`), judged as a payment's success URL is:
 * https, on the shop's allowed hosts: as we keep it (normalized), or why not. Null for none, or for a value that is not
 * a string (the schema's to refuse).
 */
export function judgeReturnUrl(
  shop: Pick<Shop, "allowedHosts">,
  url: unknown,
  opts: { allowLocalUrls: boolean },
): NormalizedUrl | null {
  if (typeof url !== "string" || !url) return null;
  return normalizeShopUrl(url, { allowLocal: opts.allowLocalUrls, allowedHosts: shop.allowedHosts });
}

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
  const data = parseOrThrow(NewShopSchema, input, { what: "shop" });
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
  await createShopWithKey(kv, shop, key, {
    at: opts.now,
    actor: opts.actor ?? "system",
    action: "shop.create",
    target: shop.id,
    before: null,
    after: redactShop(shop, opts.now),
  });
  return { shop, apiKey: key.key };
}

/** Adds another key to a shop (for rotation, or a publishable key for the browser); returns the key, shown once. */
export async function createShopKey(
  kv: Deno.Kv,
  shopId: string,
  { now, actor = "system", kind = "secret" }: { now: number; actor?: string; kind?: ApiKeyKind },
): Promise<{ apiKey: string; record: ApiKeyRecord }> {
  if (!(await getShop(kv, shopId))) throw new NotFoundError("Unknown shop.");
  const key = newApiKey(shopId, now, kind);
  await addApiKey(kv, key, { at: now, actor, action: "key.create", target: shopId, before: null, after: key.record });
  return { apiKey: key.key, record: key.record };
}

/** Revokes one of a shop's keys; it fails from the next request on. */
export async function revokeShopKey(
  kv: Deno.Kv,
  key: { shopId: string; keyId: string },
  { now, actor = "system" }: { now: number; actor?: string },
): Promise<ApiKeyRecord> {
  const revoked = await revokeApiKey(kv, key, {
    now,
    audit: (after) => ({ at: now, actor, action: "key.revoke", target: key.shopId, before: null, after }),
  });
  if (!revoked) throw new NotFoundError("Unknown key for this shop.");
  return revoked;
}

/**
 * The secrets postbacks and redirects are signed with now, one signature each: the current one, then every
 * replaced one still in its overlap.
 */
export function signingSecrets(shop: Signer, now: number): string[] {
  return [shop.webhookSecret, ...previousSecretsAt(shop, now).map((p) => p.secret)];
}

/** The replaced secrets or keys still signing at `now`, newest first (a record from before the list: its one). */
function previousSecretsAt(shop: Signer, now: number): PreviousSecret[] {
  const { previousWebhookSecret: secret, previousSecretExpiresAt: expiresAt } = shop;
  const stored = shop.previousSecrets ?? (secret && expiresAt ? [{ secret, expiresAt }] : []);
  return stored.filter((p) => p.expiresAt > now);
}

export const SECRET_OVERLAP_MS = 24 * 60 * 60 * 1000;

/**
 * At most this many secrets or keys sign at once: the current one and two replaced ones in their overlap. A
 * rotation never ends another's overlap early (a shop may still verify with the oldest), so one that would make
 * a fourth sign is refused instead, until the first ends or an operator ends the overlap. A rotation with an
 * overlap of 0 is one with no overlap: the replaced secret or key stops at once, so it never counts toward the
 * three, and such a rotation goes through however many sign (after a leak it is the one that must).
 */
export const MAX_SIGNING_SECRETS = 3;

/** A time in a message, as the console writes times (formatTime): UTC, to the second. */
const utc = (ms: number) => new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";

/** A rotation refused because MAX_SIGNING_SECRETS sign already; `freesAt` is when the first replaced one stops. */
export class SigningLimitError extends AppError {
  constructor(readonly freesAt: number) {
    super(
      409,
      "signing_limit",
      `${MAX_SIGNING_SECRETS} secrets or keys sign this shop's postbacks already, the most at once. The first ` +
        `previous one stops signing at ${utc(freesAt)}: rotate again after that, or end the overlap first ` +
        "(every previous secret or key then stops signing at once).",
    );
  }
}

/** Ending an overlap that is not running. */
export class NoSigningOverlapError extends AppError {
  constructor() {
    super(409, "no_signing_overlap", "Only the current secret or key signs this shop's postbacks: no overlap to end.");
  }
}

/**
 * The replaced secrets after a rotation at `now`: the current one for `overlapMs` (not at all for 0: no overlap), and
 * every one still signing.
 */
function previousAfterRotation(shop: Signer, now: number, overlapMs: number): PreviousSecret[] {
  const kept = previousSecretsAt(shop, now);
  const previous = overlapMs > 0 ? [{ secret: shop.webhookSecret, expiresAt: now + overlapMs }, ...kept] : kept;
  if (previous.length >= MAX_SIGNING_SECRETS) throw new SigningLimitError(Math.min(...kept.map((p) => p.expiresAt)));
  return previous;
}

/**
 * What the question before a rotation of a shop's signing to `scheme` (with the usual overlap) needs: the scheme it
 * has, and whether a rotation's overlap is running. One that would be refused (SigningLimitError) is refused here
 * already, and audited as a refused rotation, as the rotation itself would be.
 */
export async function previewShopRotation(
  kv: Deno.Kv,
  shopId: string,
  opts: { actor: string; now: number; scheme: SigningScheme },
): Promise<{ currentScheme: SigningScheme; rotating: boolean }> {
  const shop = await getShop(kv, shopId);
  if (!shop) throw new NotFoundError("Unknown shop.");
  const currentScheme = shopSigning(shop).scheme;
  try {
    previousAfterRotation(shop, opts.now, SECRET_OVERLAP_MS);
  } catch (err) {
    if (err instanceof SigningLimitError) {
      await auditRefusedRotation(kv, shop, err, { ...opts, current: currentScheme, overlapMs: SECRET_OVERLAP_MS });
    }
    throw err;
  }
  return { currentScheme, rotating: shopSigners(shop, opts.now).length > 1 };
}

/**
 * Writes the audit entry of a rotation refused by rule (MAX_SIGNING_SECRETS sign already): the shop's signing as it
 * stayed (kinds and ends only, never a secret), what was asked for, and why it was refused. Nothing else is written.
 */
async function auditRefusedRotation(
  kv: Deno.Kv,
  shop: Shop,
  err: SigningLimitError,
  opts: { actor: string; now: number; scheme: SigningScheme; current: SigningScheme; overlapMs: number },
): Promise<void> {
  const kept = redactShop(shop, opts.now);
  await writeAudit(kv, {
    at: opts.now,
    actor: opts.actor,
    action: `${opts.scheme === opts.current ? "shop.rotate_secret" : "shop.switch_signing"}.refused`,
    target: shop.id,
    before: kept,
    after: {
      ...kept,
      requestedScheme: opts.scheme,
      overlapHours: opts.overlapMs / 3_600_000,
      refused: err.code,
      reason: err.message,
    },
  });
}

/** Throws NoSigningOverlapError when no replaced secret or key signs: asked before confirming an end. */
export function assertOverlapRunning(shop: Signer, now: number): void {
  if (!previousSecretsAt(shop, now).length) throw new NoSigningOverlapError();
}

/** The shop with `previous` as its replaced secrets, in the list's form only. */
function withPreviousSecrets(shop: Shop, previous: PreviousSecret[]): Shop {
  const { previousSecrets: _l, previousWebhookSecret: _p, previousSecretExpiresAt: _e, ...rest } = shop;
  return previous.length ? { ...rest, previousSecrets: previous } : rest;
}

/**
 * How long an isolate signs redirects with what it last read of a shop's secrets. The buyer's way back
 * is a hot path of one KV read (the payment), so the shop is read once per isolate and TTL; a rotation
 * reaches other isolates within this time, well inside the overlap when the old key still signs too.
 */
export const REDIRECT_SIGNER_TTL_MS = 30_000;
const REDIRECT_SIGNER_MAX = 10_000;

type Signer = Pick<
  Shop,
  "webhookSecret" | "previousSecrets" | "previousWebhookSecret" | "previousSecretExpiresAt" | "signRedirects"
>;
const redirectSigners = new WeakMap<Deno.Kv, Map<string, { until: number; shop: Promise<Signer | null> }>>();

/** The secrets that sign a redirect back to the shop now, or null when the shop turned signed redirects off. */
export async function redirectSigningSecrets(kv: Deno.Kv, shopId: string, now: number): Promise<string[] | null> {
  let cache = redirectSigners.get(kv);
  if (!cache) redirectSigners.set(kv, cache = new Map());
  let hit = cache.get(shopId);
  if (!hit || hit.until <= now) {
    if (cache.size >= REDIRECT_SIGNER_MAX) cache.clear();
    // Only what signing needs stays in memory; a failed read is not remembered.
    const shop = getShop(kv, shopId).then((s) => s && pickSigner(s));
    const fresh = { until: now + REDIRECT_SIGNER_TTL_MS, shop };
    cache.set(shopId, hit = fresh);
    shop.catch(() => cache.get(shopId) === fresh && cache.delete(shopId));
  }
  const signer = await hit.shop;
  if (!signer || signer.signRedirects === false) return null;
  return signingSecrets(signer, now);
}

function pickSigner(s: Shop): Signer {
  const { webhookSecret, previousSecrets, previousWebhookSecret, previousSecretExpiresAt, signRedirects } = s;
  return { webhookSecret, previousSecrets, previousWebhookSecret, previousSecretExpiresAt, signRedirects };
}

/** This isolate signs with a shop's new secrets from its next redirect on. */
function forgetRedirectSigner(kv: Deno.Kv, shopId: string) {
  redirectSigners.get(kv)?.delete(shopId);
}

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
  action: AuditAction | (() => AuditAction),
  now: number,
  change: (shop: Shop) => Shop,
): Promise<Shop> {
  for (;;) {
    const entry = await getShopEntry(kv, shopId);
    if (!entry.value) throw new NotFoundError("Unknown shop.");
    const next = change(entry.value);
    const audit = {
      at: now,
      actor,
      action: typeof action === "string" ? action : action(),
      target: shopId,
      before: redactShop(entry.value, now),
      after: redactShop(next, now),
    };
    if (await replaceShop(kv, entry as Deno.KvEntry<Shop>, next, audit)) {
      forgetRedirectSigner(kv, shopId);
      return next;
    }
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
  }).catch((err) => {
    // On a settings form the field says so and the operator saves again; nothing is stored meanwhile.
    if (err instanceof DnsTimeoutError) return { url: null, problem: `${err.problem}; try again` };
    throw err;
  });
  if (checked.problem) throw new ValidationError("The shop is invalid.", { defaultPostbackUrl: checked.problem });
  return checked.url;
}

/**
 * A shop as the audit log keeps it: never its secrets (its public key, if any, is fine). The replaced secrets or
 * keys still signing appear by kind and end only, so the log shows each overlap begin and end.
 */
function redactShop(shop: Shop, now: number) {
  const { webhookSecret: _s, previousSecrets: _l, previousWebhookSecret: _p, previousSecretExpiresAt: _e, ...rest } =
    shop;
  const [current, ...previous] = shopSigners(shop, now);
  return {
    ...rest,
    signingScheme: current.scheme,
    ...(current.publicKey ? { publicKey: current.publicKey } : {}),
    previousSigning: previous.map((p) => `${p.scheme} until ${new Date(p.until!).toISOString()}`),
  };
}

export type SigningScheme = "hmac" | "ed25519";

/** One secret or key that signs a shop's postbacks, as people may see it: never the secret itself. */
export interface SignerView {
  scheme: SigningScheme;
  /** A key pair's `whpk_` public key; null for a shared secret. */
  publicKey: string | null;
  /** When it stops signing; null for the current one (until it is replaced). */
  until: number | null;
  /**
   * A shared secret's last 4 characters (base64 padding aside), so people can tell which one a shop verifies with (as payment dashboards
   * show a key's end); null for a key pair, which its public key names.
   */
  endsWith: string | null;
}

function signerView(secret: string, until: number | null): SignerView {
  const keyPair = isKeyPairSecret(secret);
  return {
    scheme: keyPair ? "ed25519" : "hmac",
    publicKey: keyPair ? publicKeyOf(secret) : null,
    until,
    endsWith: keyPair ? null : secret.replace(/=+$/, "").slice(-4),
  };
}

/**
 * What signs a shop's postbacks and redirects at `now`, one signature each: the current secret or key first, then
 * the replaced ones still in their overlap, newest first. For pages, the command line and the audit log.
 */
export function shopSigners(shop: Signer, now: number): SignerView[] {
  return [
    signerView(shop.webhookSecret, null),
    ...previousSecretsAt(shop, now).map((p) => signerView(p.secret, p.expiresAt)),
  ];
}

/** How a shop's postbacks are signed, and the public key a shop on key pairs verifies with. */
export function shopSigning(shop: Shop): { scheme: SigningScheme; publicKey: string | null; signRedirects: boolean } {
  const { scheme, publicKey } = signerView(shop.webhookSecret, null);
  return { scheme, publicKey, signRedirects: shop.signRedirects !== false };
}

export async function updateShopSettings(
  kv: Deno.Kv,
  shopId: string,
  input: z.input<typeof ShopSettingsSchema>,
  opts: { actor: string; allowLocalUrls: boolean; now: number; resolve?: Resolver },
): Promise<Shop> {
  const data = parseOrThrow(ShopSettingsSchema, input, { what: "shop" });
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

/**
 * A new signing secret (`scheme` "hmac": a `whsec_` secret, shown once) or key pair ("ed25519": the
 * shop gets the `whpk_` public key), in the shop's current scheme unless told otherwise. The old secret
 * or key keeps signing for `overlapMs` (24 h by default), so shops rotate or switch scheme without
 * losing a postback or a redirect's signature; one replaced earlier and still in its overlap keeps its
 * own end. Refused with SigningLimitError when that would make more than MAX_SIGNING_SECRETS sign.
 */
export async function switchShopSigning(
  kv: Deno.Kv,
  shopId: string,
  opts: { actor: string; now: number; scheme?: SigningScheme; overlapMs?: number },
): Promise<{ shop: Shop; secret: string | null; publicKey: string | null }> {
  const hmacSecret = newWebhookSecret();
  const pair = newSigningKeyPair();
  const overlapMs = opts.overlapMs ?? SECRET_OVERLAP_MS;
  if (!Number.isInteger(overlapMs) || overlapMs < 0 || overlapMs > 30 * SECRET_OVERLAP_MS) {
    throw new ValidationError("The overlap is invalid.", { overlapMs: "must be between 0 and 30 days" });
  }
  let action: AuditAction = "shop.rotate_secret";
  // The shop as the refusing read saw it (a property: a variable assigned in the callback would read as never set).
  const refused: { shop?: Shop } = {};
  const shop = await changeShop(kv, shopId, opts.actor, () => action, opts.now, (s) => {
    const current = shopSigning(s).scheme;
    const scheme = opts.scheme ?? current;
    action = scheme === current ? "shop.rotate_secret" : "shop.switch_signing";
    refused.shop = s;
    return {
      ...withPreviousSecrets(s, previousAfterRotation(s, opts.now, overlapMs)),
      webhookSecret: scheme === "ed25519" ? pair.privateKey : hmacSecret,
    };
  }).catch(async (err) => {
    // Refused by rule: nothing changes, but the attempt is on record with its reason (bad input is not: it names no
    // rotation the rules judged).
    if (err instanceof SigningLimitError && refused.shop) {
      const current = shopSigning(refused.shop).scheme;
      await auditRefusedRotation(kv, refused.shop, err, {
        actor: opts.actor,
        now: opts.now,
        scheme: opts.scheme ?? current,
        current,
        overlapMs,
      });
    }
    throw err;
  });
  return shopSigning(shop).scheme === "ed25519"
    ? { shop, secret: null, publicKey: pair.publicKey }
    : { shop, secret: hmacSecret, publicKey: null };
}

/** A new shared signing secret, shown once; the old secret or key keeps signing for 24 h so shops switch without losing postbacks. */
export async function rotateShopSecret(
  kv: Deno.Kv,
  shopId: string,
  opts: { actor: string; now: number },
): Promise<{ shop: Shop; secret: string }> {
  const { shop, secret } = await switchShopSigning(kv, shopId, { ...opts, scheme: "hmac" });
  return { shop, secret: secret! };
}

/**
 * Ends a rotation's overlap at once: every replaced secret or key stops signing and only the current one signs
 * postbacks and redirects (after a leak, or once the shop verifies with the new one). Refused when none is left.
 */
export function endSigningOverlap(kv: Deno.Kv, shopId: string, opts: { actor: string; now: number }): Promise<Shop> {
  return changeShop(kv, shopId, opts.actor, "shop.end_signing_overlap", opts.now, (s) => {
    assertOverlapRunning(s, opts.now);
    return withPreviousSecrets(s, []);
  });
}

/** The largest per-key limit a shop can be given; more than this is no limit at all for one isolate. */
export const MAX_SHOP_RATE_LIMIT = 1_000_000;

/**
 * Sets how many API requests a minute each of the shop's keys may make (per isolate); null goes back to the
 * default (RATE_LIMIT_PER_MINUTE). Takes effect on the next request: the key check reads the shop.
 */
export async function setShopRateLimit(
  kv: Deno.Kv,
  shopId: string,
  perMinute: number | null,
  opts: { actor: string; now: number },
) {
  if (perMinute !== null && (!Number.isInteger(perMinute) || perMinute < 1 || perMinute > MAX_SHOP_RATE_LIMIT)) {
    throw new ValidationError("The rate limit is invalid.", {
      rateLimitPerMinute: `must be a whole number from 1 to ${MAX_SHOP_RATE_LIMIT}, or empty for the default`,
    });
  }
  return await changeShop(
    kv,
    shopId,
    opts.actor,
    "shop.rate_limit",
    opts.now,
    (s) => ({ ...s, rateLimitPerMinute: perMinute }),
  );
}

/** The entries of a form field that lists hosts or sites, separated by spaces, commas or new lines. */
export function listFromField(text = ""): string[] {
  return text.split(/[\s,]+/).map((h) => h.trim()).filter(Boolean);
}

/** How many sites one shop may let frame its buyer pages. */
export const MAX_EMBED_ORIGINS = 20;

/**
 * A change of embedding sites that takes `removed` away, not confirmed for exactly those: taking a site away stops the
 * shop's checkout on its pages, so a person's page asks first (and sends the answer with what it named).
 */
export class UnconfirmedRemovalError extends AppError {
  constructor(readonly removed: string[]) {
    super(409, "confirmation_required", `Taking ${removed.join(", ")} off the embedding sites needs a confirmation.`);
  }
}

/**
 * Sets the sites (origins) whose pages may frame the shop's buyer pages; an empty list stops all framing.
 * Each entry must be an origin and nothing more: `https://shop.example` or `https://shop.example:8443`
 * (plain http only where local URLs are allowed, as in development). Stored in the URL's own
 * serialisation, so what we send in `frame-ancestors` is exactly what browsers compare against.
 *
 * `removing` is for pages people use (the console, the portal), which ask before a site is taken away: the sites
 * the person confirmed taking away ([] before anything was asked). A list that takes others away, or more, is
 * UnconfirmedRemovalError naming them; it is compared with the list read in the same write, so a list changed
 * meanwhile (another tab, an operator) is asked about again. Without it nothing is asked (the command line, whose
 * operator types the whole list).
 */
export function setEmbedOrigins(
  kv: Deno.Kv,
  shopId: string,
  origins: string[],
  opts: { actor: string; now: number; allowLocalUrls: boolean; removing?: string[] },
) {
  const embedOrigins = parseEmbedOrigins(origins, opts.allowLocalUrls);
  return changeShop(kv, shopId, opts.actor, "shop.embed_origins", opts.now, (s) => {
    const removed = (s.embedOrigins ?? []).filter((o) => !embedOrigins.includes(o));
    const confirmed = opts.removing === undefined ||
      (removed.length === new Set(opts.removing).size && removed.every((o) => opts.removing!.includes(o)));
    if (removed.length && !confirmed) throw new UnconfirmedRemovalError(removed);
    return { ...s, embedOrigins };
  });
}

/** An embedding site's host as the URL parser leaves it: DNS labels (punycode, lower case), or an IP address. */
const ORIGIN_HOST = /^(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)$/;

/**
 * Whether a parsed URL's host is one a site can have, fit to be written into a CSP header as it is. The URL parser
 * takes hosts no site has ("*", "a.example;sandbox", "a,b.example"): "https://*" would let every site frame the page,
 * and ";" or "," would start another directive or policy.
 */
export function isSiteHost(hostname: string): boolean {
  return ORIGIN_HOST.test(hostname);
}

/** Checks and normalises a list of embed origins; throws a ValidationError naming `embedOrigins`. */
export function parseEmbedOrigins(origins: string[], allowLocalUrls: boolean): string[] {
  const refuse = (why: string) => {
    throw new ValidationError("The embedding sites are invalid.", { embedOrigins: why });
  };
  if (origins.length > MAX_EMBED_ORIGINS) refuse(`may list at most ${MAX_EMBED_ORIGINS} sites`);
  const out = new Set<string>();
  for (const raw of origins) {
    const text = raw.trim();
    if (text.length > 300) refuse("has an entry longer than 300 characters");
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return refuse(`"${text.slice(0, 60)}" is not an origin such as https://shop.example`);
    }
    if (url.protocol !== "https:" && !(allowLocalUrls && url.protocol === "http:")) {
      refuse(`"${url.origin}" must use https`);
    }
    // An origin only (the parser gives a bare origin the path "/"): a path, query, fragment or user info would never match what the browser compares.
    if (url.origin === "null" || url.pathname !== "/" || url.search || url.hash || url.username || url.password) {
      refuse(`"${text.slice(0, 60)}" must be an origin only (scheme, host and port), such as https://shop.example`);
    }
    // Only a host name or an IP address, as browsers serialise an origin's host: the origin goes into a CSP header.
    if (!isSiteHost(url.hostname)) {
      refuse(`"${text.slice(0, 60)}" is not an origin such as https://shop.example (a host name, no wildcards)`);
    }
    out.add(url.origin);
  }
  return [...out];
}

/** Turns the signed parameters on the buyer's way back to the shop on or off. */
export function setRedirectSigning(kv: Deno.Kv, shopId: string, on: boolean, opts: { actor: string; now: number }) {
  return changeShop(kv, shopId, opts.actor, "shop.redirect_signing", opts.now, (s) => ({ ...s, signRedirects: on }));
}
