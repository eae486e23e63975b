import type { AppContext } from "../context.ts";
import { idempotencyMismatch, UpstreamError, ValidationError } from "../errors.ts";
import { createPayment, type PaymentNameEntry, paymentNameRecordKey, reservePaymentName } from "../db/payments.ts";
import type { Shop } from "../db/shops.ts";
import { sequentialId, sortableId } from "../ids.ts";
import { sha256Hex } from "../crypto.ts";
import { log } from "../log.ts";
import { checkPostbackDestination, DnsTimeoutError, normalizeShopUrl, type UrlRules } from "../relay/url_guard.ts";
import {
  bodyFields,
  idempotencyKeyOf,
  idempotencyKeyProblems,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  parseAllowingStoredCurrencies,
  refuseUntakenCurrency,
} from "../validation.ts";
import { type InitPaymentInput, initPaymentSchema, normalizeInit } from "./schema.ts";
import type { Payment } from "./types.ts";
import { type PaymentName, paymentNameOf } from "./names.ts";
import { findNamedPayment, lookUpPaymentName } from "./query.ts";
import { firstCheckAt } from "./janitor.ts";
import { routePayment } from "../accounts/routing.ts";
import { accountWebhookPath } from "../accounts/types.ts";
import { insertOperation } from "../db/operations.ts";
import { providerRequestId } from "../providers/request_id.ts";

export interface InitResult {
  payment: Payment;
  /** True when this answers a retry of a request already handled. */
  replay: boolean;
}

/**
 * Requests in flight in this app instance (one per isolate), by shop and name:
 * concurrent copies of one request share a single provider call.
 */
const inFlightByApp = new WeakMap<AppContext, Map<string, Promise<Flight>>>();

/** What one provider call for a payment came to: the payment, and whether this call stored it. */
interface Flight {
  payment: Payment;
  stored: boolean;
}

/** What a payment keeps of the request besides the validated body. */
interface RequestExtras {
  postbackUrl: string | null;
  requestHash: string;
  idempotencyKey: string | null;
  checkout?: CheckoutBinding;
}

/**
 * A payment made for an embedded checkout session (lib/checkout): its success and error URLs are our own
 * checkout page (not the shop's, so not judged against its allowed hosts), the provider's pay page may be
 * framed by the shop's embedding sites, and the session record commits with the payment.
 */
export interface CheckoutBinding {
  sessionId: string;
  /** The session's writes, added to the payment's atomic operation; `providerClientSecret` from a provider's own embedded checkout. */
  extraOps: (op: Deno.AtomicOperation, payment: Payment, providerClientSecret: string | null) => void;
}

/**
 * Creates a payment for a shop: validates the body, asks the provider, and
 * stores the payment in one atomic operation.
 *
 * Idempotency by name: a request with the shop's `id` (or an Idempotency-Key)
 * is stored with that name's key (lib/db/payments.ts), which says which
 * payment the name names and lets exactly one payment take it. A finished
 * request is answered again from there without calling the provider; the same
 * name with another body is refused. Copies in the same isolate share one
 * provider call. A copy racing in another isolate, or a retry after an attempt
 * that reached the provider but stored nothing, asks the provider for a
 * payment of its own; only the one stored under the name is ever shown (its
 * URL is our wrapper's), and every copy is answered with it.
 */
