import type { AppContext } from "../context.ts";
import { AppError, ConflictError, NotFoundError, ProviderRefusedError, UpstreamError } from "../errors.ts";
import { getPaymentEntry } from "../db/payments.ts";
import { nextScheduledCheckAt } from "../check_schedule.ts";
import {
  addRefundReversalOps,
  addRefundSuccessOps,
  commitRefundFailure,
  commitRefundUpdate,
  getRefund,
  getRefundEntry,
  getRefundReservation,
} from "../db/refunds.ts";
import { hasIdShape } from "../ids.ts";
import { describeError, log } from "../log.ts";
import { addOperationOps, insertOperation, type OperationEntry } from "../db/operations.ts";
import { addAuditOps, type NewAuditEntry } from "../db/audit.ts";
import { movePayment } from "../payments/transition.ts";
import type { Payment } from "../payments/types.ts";
import type { RefundNotice } from "../providers/types.ts";
import type { PaymentScope } from "../providers/registry.ts";
import { DEFAULT_ACCOUNT_ID } from "../accounts/types.ts";
import { newDelivery } from "../relay/delivery.ts";
import { firstAttemptLease, sendCommitted } from "../relay/pool.ts";
import type { Delivery } from "../relay/types.ts";
import { canMoveRefund, refundPostbackType, type RefundStatus } from "./status.ts";
import type { Refund } from "./types.ts";
import { refundEvents, refundPostbackBody } from "./view.ts";

/**
 * When a pending refund is asked about again, by the number of provider calls
 * made so far: soon at first (the provider's webhook usually comes first), then
 * further apart, then every 6 hours for as long as it stays pending. We never
 * call a refund failed unless the provider says so (it failed it, or refused
 * the request outright): money may be on its way.
 */
const CHECK_BACKOFF_MS = [10_000, 30_000, 120_000, 600_000, 3_600_000, 21_600_000];
/**
 * A refund still pending this long after it was asked for is named in a warning at each check (every 6 hours by
 * then): the threshold of the alert AimbrellaPayRefundStuckAtProvider, whose gauge has no labels, so the operator it
 * pages finds the refund and its payment in the log even when the provider only keeps answering "pending" (the
 * operation log shows such answers as `ok`).
 */
const STUCK_WARN_MS = 6 * 3_600_000;
/**
 * When a succeeded refund is asked about again, at a provider that can reverse it (refundsCanReverse: Stripe), counted
 * from its success: 1, 5, 10 and 30 days. A reversal comes when the buyer's bank or card issuer sends the refund back
 * (a closed card, a closed account), and the provider's webhook is what tells us of it; these find one whose webhook
 * never comes (an endpoint misconfigured, the event left out of it, a bug of ours), which would otherwise stay hidden
 * for good: the shop, and we, would believe the buyer has the money. 1 day: the webhook has had its chance, and the
 * shop still hears within a day of when it would have. 5 days: past Stripe's three days of webhook retries, and a
 * business week over a weekend. 10 days: two business weeks, for issuers and banks slow to send a refund back.
 * 30 days: the last, for the slowest; past that an operator's look is the way. Four reads of a refund over a month
 * cost the provider little, and only refunds that succeeded get them.
 */
export const REVERSAL_CHECK_MS: readonly number[] = [1, 5, 10, 30].map((days) => days * 24 * 60 * 60_000);

/** The re-check after `now` of a refund that succeeded at `succeededAt`; null once the schedule is through. */
export function nextReversalCheckAt(succeededAt: number, now: number): number | null {
  return nextScheduledCheckAt(REVERSAL_CHECK_MS, succeededAt, now);
}

/**
 * A job run holds the refund this long, so a sweep does not ask the provider twice at once. Twice the longest
 * PROVIDER_TIMEOUT_MS the configuration takes (30 s), which bounds a run's provider calls together.
 */
const JOB_LEASE_MS = 60_000;
const MAX_CONFLICT_RETRIES = 10;

