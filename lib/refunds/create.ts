import type { AppContext } from "../context.ts";
import { AppError, ConflictError, idempotencyMismatch, NotFoundError } from "../errors.ts";
import { getRefundTarget, insertRefund, type RefundTarget } from "../db/refunds.ts";
import { base64url, hasIdShape, sequentialId, sortableId } from "../ids.ts";
import { hmacSha256, sha256Hex } from "../crypto.ts";
import { formatAmount } from "../money.ts";
import type { Payment } from "../payments/types.ts";
import type { Shop } from "../db/shops.ts";
import { idempotencyKeyOf, idempotencyKeyProblems, parseOrThrow } from "../validation.ts";
import { type RefundRequest, refundRequestSchema } from "./schema.ts";
import { submitRefund } from "./settle.ts";
import { isRefundable } from "./status.ts";
import type { Refund } from "./types.ts";
import { refundEvents } from "./view.ts";

/** While the first provider call is made in the request, the job waits this long before it takes over. */
export const SUBMIT_LEASE_MS = 60_000;
const MAX_RESERVE_TRIES = 50;

export interface CreateRefundResult {
  refund: Refund;
  /** True when this answers a retry of a request already handled. */
  replay: boolean;
}

export interface CreateRefundOptions {
  idempotencyKey?: string | null;
  /** An operator's email, when an operator refunds from the console (audited); absent for the shop's API. */
  actor?: string;
}

/**
 * Refunds (part of) a payment: validates the request, reserves the amount on
 * the payment and stores the pending refund with its job in one atomic
 * operation, then asks the provider. Reservations are checked against the
 * version read, so concurrent refunds never spend more than the payment; a
 * pending refund counts as spent until it fails.
 *
 * Idempotency as init-payment: with the shop's refund `id` (or an
 * Idempotency-Key) the refund id is derived from it, so a retry finds the
 * first refund (same body) or is refused (another body).
 */
export async function createRefund(
  ctx: AppContext,
  owner: { paymentId: string; shopId: string },
  body: unknown,
  opts: CreateRefundOptions = {},
): Promise<CreateRefundResult> {
  const input = parseOrThrow(refundRequestSchema, body, { others: () => idempotencyKeyProblems(opts.idempotencyKey) });
  const idempotencyKey = idempotencyKeyOf(opts.idempotencyKey);
  // An id of the wrong shape is simply not found (and never reaches KV).
  if (!hasIdShape("payment", owner.paymentId)) throw new NotFoundError("Unknown payment.");
  const name = input.id ?? idempotencyKey;
  const by = input.id ? "shop_ref" : "idempotency_key";
  const requestHash = sha256Hex(
    JSON.stringify([owner.paymentId, input.amount ?? null, input.reason ?? null, input.id]),
  );
  const id = name ? derivedRefundId(ctx.paymentIdKey, owner.shopId, by, name) : sequentialId("re", ctx.now());
  type Reserved = { replay: false; entry: Deno.KvEntry<Refund>; payment: Deno.KvEntry<Payment> };
  const fresh = await withPaymentLock(ctx.kv, owner.paymentId, async (): Promise<CreateRefundResult | Reserved> => {
    for (let i = 0; i < MAX_RESERVE_TRIES; i++) {
      // One read per try: the payment, what its refunds hold, and a refund already stored under this name.
      const read = await getRefundTarget(ctx.kv, owner.paymentId, name ? id : null);
      // Another shop's payment is not found, never forbidden.
      if (!read.payment.value || read.payment.value.shopId !== owner.shopId) {
        throw new NotFoundError("Unknown payment.");
      }
      if (read.refund) return replay(read.refund, requestHash, by);
      const reserved = await reserve(ctx, read as RefundTarget & { payment: Deno.KvEntry<Payment> }, id, input, {
        requestHash,
        idempotencyKey: input.id ? null : idempotencyKey,
        actor: opts.actor,
      });
      if (reserved) return { entry: reserved, payment: read.payment as Deno.KvEntry<Payment>, replay: false };
      // Another process reserved first: read again after a moment.
      await new Promise((r) => setTimeout(r, Math.random() * 5 * (i + 1)));
    }
    throw new ConflictError("The payment is busy; retry.");
  });
  if (!("entry" in fresh)) return fresh;
  return { refund: await submitRefund(ctx, fresh.entry, fresh.payment), replay: false };
}