export async function initPayment(
  ctx: AppContext,
  shop: Shop,
  body: unknown,
  opts: { idempotencyKey?: string | null; checkout?: CheckoutBinding; readAhead?: ReadAhead } = {},
): Promise<InitResult> {
  const maxAmount = ctx.config.maxAmount;
  const ownReturnUrls = !!opts.checkout;
  const asSent = normalizeInit(parseAllowingStoredCurrencies(
    {
      taken: initPaymentSchema(maxAmount),
      stored: initPaymentSchema(maxAmount, "stored"),
    },
    body,
    {
      others: (raw) => ({
        ...idempotencyKeyProblems(opts.idempotencyKey),
        ...urlProblemsAsSent(ctx, shop, raw, { ownReturnUrls }),
      }),
    },
  ));
  // The header is read before a retry is looked for: a new payment in a fund code is refused with its problem too,
  // not once the header is right.
  const idempotencyKey = idempotencyKeyOf(
    opts.idempotencyKey,
    (keyProblems) =>
      refuseUntakenCurrency(asSent.currency, () => ({
        ...keyProblems,
        ...urlProblemsAsSent(ctx, shop, body, { ownReturnUrls }),
      })),
  );
  const name = paymentNameOf({ shopTxId: asSent.shopTxId, idempotencyKey });
  // The request's fingerprint is that of what the shop sent, so a retry matches whatever rules changed since.
  const requestHash = sha256Hex(JSON.stringify(asSent));
  const ahead = opts.readAhead;
  const readAhead = ahead && name && ahead.shopId === shop.id && ahead.name.kind === name.kind &&
      ahead.name.value === name.value
    ? ahead
    : null;
  const named = name ? await lookUpPaymentName(ctx, shop.id, name, readAhead?.key) : null;
  // A retry of a stored payment is answered before its currency and URLs are judged again: they were accepted when
  // it was made (a fund code too, refused since).
  if (name && named?.payment) return replay(named.payment, requestHash, name);
  const withPostback = { ...asSent, postbackUrl: asSent.postbackUrl ?? shop.defaultPostbackUrl };
  // A currency refused with its URLs' problems, but without asking DNS for a request refused anyway.
  refuseUntakenCurrency(asSent.currency, () => judgeShopUrls(ctx, shop, withPostback, { ownReturnUrls }).fields);
  const urls = await checkUrls(ctx, shop, withPostback, { ownReturnUrls });
  // The URLs are kept as we send them (ASCII).
  const input: InitPaymentInput = { ...asSent, successUrl: urls.successUrl, errorUrl: urls.errorUrl };
  const extra: RequestExtras = { postbackUrl: urls.postbackUrl, requestHash, idempotencyKey, checkout: opts.checkout };

  if (!name || !named) return { payment: await createAtProvider(ctx, shop, input, extra), replay: false };

  let inFlight = inFlightByApp.get(ctx);
  if (!inFlight) inFlightByApp.set(ctx, inFlight = new Map());
  const flightKey = JSON.stringify([shop.id, name.kind, name.value]);
  const running = inFlight.get(flightKey);
  if (running) return replay((await running).payment, requestHash, name);
  const flight = storeOnce(ctx, shop, { name, key: named.key }, input, extra);
  inFlight.set(flightKey, flight);
  try {
    const { payment, stored } = await flight;
    return stored ? { payment, replay: false } : replay(payment, requestHash, name);
  } finally {
    inFlight.delete(flightKey);
  }
}

/** Which payment a request's name names, read ahead of initPayment (with the API key: see requestNameKey). */
export interface ReadAhead {
  /** The shop and name read for. */
  shopId: string;
  name: PaymentName;
  /** The name's key as read. */
  key: PaymentNameEntry;
}

/**
 * The name a request for `shopId` gives its payment and that name's key, worked out from the body as sent (before
 * validation), so the route can read it in the same trip as the API key. Null when the request names none. Only a
 * guess: initPayment uses what was read when its own name (from the validated body) is the same, and reads again
 * otherwise.
 */
export function requestNameKey(
  shopId: string,
  body: unknown,
  idempotencyKey: string | null | undefined,
): { name: PaymentName; key: Deno.KvKey } | null {
  const shopTxId = (body as { id?: unknown } | null)?.id;
  const name = paymentNameOf({
    shopTxId: typeof shopTxId === "string" ? shopTxId : null,
    idempotencyKey: idempotencyKey ?? null,
  });
  // A name longer than any the validation takes (an Idempotency-Key's; an `id` takes fewer) is refused there: read
  // ahead, its key could pass KV's key size limit, and the read (with the API key's) would fail the request with a
  // 500 before the key or the body is judged.
  return name && name.value.length <= MAX_IDEMPOTENCY_KEY_LENGTH
    ? { name, key: paymentNameRecordKey(shopId, name) }
    : null;
}

/**
 * Creates the payment, or, when another request (another isolate, or an
 * earlier try) stored one under the name first, finds that one. Copies waiting
 * on this flight get the same answer.
 */
async function storeOnce(
  ctx: AppContext,
  shop: Shop,
  named: NameToStore,
  input: InitPaymentInput,
  extra: RequestExtras,
): Promise<Flight> {
  const { name } = named;
  try {
    return { payment: await createAtProvider(ctx, shop, input, extra, named), stored: true };
  } catch (err) {
    if (!(err instanceof AlreadyStored)) throw err;
    const winner = await findNamedPayment(ctx, shop.id, name);
    if (!winner) throw new Error(`payment name ${name.kind} of shop ${shop.id} reported taken but names none`);
    return { payment: winner, stored: false };
  }
}