/**
 * The first provider call for a new refund, made in the request with the
 * refund as just stored and its payment as read; a provider failure leaves it
 * to the job.
 */
export async function submitRefund(
  ctx: AppContext,
  entry: Deno.KvEntry<Refund>,
  payment: Deno.KvEntry<Payment>,
): Promise<Refund> {
  if (!payment.value.providerRef) throw new NotFoundError("Unknown payment.");
  // The call's log entry is stored with its outcome, in the same commit (one commit instead of two).
  const held = { operations: [] as OperationEntry[] };
  const result = await askProvider(ctx, entry.value, payment.value.providerRef, { held });
  try {
    return await applyRefundResult(ctx, entry.value.id, result, { entry, payment, ...held });
  } finally {
    // Entries no commit took (the refund was settled by someone else, or the write failed) are logged on their own.
    for (const e of held.operations) insertOperation(ctx.kv, e).catch(() => {});
  }
}

/**
 * The `refund` job: asks the provider about a pending refund that is due (the
 * refund request itself if the provider never answered it, its status
 * otherwise) and applies the answer. Safe to run any number of times.
 */
export async function runRefundJob(ctx: AppContext, id: string): Promise<void> {
  const entry = await getRefundEntry(ctx.kv, id);
  const r = entry.value;
  const now = ctx.now();
  if (!r || r.status !== "pending" || r.nextCheckAt > now) return;
  // The claim records when this run's call begins, before it is made: a crash after the call still leaves its time.
  const claimed: Refund = { ...r, nextCheckAt: now + JOB_LEASE_MS, askedAt: now };
  if (!(await commitRefundUpdate(ctx.kv, entry as Deno.KvEntry<Refund>, claimed, jobs(ctx, now)))) return;
  const payment = await getPaymentEntry(ctx.kv, r.paymentId);
  if (!payment.value?.providerRef) return;
  // The job may be a retry of a request whose answer was lost (a timeout, a crash): the refund may exist already. `r`
  // is the refund as read before the claim, so its askedAt is the latest earlier call's.
  const result = await askProvider(ctx, r, payment.value.providerRef, { retry: true });
  await applyRefundResult(ctx, id, result, { payment: payment as Deno.KvEntry<Payment> });
}

/**
 * What the provider said about a refund: its reference (null when it refused the request before making one) and
 * the refund's status; `refused` when it said no to the request itself; `reversible` when the provider can still
 * reverse a success (refundsCanReverse), so that a success is checked again later. Null when it gave no answer (asked
 * again later).
 */
export type RefundAnswer = {
  ref: string | null;
  status: RefundStatus;
  refused?: boolean;
  reversible?: boolean;
  /**
   * The answer as an operator read it at the provider (its dashboard, its support) and recorded it, when its API would
   * not say (lib/refunds/admin.ts): it settles only a refund still pending (never a reversal), and the operator's audit
   * entry is written in the same atomic operation.
   */
  recordedBy?: RefundRecordedBy;
} | null;

/** Who recorded a refund's outcome by hand, and why (their short note: what the provider said, and when). */
export interface RefundRecordedBy {
  actor: string;
  note: string;
}

/** The failureReason of a refund an operator recorded as not made: for the shop to read, as the others. */
export const RECORDED_NO_REFUND_REASON =
  "An operator recorded, after checking with the provider, that the provider made no refund.";

/**
 * The provider's answer about a refund. With `held`, the call's operation-log entry is handed over there for the
 * caller's commit instead of being written at once; `retry` tells the provider an earlier call may have made the
 * refund already.
 */
