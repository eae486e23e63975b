import type { AppContext } from "../context.ts";
import { ConflictError, IdempotencyMismatchError, UpstreamError, ValidationError } from "../errors.ts";
import { createPayment, getPaymentEntry, replacePayment, type Reservation, updatePayment } from "../db/payments.ts";
import type { Shop } from "../db/shops.ts";
import { randomId, sha256Hex, sortableId } from "../ids.ts";
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
 * Creates a payment for a shop: validates the body, reserves the shop's id (or
 * Idempotency-Key) so concurrent copies make one provider call, asks the
 * provider, and stores its answer. A retry of the same request gets the first
 * answer; the same id with another body is refused.
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
  const requestHash = await sha256Hex(JSON.stringify(input));

  const now = ctx.now();
  const payment: Payment = {
    id: randomId("pay"),
    seq: sortableId(),
    shopId: shop.id,
    shopTxId: input.shopTxId,
    idempotencyKey: input.shopTxId ? null : idempotencyKey,
    requestHash,
    email: input.email,
    name: input.name,
    amount: input.amount,
    currency: input.currency,
    type: input.type,
    successUrl: input.successUrl,
    errorUrl: input.errorUrl,
    postbackUrl,
    status: "initiating",
    provider: ctx.provider.name,
    providerRef: null,
    providerUrl: null,
    initLeaseUntil: now + initLeaseMs(ctx),
    lastError: null,
    createdAt: now,
    updatedAt: now,
    finalizedAt: null,
  };
  const created = await createPayment(ctx.kv, payment, reservation);
  if (created.created) return { payment: await askProvider(ctx, created.entry), replay: false };
  return await resume(ctx, created.existingId, requestHash);
}

/** The same reservation was used before: replay its answer, wait for it, or retry its provider call. */
async function resume(ctx: AppContext, paymentId: string, requestHash: string): Promise<InitResult> {
  const entry = await getPaymentEntry(ctx.kv, paymentId);
  if (!entry.value) throw new Error(`reservation points at missing payment ${paymentId}`);
  const p = entry.value;
  if (p.requestHash !== requestHash) {
    throw new IdempotencyMismatchError("This id was already used for a payment with different details.");
  }
  if (p.status !== "initiating") return { payment: p, replay: true };
  const now = ctx.now();
  if (p.initLeaseUntil > now) {
    throw new ConflictError("A request with this id is still being processed; retry shortly.", "request_in_flight");
  }
  // The earlier attempt failed at the provider: try again with the same payment id, which Bansky deduplicates.
  const leased = await replacePayment(ctx.kv, entry, { ...p, initLeaseUntil: now + initLeaseMs(ctx), updatedAt: now });
  if (!leased) {
    throw new ConflictError("A request with this id is still being processed; retry shortly.", "request_in_flight");
  }
  return { payment: await askProvider(ctx, leased), replay: true };
}

/**
 * Calls the provider for a payment we hold the init lease on and stores the
 * answer. On failure the lease is released so the shop's retry can try again.
 */
async function askProvider(ctx: AppContext, entry: Deno.KvEntry<Payment>): Promise<Payment> {
  const p = entry.value;
  const base = ctx.config.publicBaseUrl;
  const wrapper = (kind: string) => `${base}/integration/${kind}?id=${encodeURIComponent(p.id)}`;
  let result;
  try {
    result = await ctx.provider.initiate({
      paymentId: p.id,
      email: p.email,
      name: p.name,
      amount: p.amount,
      currency: p.currency,
      type: p.type,
      successUrl: wrapper("success"),
      errorUrl: wrapper("error"),
      webhookUrl: `${base}/api/payment-verify`,
    });
  } catch (err) {
    if (!(err instanceof UpstreamError)) throw err;
    log.warn("provider init failed", { paymentId: p.id, detail: err.detail });
    const now = ctx.now();
    const released: Payment = { ...p, initLeaseUntil: 0, lastError: err.code, updatedAt: now };
    await updatePayment(ctx.kv, entry, released, {
      events: [{ type: "provider_failed", at: now, data: { code: err.code } }],
      jobs: { queue: false, now },
    });
    throw err;
  }
  const now = ctx.now();
  const next: Payment = {
    ...p,
    status: "pending",
    providerRef: result.ref,
    providerUrl: result.url,
    initLeaseUntil: 0,
    lastError: null,
    updatedAt: now,
  };
  const saved = await updatePayment(ctx.kv, entry, next, {
    events: [{ type: "provider_initiated", at: now, data: { ref: result.ref } }],
    jobs: { queue: false, now },
  });
  if (saved) return next;
  // Our lease ran out and another request took over; its view of the payment is the truth.
  const current = await getPaymentEntry(ctx.kv, p.id);
  if (current.value?.status === "initiating") {
    throw new ConflictError("A request with this id is still being processed; retry shortly.", "request_in_flight");
  }
  return current.value!;
}

function initLeaseMs(ctx: AppContext): number {
  return ctx.config.providerTimeoutMs + 5_000;
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