/** A request's name, with its key as read before the provider call (the commit checks it is still so). */
interface NameToStore {
  name: PaymentName;
  key: PaymentNameEntry;
}

/** Another request (another isolate, or an earlier try) stored a payment under this name first. */
class AlreadyStored extends Error {
  constructor() {
    super("payment already stored");
  }
}

function replay(payment: Payment, requestHash: string, name: PaymentName): InitResult {
  if (payment.requestHash !== requestHash) throw idempotencyMismatch(name.kind, "a payment");
  return { payment, replay: true };
}

/**
 * Asks the provider for the payment, then stores it with its name, indexes,
 * events and counters in one atomic operation. The id is time-ordered (new
 * payments sit next to each other in the store, a few pages for many), or the
 * one an earlier attempt under the name kept. A provider failure stores no
 * payment; a named request's id is kept under its name for the retry.
 */
async function createAtProvider(
  ctx: AppContext,
  shop: Shop,
  input: InitPaymentInput,
  extra: RequestExtras,
  named?: NameToStore,
): Promise<Payment> {
  const id = named?.key.id ?? sequentialId("pay", ctx.now());
  const base = ctx.config.publicBaseUrl;
  const wrapper = (kind: string) => `${base}/integration/${kind}?id=${encodeURIComponent(id)}`;
  const { account, adapter, logged } = await routePayment(ctx, shop, { ...input, id });
  // The create call's log entry is stored with the payment, in its commit.
  logged?.holdEntries();
  const result = await adapter.initiate({
    paymentId: id,
    requestId: providerRequestId(id, extra.requestHash),
    email: input.email,
    name: input.name,
    amount: input.amount,
    currency: input.currency,
    type: input.type,
    successUrl: wrapper("success"),
    errorUrl: wrapper("error"),
    webhookUrl: base + accountWebhookPath(account.id),
    ...(extra.checkout ? { embedded: { frameAncestors: [new URL(base).origin, ...(shop.embedOrigins ?? [])] } } : {}),
  }).catch(async (err) => {
    if (err instanceof UpstreamError) log.warn("provider init failed", { paymentId: id, detail: err.detail });
    // The provider may have made the payment and answered too late: the retry asks for the same one.
    if (named && !named.key.id) await reservePaymentName(ctx.kv, shop.id, named.name, id).catch(() => {});
    throw err;
  });
  const now = ctx.now();
  const expiresAt = now + (input.expiresIn !== undefined ? input.expiresIn * 1000 : ctx.config.paymentTtlMs);
  const payment: Payment = {
    id,
    seq: sortableId(),
    shopId: shop.id,
    shopTxId: input.shopTxId,
    idempotencyKey: input.shopTxId ? null : extra.idempotencyKey,
    requestHash: extra.requestHash,
    email: input.email,
    name: input.name,
    amount: input.amount,
    currency: input.currency,
    type: input.type,
    successUrl: input.successUrl,
    errorUrl: input.errorUrl,
    postbackUrl: extra.postbackUrl,
    status: "pending",
    provider: account.provider,
    accountId: account.id,
    providerRef: result.ref,
    providerUrl: result.url,
    lastError: null,
    createdAt: now,
    updatedAt: now,
    finalizedAt: null,
    expiresAt,
    checkAt: firstCheckAt(now, expiresAt, ctx.config.paymentCheckScheduleMs),
    ...(extra.checkout ? { checkoutSessionId: extra.checkout.sessionId } : {}),
  };
  const operations = logged?.takeHeld() ?? [];
  const binding = extra.checkout;
  const extraOps = binding &&
    ((op: Deno.AtomicOperation) => binding.extraOps(op, payment, result.clientSecret ?? null));
  const commit = (nameVersion: string | null) =>
    createPayment(ctx.kv, payment, { operations, extraOps, nameVersion }).catch((err) => {
      for (const entry of operations) insertOperation(ctx.kv, entry).catch(() => {});
      throw err;
    });
  let stored = await commit(named?.key.versionstamp ?? null);
  if (!stored && named) {
    // The name changed since it was read: a copy of this request stored its payment (found by storeOnce), or an
    // attempt in another isolate that stored nothing kept its id for a retry. That gives way to this payment, made.
    const current = await lookUpPaymentName(ctx, shop.id, named.name);
    if (!current.payment && current.key.id) stored = await commit(current.key.versionstamp);
  }
  if (!stored) {
    // A copy of this request stored the payment first; this call to the provider is still logged.
    for (const entry of operations) insertOperation(ctx.kv, entry).catch(() => {});
    throw new AlreadyStored();
  }
  return payment;
}