async function askProvider(
  ctx: AppContext,
  r: Refund,
  paymentRef: string,
  opts: { held?: { operations: OperationEntry[] }; retry?: boolean },
): Promise<RefundAnswer> {
  // The refund goes to its payment's own account. The provider is idempotent on our refund id, so asking
  // again never refunds twice.
  const { adapter, logged } = await ctx.providers.forPayment(refundScope(r));
  if (opts.held) logged?.holdEntries();
  try {
    const reversible = adapter.refundsCanReverse;
    if (r.providerRef) return { ref: r.providerRef, status: await adapter.getRefundStatus(r.providerRef), reversible };
    const asked = { retry: opts.retry ?? false, lastAskedMsAgo: ctx.now() - (r.askedAt ?? r.createdAt) };
    return { ...await adapter.refund(paymentRef, r.amount, r.id, r.currency, asked), reversible };
  } catch (err) {
    if (!(err instanceof UpstreamError)) throw err;
    // A refund the provider refused outright when first asked (more than is left at the provider, a payment it
    // does not know) was not made, and asking again gets the same no: it fails, and its amount is free again. So
    // does a retry's refusal when the adapter knows no earlier call made it (madeNothing). Any other refusal of a
    // retry says nothing of what the call whose answer was lost did (the provider may have made the refund, and our
    // credentials changed since), nor does a refused status read (our reference or credentials may be wrong): the
    // refund stays as it is, and operators are told.
    if (err instanceof ProviderRefusedError && !r.providerRef && (!opts.retry || err.madeNothing)) {
      log.warn("provider refused the refund; it fails", { refundId: r.id, paymentId: r.paymentId, detail: err.detail });
      return { ref: null, status: "failed", refused: true };
    }
    if (err instanceof ProviderRefusedError) {
      log.warn("provider refused a refund's retry or status read; it stays pending: check it at the provider", {
        refundId: r.id,
        paymentId: r.paymentId,
        detail: err.detail,
      });
      return null;
    }
    log.warn("provider refund call failed; will retry", { refundId: r.id, detail: err.detail });
    return null;
  } finally {
    if (opts.held && logged) opts.held.operations.push(...logged.takeHeld());
  }
}

/** What a refund's provider calls are made for: its payment's account, its own amount. */
export function refundScope(r: Refund): PaymentScope {
  return {
    id: r.paymentId,
    shopId: r.shopId,
    amount: r.amount,
    currency: r.currency,
    accountId: r.accountId,
    refundId: r.id,
  };
}

/** Thrown inside a payment move when the target status read before no longer fits: read again. */
class StaleTarget extends Error {}

/**
 * Applies what the provider said about a refund (null: it said nothing). A
 * success moves the payment (partially_refunded or refunded) with the refund,
 * its counters and the shop's postback in one atomic operation; a failure
 * gives the amount back; pending schedules the next check. A failure of a
 * refund that succeeded is the provider's reversal (see reverse). A refund
 * that settled already is otherwise left as it is. `known` saves reads: the
 * refund's entry and its payment's as recently read (first try only: a stale
 * one only costs a retry). Its `operations` (provider calls' log entries) are
 * written by the commit that lands and taken out of the list.
 */
export async function applyRefundResult(
  ctx: AppContext,
  id: string,
  result: RefundAnswer,
  known: { entry?: Deno.KvEntry<Refund>; payment?: Deno.KvEntry<Payment>; operations?: OperationEntry[] } = {},
): Promise<Refund> {
  return (await settleRefund(ctx, id, result, known)).refund;
}

/**
 * applyRefundResult, saying whether this call wrote the refund (`written`) or left it as another writer had settled
 * it: an operator's record (answer.recordedBy) is refused, not overwritten, when the refund settled meanwhile.
 */