/** The shop API's refund: only of the shop's own payments (another shop's is not found). */
export function createShopRefund(
  ctx: AppContext,
  shop: Shop,
  paymentId: string,
  body: unknown,
  opts: CreateRefundOptions = {},
): Promise<CreateRefundResult> {
  return createRefund(ctx, { paymentId, shopId: shop.id }, body, opts);
}

/**
 * Reserves the amount and stores the pending refund; null when a concurrent
 * write got there first. Answers the stored entry, so the provider call and
 * its result need not read it again.
 */
async function reserve(
  ctx: AppContext,
  { payment, reservation }: RefundTarget & { payment: Deno.KvEntry<Payment> },
  id: string,
  input: RefundRequest,
  extra: { requestHash: string; idempotencyKey: string | null; actor?: string },
): Promise<Deno.KvEntry<Refund> | null> {
  const p = payment.value;
  if (!isRefundable(p.status)) {
    throw new AppError(409, "payment_not_refundable", `A ${p.status} payment cannot be refunded.`);
  }
  const left = p.amount - (reservation.value ?? 0);
  const amount = input.amount ?? left;
  if (amount <= 0 || amount > left) {
    throw new AppError(
      422,
      "refund_exceeds_payment",
      `Only ${formatAmount(Math.max(0, left), p.currency)} of this payment is left to refund (pending refunds count).`,
    );
  }
  const now = ctx.now();
  const refund: Refund = {
    id,
    seq: sortableId(now),
    paymentId: p.id,
    shopId: p.shopId,
    ...(p.accountId ? { accountId: p.accountId } : {}),
    shopRefundId: input.id ?? null,
    idempotencyKey: extra.idempotencyKey,
    requestHash: extra.requestHash,
    amount,
    currency: p.currency,
    reason: input.reason ?? null,
    status: "pending",
    providerRef: null,
    failureReason: null,
    requestedBy: extra.actor ?? "api",
    checks: 0,
    // The request asks the provider itself; the job is the backup should this process die first.
    nextCheckAt: now + SUBMIT_LEASE_MS,
    createdAt: now,
    updatedAt: now,
    settledAt: null,
  };
  const entry = await insertRefund(ctx.kv, {
    refund,
    reservation,
    event: refundEvents(refund).requested,
    audit: extra.actor
      ? {
        at: now,
        actor: extra.actor,
        action: "payment.refund",
        target: p.id,
        before: { refunded: reservation.value ?? 0 },
        after: { refundId: id, amount },
      }
      : undefined,
    jobs: { queue: ctx.config.jobsQueue, now },
  });
  return entry;
}

function replay(refund: Refund, requestHash: string, by: "shop_ref" | "idempotency_key"): CreateRefundResult {
  if (refund.requestHash !== requestHash) throw idempotencyMismatch(by, "a refund");
  return { refund, replay: true };
}

/** The refund id for a named request: an HMAC of the shop and the name, like derived payment ids. */
function derivedRefundId(key: Uint8Array, shopId: string, kind: string, value: string): string {
  return `re_${base64url(hmacSha256(key, `refund-id\0${shopId}\0${kind}\0${value}`).subarray(0, 16))}`;
}

/**
 * Refunds of one payment in this process run one at a time, so they do not
 * spend their tries on each other's reservations; other processes are kept
 * apart by the reservation's version check.
 */
const locks = new WeakMap<Deno.Kv, Map<string, Promise<unknown>>>();

async function withPaymentLock<T>(kv: Deno.Kv, paymentId: string, fn: () => Promise<T>): Promise<T> {
  let byPayment = locks.get(kv);
  if (!byPayment) locks.set(kv, byPayment = new Map());
  const before = byPayment.get(paymentId) ?? Promise.resolve();
  const run = before.catch(() => {}).then(fn);
  const tail = run.catch(() => {});
  byPayment.set(paymentId, tail);
  try {
    return await run;
  } finally {
    if (byPayment.get(paymentId) === tail) byPayment.delete(paymentId);
  }
}