/** A request's URLs as judgeShopUrls takes them: values of any type (the schema refuses those not strings). */
interface RequestUrls {
  successUrl?: unknown;
  errorUrl?: unknown;
  postbackUrl?: unknown;
  /** The request gives an `id`, so it needs a postback URL. */
  shopTxId?: unknown;
}

/**
 * The checks of a payment's URLs that need nothing but the request and the shop's settings (scheme, shape, length,
 * allowed hosts; a postback URL with `id`): the problems by field, and each URL as we keep it when it passes. A value
 * that is not a string, or is empty, is the schema's to refuse, and left alone here. Whether the postback URL's host
 * resolves, and where to, is not judged here: it asks DNS (checkUrls).
 */
export function judgeShopUrls(ctx: AppContext, shop: Shop, input: RequestUrls, opts: { ownReturnUrls: boolean }) {
  const rules = { allowLocal: ctx.config.allowLocalUrls, allowedHosts: shop.allowedHosts };
  const fields: Record<string, string> = {};
  // An embedded checkout returns to our own page, which the shop's allowed hosts do not name.
  const returnRules = opts.ownReturnUrls ? { ...rules, allowLocal: true, allowedHosts: [] } : rules;
  const judge = (field: string, url: unknown, urlRules: UrlRules) => {
    if (typeof url !== "string" || !url) return null;
    const checked = normalizeShopUrl(url, urlRules);
    if (checked.problem) fields[field] = checked.problem;
    return checked.url;
  };
  const successUrl = judge("successUrl", input.successUrl, returnRules);
  const errorUrl = judge("errorUrl", input.errorUrl, returnRules);
  const postbackUrl = judge("postbackUrl", input.postbackUrl, rules);
  if (!input.postbackUrl && input.shopTxId) {
    fields.postbackUrl = "is required when id is given and the shop has no default postback URL";
  }
  return { fields, successUrl, errorUrl, postbackUrl };
}

/** What judgeShopUrls finds in an init-payment body as sent, before the schema has read it (for its refusal). */
function urlProblemsAsSent(ctx: AppContext, shop: Shop, body: unknown, opts: { ownReturnUrls: boolean }) {
  const b = bodyFields(body);
  if (!b) return {};
  return judgeShopUrls(ctx, shop, {
    successUrl: b.successUrl ?? b.sussessUrl,
    errorUrl: b.errorUrl,
    postbackUrl: b.postbackUrl ?? shop.defaultPostbackUrl,
    // An id the schema refuses (too long, say) still asks for a postback URL once it is fixed.
    shopTxId: b.id !== undefined && b.id !== null,
  }, opts).fields;
}

/**
 * Checks the shop's URLs against the URL rules and its allowed hosts, then where the postback URL's host resolves
 * to, and returns them as we store them; throws one ValidationError for all.
 */
async function checkUrls(ctx: AppContext, shop: Shop, input: InitPaymentInput, opts: { ownReturnUrls: boolean }) {
  const { fields, ...urls } = judgeShopUrls(ctx, shop, input, opts);
  if (urls.postbackUrl) {
    const problem = await checkPostbackDestination(new URL(urls.postbackUrl), {
      allowLocal: ctx.config.allowLocalUrls,
      resolve: ctx.resolve,
    }).catch((err) => {
      // A request that is wrong anyway is told so at once, not asked to come back in a few seconds.
      if (err instanceof DnsTimeoutError && Object.keys(fields).length) return err.problem;
      throw err;
    });
    if (problem) fields.postbackUrl = problem;
  }
  if (Object.keys(fields).length) throw new ValidationError("The request is invalid.", fields);
  return { successUrl: urls.successUrl!, errorUrl: urls.errorUrl!, postbackUrl: urls.postbackUrl };
}