export async function settleRefund(
  ctx: AppContext,
  id: string,
  result: RefundAnswer,
  known: { entry?: Deno.KvEntry<Refund>; payment?: Deno.KvEntry<Payment>; operations?: OperationEntry[] } = {},
): Promise<{ refund: Refund; written: boolean }> {
  for (let i = 0; i < MAX_CONFLICT_RETRIES; i++) {
    const entry = i === 0 && known.entry ? known.entry : await getRefundEntry(ctx.kv, id);
    if (!entry.value) throw new NotFoundError("Unknown refund.");
    const r = entry.value;
    const status = result?.status ?? "pending";
    const unchanged = { refund: r, written: false };
    if (status === "pending" ? r.status !== "pending" : !canMoveRefund(r.status, status)) {
      // A provider call under way when an operator recorded the outcome (the job's check, the request's own call) may
      // answer otherwise: told as the webhook's news is, not dropped unseen.
      if (!result?.recordedBy) logDisputedRecord(r, status, "answer");
      return unchanged;
    }
    // A refusal is about a request to make a refund, never about one the provider made and settled.
    if (r.status !== "pending" && result?.refused) return unchanged;
    // An operator's record settles a refund still pending, and only that: what settled it first stands.
    const recorded = result?.recordedBy;
    if (recorded && (r.status !== "pending" || status === "pending")) return unchanged;
    const now = ctx.now();
    const base: Refund = {
      ...r,
      providerRef: r.providerRef ?? result?.ref ?? null,
      // An operator's record is no call to the provider.
      checks: r.checks + (recorded ? 0 : 1),
      updatedAt: now,
      ...(recorded ? { settledBy: { actor: recorded.actor, note: recorded.note } } : {}),
    };
    const audit: NewAuditEntry | undefined = recorded && {
      at: now,
      actor: recorded.actor,
      action: "refund.settle",
      target: r.paymentId,
      before: { status: r.status },
      after: { refund: r.id, status, note: recorded.note },
    };
    const write = { entry: entry as Deno.KvEntry<Refund>, base, now, operations: known.operations ?? [], audit };
    const done = await (async () => {
      switch (status) {
        case "pending":
          return await stillPending(ctx, write);
        case "succeeded":
          return await succeed(ctx, write, i === 0 ? known.payment : undefined, result?.reversible ?? false);
        case "failed":
          return r.status === "succeeded"
            ? await reverse(ctx, write, i === 0 ? known.payment : undefined)
            : await fail(ctx, write, i === 0 ? known.payment : undefined, result?.refused ?? false);
      }
    })();
    if (done) {
      known.operations?.splice(0);
      return { refund: done, written: true };
    }
  }
  throw new ConflictError("The refund is busy; retry.");
}

/**
 * One settling write of a refund: the version read, the next one's base, log entries to store with it, and the
 * operator's audit entry when one recorded the outcome.
 */
interface RefundWrite {
  entry: Deno.KvEntry<Refund>;
  base: Refund;
  now: number;
  operations: OperationEntry[];
  audit?: NewAuditEntry;
}

async function stillPending(ctx: AppContext, { entry, base, now, operations }: RefundWrite) {
  const delay = CHECK_BACKOFF_MS[Math.min(base.checks - 1, CHECK_BACKOFF_MS.length - 1)];
  const next: Refund = { ...base, nextCheckAt: now + delay };
  if (!(await commitRefundUpdate(ctx.kv, entry, next, jobs(ctx, now), operations))) return null;
  if (now - next.createdAt >= STUCK_WARN_MS) {
    log.warn("refund still pending at its provider after 6 hours: check it there", {
      refundId: next.id,
      paymentId: next.paymentId,
      shopId: next.shopId,
      checks: next.checks,
      nextCheckAt: new Date(next.nextCheckAt).toISOString(),
    });
  }
  // No queue message wakes it (see lib/db/refunds.ts): the kick does, or the cron sweep after a restart.
  ctx.kick({ kind: "refund", id: next.id }, delay);
  return next;
}

