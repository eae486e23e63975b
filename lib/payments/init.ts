import type { AppContext } from "../context.ts";
import { IdempotencyMismatchError, UpstreamError, ValidationError } from "../errors.ts";
import { createPayment, getPayment, getPaymentIdByReservation, type Reservation } from "../db/payments.ts";
import type { Shop } from "../db/shops.ts";
import { base64url, hmacSha256, randomId, sha256Hex, sortableId } from "../ids.ts";
import { log } from "../log.ts";
import { checkPostbackDestination, checkShopUrl } from "../relay/url_guard.ts";
import { parseOrThrow, text } from "../validation.ts";
import { type InitPaymentInput, initPaymentSchema, normalizeInit } from "./schema.ts";
import type { Payment } from "./types.ts";

const IdempotencyKey = text(1, 255);

export interface InitResult {
  payment: Payment;
  /** True when this answers a retry of a request already handled. */
  replay: boolean;
}

/**
 * Requests in flight in this app instance (one per isolate), by reservation:
 * concurrent copies of one request share a single provider call.
 */
const inFlightByApp = new WeakMap<AppContext, Map<string, Promise<Payment>>>();

/**
 * Creates a payment for a shop: validates the body, asks the provider, and
 * stores the payment with its provider reference in one atomic operation.
 *
 * Idempotency without a second write: a request with the shop's `id` (or an
 * Idempotency-Key) gets a payment id derived from it with a keyed hash, so a
 * retry, or a copy racing in another isolate, asks the provider for the same
 * payment (Bansky is idempotent on our id) and the store's uniqueness check
 * lets exactly one of them commit. Copies in the same isolate share one
 * provider call. A finished request is answered again without calling the
 * provider; the same id with another body is refused.
 */
export async function initPayment(
  ctx: AppContext,
  shop: Shop,
  body: unknown,
  opts: { idempotencyKey?: string | null } = {},
): Promise<InitResult> {
  const input = normalizeInit(parseOrThrow(initPaymentSchema(ctx.config.maxAmount), body));
  const postbackUrl = input.postbackUrl ?? shop.defaultPostbackUrl;
  await checkUrls(ctx, shop, { ...input, postbackUrl });
  const idempotencyKey = opts.idempotencyKey
    ? parseOrThrow(IdempotencyKey, opts.idempotencyKey, "Idempotency-Key")
    : null;
  const reservation: Reservation = input.shopTxId
    ? { kind: "shop_ref", value: input.shopTxId }
    : idempotencyKey
    ? { kind: "idempotency_key", value: idempotencyKey }
    : { kind: "none" };
  const requestHash = sha256Hex(JSON.stringify(input));

  if (reservation.kind === "none") {
    return {
      payment: await createAtProvider(ctx, shop, input, { postbackUrl, requestHash, reservation, idempotencyKey }),
      replay: false,
    };
  }
  const existing = await getPaymentIdByReservation(ctx.kv, shop.id, reservation);
  if (existing) return await replay(ctx, existing, requestHash);

  let inFlight = inFlightByApp.get(ctx);
  if (!inFlight) inFlightByApp.set(ctx, inFlight = new Map());
  const flightKey = `${shop.id}\0${reservation.kind}\0${reservation.value}`;
  const running = inFlight.get(flightKey);
  if (running) {
    const payment = await running;
    if (payment.requestHash !== requestHash) throw mismatch();
    return { payment, replay: true };
  }
  const flight = createAtProvider(ctx, shop, input, { postbackUrl, requestHash, reservation, idempotencyKey });
  inFlight.set(flightKey, flight);
  try {
    return { payment: await flight, replay: false };
  } catch (err) {
    if (err instanceof ReservationTaken) return await replay(ctx, err.paymentId, requestHash);
    throw err;
  } finally {
    inFlight.delete(flightKey);
  }
}

/** Another request (another isolate, or an earlier try) committed this reservation first. */
class ReservationTaken extends Error {
  constructor(readonly paymentId: string) {
    super("reservation taken");
  }
}

function mismatch() {
  return new IdempotencyMismatchError("This id was already used for a payment with different details.");
}

async function replay(ctx: AppContext, paymentId: string, requestHash: string): Promise<InitResult> {
  const payment = await getPayment(ctx.kv, paymentId);
  if (!payment) throw new Error(`reservation points at missing payment ${paymentId}`);
  if (payment.requestHash !== requestHash) throw mismatch();
  return { payment, replay: true };
}

/**
 * Asks the provider for the payment, then stores it with its indexes, events
 * and counters in one atomic operation. A provider failure stores nothing, so
 * the shop's retry starts clean (with the same derived id).
 */
async function createAtProvider(
  ctx: AppContext,
  shop: Shop,
  input: InitPaymentInput,
  extra: { postbackUrl: string | null; requestHash: string; reservation: Reservation; idempotencyKey: string | null },
): Promise<Payment> {
  const r = extra.reservation;
  const id = r.kind === "none" ? randomId("pay") : derivedPaymentId(ctx, shop.id, r);
  const base = ctx.config.publicBaseUrl;
  const wrapper = (kind: string) => `${base}/integration/${kind}?id=${encodeURIComponent(id)}`;
  const result = await ctx.provider.initiate({
    paymentId: id,
    email: input.email,
    name: input.name,
    amount: input.amount,
    currency: input.currency,
    type: input.type,
    successUrl: wrapper("success"),
    errorUrl: wrapper("error"),
    webhookUrl: `${base}/api/payment-verify`,
  }).catch((err) => {
    if (err instanceof UpstreamError) log.warn("provider init failed", { paymentId: id, detail: err.detail });
    throw err;
  });
  const now = ctx.now();
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
    provider: ctx.provider.name,
    providerRef: result.ref,
    providerUrl: result.url,
    lastError: null,
    createdAt: now,
    updatedAt: now,
    finalizedAt: null,
  };
  const created = await createPayment(ctx.kv, payment, r);
  if (!created.created) throw new ReservationTaken(created.existingId);
  return payment;
}

/**
 * The payment id for a reserved request: an HMAC of the shop and its id, so
 * every copy and retry names the same payment, yet nobody without our key can
 * guess it (128 bits of the MAC).
 */
function derivedPaymentId(ctx: AppContext, shopId: string, r: Reservation & { value: string }): string {
  const mac = hmacSha256(ctx.sessionKey, `payment-id\0${shopId}\0${r.kind}\0${r.value}`);
  return `pay_${base64url(mac.slice(0, 16))}`;
}

/** Checks the shop's URLs against the URL rules and its allowed hosts; throws one ValidationError for all. */
async function checkUrls(ctx: AppContext, shop: Shop, input: InitPaymentInput) {
  const rules = { allowLocal: ctx.config.allowLocalUrls, allowedHosts: shop.allowedHosts };
  const fields: Record<string, string> = {};
  const successProblem = checkShopUrl(input.successUrl, rules);
  if (successProblem) fields.successUrl = successProblem;
  const errorProblem = checkShopUrl(input.errorUrl, rules);
  if (errorProblem) fields.errorUrl = errorProblem;
  if (input.postbackUrl) {
    const problem = checkShopUrl(input.postbackUrl, rules) ??
      await checkPostbackDestination(new URL(input.postbackUrl), {
        allowLocal: rules.allowLocal,
        resolve: ctx.resolve,
      });
    if (problem) fields.postbackUrl = problem;
  } else if (input.shopTxId) {
    fields.postbackUrl = "is required when id is given and the shop has no default postback URL";
  }
  if (Object.keys(fields).length) throw new ValidationError("The request is invalid.", fields);
}