async function succeed(
  ctx: AppContext,
  { entry, base, now, operations, audit }: RefundWrite,
  read: Deno.KvEntry<Payment> | undefined,
  reversible: boolean,
) {
  // A provider that can reverse it is asked again later (REVERSAL_CHECK_MS), in the same operation as the success.
  const recheckAt = reversible ? nextReversalCheckAt(now, now) : null;
  const settled: Refund = { ...base, status: "succeeded", settledAt: now, recheckAt };
  // The payment as read a moment ago picks the target; if it changed since, the move sees it and we try again.
  const paymentEntry = read ?? await getPaymentEntry(ctx.kv, settled.paymentId);
  if (!paymentEntry.value) throw new NotFoundError("Unknown payment.");
  const payment: Payment = paymentEntry.value;
  const target = (
    p: Payment,
  ) => ((p.refundedAmount ?? 0) + settled.amount >= p.amount ? "refunded" : "partially_refunded");
  let delivery: Delivery | null = null;
  let stored: string | null = null;
  try {
    const moved = await movePayment(ctx, {
      paymentId: settled.paymentId,
      read: paymentEntry as Deno.KvEntry<Payment>,
      to: target(payment),
      because: refundEvents(settled).settled!,
      becauseIsDerived: true,
      byRefund: true,
      patch: (p) => ({ refundedAmount: (p.refundedAmount ?? 0) + settled.amount }),
      extraOps: (op, next) => {
        // Another refund of this payment succeeded since we read it: the target may differ now.
        if (target({ ...next, refundedAmount: (next.refundedAmount ?? 0) - settled.amount }) !== next.status) {
          throw new StaleTarget();
        }
        delivery = postbackFor(settled, next, now, firstAttemptLease(ctx, now));
        addRefundSuccessOps(op, entry, settled, {
          stats: {
            at: now,
            shopId: settled.shopId,
            currency: settled.currency,
            status: "refund",
            amount: settled.amount,
          },
          delivery: delivery ?? undefined,
          jobs: jobs(ctx, now),
        });
        for (const e of operations) addOperationOps(op, e);
        if (audit) addAuditOps(op, audit);
      },
    });
    if (moved.outcome === "refused") {
      // Another run settled this refund first (its webhook and a job at once) and moved the payment: read again.
      if (await refundChanged(ctx.kv, entry)) return null;
      throw new Error(`payment ${settled.paymentId} refused a refund move from ${moved.payment.status}`);
    }
    stored = moved.versionstamp;
  } catch (err) {
    // The refund changed under us (the webhook and the job at once) or the target did: read again.
    if (err instanceof StaleTarget || err instanceof ConflictError) return null;
    throw err;
  }
  log.info("refund succeeded", {
    refundId: settled.id,
    paymentId: settled.paymentId,
    amount: settled.amount,
    ...(settled.settledBy ? { recordedBy: settled.settledBy.actor } : {}),
  });
  const sent = delivery as Delivery | null;
  if (sent && stored) sendCommitted(ctx, sent, stored);
  return settled;
}

async function fail(
  ctx: AppContext,
  { entry, base, now, operations, audit }: RefundWrite,
  read: Deno.KvEntry<Payment> | undefined,
  refused: boolean,
) {
  const failed: Refund = {
    ...base,
    status: "failed",
    settledAt: now,
    // The provider's own reason is in the operation log, for operators: it is not the shop's to read.
    failureReason: base.settledBy
      ? RECORDED_NO_REFUND_REASON
      : refused
      ? "The provider refused the refund request."
      : "The provider declined the refund.",
  };
  const payment = read ?? await getPaymentEntry(ctx.kv, failed.paymentId);
  if (!payment.value) throw new NotFoundError("Unknown payment.");
  const delivery = postbackFor(failed, payment.value, now, firstAttemptLease(ctx, now));
  const stored = await commitRefundFailure(ctx.kv, entry, failed, {
    payment: payment as Deno.KvEntry<Payment>,
    event: refundEvents(failed).settled!,
    delivery: delivery ?? undefined,
    jobs: jobs(ctx, now),
    operations,
    audit,
  });
  if (!stored) return null;
  log.info("refund failed", {
    refundId: failed.id,
    paymentId: failed.paymentId,
    amount: failed.amount,
    ...(failed.settledBy ? { recordedBy: failed.settledBy.actor } : {}),
  });
  if (delivery) sendCommitted(ctx, delivery, stored);
  return failed;
}

/**
 * A refund that succeeded, failed by the provider afterwards (Stripe: the buyer's card was closed, so the money went
 * back to the merchant's balance): the buyer never got it. In one atomic operation the refund fails, its payment's
 * refundedAmount goes down by its amount and its status back (refunded to partially_refunded or succeeded), the
 * amount is free to refund again, the refund's counter is taken back on the day it counted, and the shop gets
 * refund.failed; the payment's timeline shows the reversal after the success. Operators get a warning: the shop may
 * have to pay the buyer another way.
 */
async function reverse(
  ctx: AppContext,
  { entry, base, now, operations }: RefundWrite,
  read?: Deno.KvEntry<Payment>,
) {
  const succeededAt = entry.value.settledAt ?? entry.value.updatedAt;
  const reversed: Refund = {
    ...base,
    status: "failed",
    settledAt: now,
    succeededAt,
    // Its re-checks end with it (the same operation takes their job out).
    recheckAt: null,
    failureReason: "The provider reversed the refund after it had succeeded: the buyer did not get the money back.",
  };
  const paymentEntry = read ?? await getPaymentEntry(ctx.kv, reversed.paymentId);
  if (!paymentEntry.value) throw new NotFoundError("Unknown payment.");
  // Read before the move: its check fails the move if another refund of the payment reserved meanwhile.
  const reservation = await getRefundReservation(ctx.kv, reversed.paymentId);
  const target = (refundedAfter: number) => (refundedAfter > 0 ? "partially_refunded" : "succeeded");
  let delivery: Delivery | null = null;
  let stored: string | null = null;
  try {
    const moved = await movePayment(ctx, {
      paymentId: reversed.paymentId,
      read: paymentEntry as Deno.KvEntry<Payment>,
      to: target((paymentEntry.value.refundedAmount ?? 0) - reversed.amount),
      because: refundEvents(reversed).reversed!,
      becauseIsDerived: true,
      byRefund: true,
      patch: (p) => ({ refundedAmount: Math.max(0, (p.refundedAmount ?? 0) - reversed.amount) }),
      extraOps: (op, next) => {
        // Another refund of this payment settled since we read it: the target may differ now.
        if (target(next.refundedAmount ?? 0) !== next.status) throw new StaleTarget();
        delivery = postbackFor(reversed, next, now, firstAttemptLease(ctx, now));
        addRefundReversalOps(op, entry, reversed, {
          reservation,
          stats: {
            at: succeededAt,
            shopId: reversed.shopId,
            currency: reversed.currency,
            status: "refund",
            amount: reversed.amount,
            withdrawn: true,
          },
          delivery: delivery ?? undefined,
          jobs: jobs(ctx, now),
        });
        for (const e of operations) addOperationOps(op, e);
      },
    });
    if (moved.outcome === "refused") {
      // Another run settled this refund first (its webhook and a job at once) and moved the payment: read again.
      if (await refundChanged(ctx.kv, entry)) return null;
      throw new Error(`payment ${reversed.paymentId} refused a refund reversal from ${moved.payment.status}`);
    }
    stored = moved.versionstamp;
  } catch (err) {
    // The refund, the payment or the reservation changed under us: read again.
    if (err instanceof StaleTarget || err instanceof ConflictError) return null;
    throw err;
  }
  log.warn("refund reversed by the provider after it succeeded: the buyer did not get the money back", {
    refundId: reversed.id,
    paymentId: reversed.paymentId,
    shopId: reversed.shopId,
    amount: reversed.amount,
    currency: reversed.currency,
  });
  const sent = delivery as Delivery | null;
  if (sent && stored) sendCommitted(ctx, sent, stored);
  return reversed;
}

/** Whether a refund was written since it was read as `entry`. */
async function refundChanged(kv: Deno.Kv, entry: Deno.KvEntry<Refund>): Promise<boolean> {
  return (await getRefundEntry(kv, entry.value.id)).versionstamp !== entry.versionstamp;
}

/**
 * The shop's postback for a settled refund, when the shop asked for postbacks for its payment: born leased to
 * this process (`leaseUntil`, firstAttemptLease), which sends it right after the commit (sendCommitted).
 */
function postbackFor(r: Refund, p: Payment, now: number, leaseUntil: number): Delivery | null {
  const type = refundPostbackType(r.status);
  if (!type || !p.shopTxId || !p.postbackUrl) return null;
  return newDelivery({
    paymentId: p.id,
    shopId: p.shopId,
    url: p.postbackUrl,
    eventType: type,
    body: refundPostbackBody(r, p, type, now),
    now,
    leaseUntil,
  });
}

const jobs = (ctx: AppContext, now: number) => ({ queue: ctx.config.jobsQueue, now });

/**
 * The provider's word (its webhook's claim, its answer to a call) that says otherwise than the outcome an operator
 * recorded for a refund: the record stands (the shop was told), so this error is how the operator learns to look at the
 * provider again and settle it with the shop (a refund recorded as not made that the provider did make must not be
 * made a second time). Nothing for a refund no one recorded, or news that agrees or is still pending.
 */
function logDisputedRecord(r: Refund, said: RefundStatus, by: "webhook" | "answer") {
  if (!r.settledBy || said === "pending" || said === r.status) return;
  log.error("provider disagrees with the outcome an operator recorded for a refund: check it there", {
    refundId: r.id,
    paymentId: r.paymentId,
    shopId: r.shopId,
    recorded: r.status,
    recordedBy: r.settledBy.actor,
    claimed: said,
    by,
  });
}

/**
 * A provider webhook about a refund: the refund must be ours and match the
 * provider's reference; its status is confirmed with the provider (the
 * webhook is only a hint) before it is applied. A claim the provider does not
 * confirm yet is refused (409) so the provider's retry applies it. News of a
 * settled refund is a duplicate, except a failure of one that succeeded: the
 * provider reversed it.
 */
export async function handleRefundWebhook(
  ctx: AppContext,
  notice: RefundNotice,
  accountId: string,
): Promise<"applied" | "duplicate" | "unchanged"> {
  const r = hasIdShape("refund", notice.refundId) ? await getRefund(ctx.kv, notice.refundId) : null;
  if (!r) throw new NotFoundError("Unknown refund.");
  if ((r.providerRef && r.providerRef !== notice.ref) || (r.accountId ?? DEFAULT_ACCOUNT_ID) !== accountId) {
    throw new AppError(400, "invalid_webhook", "Webhook reference does not match the refund.");
  }
  // Only a claimed failure can change a succeeded refund; anything else about a settled one asks the provider nothing.
  const reversal = r.status === "succeeded" && notice.claimedStatus === "failed";
  if (r.status !== "pending" && !reversal) {
    // Settled by an operator's record, which stands (the shop was told): news that says otherwise is for them to look
    // into at the provider, and to settle with the shop (the buyer may have the money after all, or not).
    logDisputedRecord(r, notice.claimedStatus, "webhook");
    return "duplicate";
  }
  const { adapter } = await ctx.providers.forPayment(refundScope(r));
  const confirmed = await adapter.getRefundStatus(notice.ref);
  // A claim the provider does not confirm yet (a reversal it still reports as a success, too): its retry brings it.
  if (confirmed === "pending" || (reversal && confirmed !== "failed")) {
    if (notice.claimedStatus === "pending") return "unchanged";
    throw new AppError(
      409,
      "status_not_confirmed",
      "The provider does not confirm this status yet; send the webhook again later.",
      undefined,
      { "retry-after": "30" },
    );
  }
  const answer = { ref: notice.ref, status: confirmed, reversible: adapter.refundsCanReverse };
  const after = await applyRefundResult(ctx, r.id, answer).catch((err) => {
    log.warn("refund webhook not applied", { refundId: r.id, error: describeError(err) });
    throw err;
  });
  return after.status === confirmed ? "applied" : "unchanged";
}
