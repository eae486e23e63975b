import type { AppContext } from "../context.ts";
import { getPaymentEntry, reschedulePaymentCheck } from "../db/payments.ts";
import { UpstreamError } from "../errors.ts";
import { describeError, log } from "../log.ts";
import type { CancelResult, ProviderStatus } from "../providers/types.ts";
import { movePayment } from "./transition.ts";
import type { Payment } from "./types.ts";

/**
 * The janitor: a pending payment is checked at the provider on a backoff
 * counted from its creation, so a lost webhook never leaves it pending, and
 * once more at `expiresAt`, where still pending means expired. Each payment
 * has at most one check due (`checkAt`, a `payment_check` job); the engine
 * drops it in the same operation that settles the payment.
 */
/** The default schedule of re-checks after creation (PAYMENT_CHECK_SCHEDULE): 2 min, 10 min, 1 h, 6 h. */
export const CHECK_BACKOFF_MS: readonly number[] = [2 * 60_000, 10 * 60_000, 60 * 60_000, 6 * 60 * 60_000];
/** When the provider cannot be reached, the next try. */
export const CHECK_RETRY_MS = 5 * 60_000;

/** The first check of a payment created at `createdAt`. */
export function firstCheckAt(createdAt: number, expiresAt: number, schedule = CHECK_BACKOFF_MS): number {
  return nextCheckAt(createdAt, expiresAt, createdAt, schedule);
}

/** The next check after `now`: the next backoff step, but never later than the expiry (which may be past). */
export function nextCheckAt(createdAt: number, expiresAt: number, now: number, schedule = CHECK_BACKOFF_MS): number {
  const step = schedule.find((ms) => createdAt + ms > now);
  return step === undefined ? expiresAt : Math.min(createdAt + step, expiresAt);
}

/**
 * The `payment_check` job: asks the provider about a pending payment whose
 * check is due and applies the answer through the transition engine; at the
 * expiry, tells the provider to cancel and expires the payment. Idempotent: a
 * check that is not due (already run, or the payment settled) does nothing,
 * and every write is checked against the version read.
 */
export async function runPaymentCheck(ctx: AppContext, paymentId: string): Promise<void> {
  const entry = await getPaymentEntry(ctx.kv, paymentId);
  const p = entry.value;
  const now = ctx.now();
  if (!p || !p.checkAt || p.checkAt > now) return;
  const current = entry as Deno.KvEntry<Payment>;
  if (p.status !== "pending" || !p.providerRef) {
    await reschedulePaymentCheck(ctx.kv, current, null);
    return;
  }
  const expiresAt = p.expiresAt ?? p.createdAt + ctx.config.paymentTtlMs;
  const { adapter } = await ctx.providers.forPayment(p);
  let confirmed: ProviderStatus;
  try {
    confirmed = await adapter.getStatus(p.providerRef);
  } catch (err) {
    if (!(err instanceof UpstreamError)) throw err;
    log.warn(`payment check: ${whatFailed(err)}, trying again later`, { paymentId, detail: err.detail });
    await reschedulePaymentCheck(ctx.kv, current, retryAt(ctx, p, expiresAt, now));
    return;
  }
  if (confirmed !== "pending") {
    await settle(ctx, current, confirmed, { type: "status_checked", at: now, data: { confirmed, by: "janitor" } });
    return;
  }
  if (now < expiresAt) {
    const schedule = ctx.config.paymentCheckScheduleMs;
    await reschedulePaymentCheck(ctx.kv, current, nextCheckAt(p.createdAt, expiresAt, now, schedule));
    return;
  }
  // Expired: the provider is told to stop taking money where it can. If it cannot (money on its way), a
  // payment it confirms later still succeeds, marked late. A provider that cannot be reached does not hold
  // the expiry back: the shop hears about it on time, and late money is never hidden.
  const cancel: CancelResult | null = await adapter.cancel(p.providerRef).catch((err) => {
    if (!(err instanceof UpstreamError)) throw err;
    log.warn("payment check: provider cancel failed at expiry", { paymentId, error: describeError(err) });
    return null;
  });
  // The buyer paid (or failed) in the last moment: what the provider says wins over our expiry.
  const to = cancel && !cancel.cancelled && cancel.status !== "pending" ? cancel.status : "expired";
  await settle(ctx, current, to, {
    type: "expiry_reached",
    at: now,
    data: { confirmed: to === "expired" ? "pending" : to, providerCancelled: cancel?.cancelled ?? false },
  });
}

/** Moves the payment; if the table refuses (it changed meanwhile, or a status we cannot take), the next check is set. */
async function settle(
  ctx: AppContext,
  entry: Deno.KvEntry<Payment>,
  to: ProviderStatus,
  because: Parameters<typeof movePayment>[1]["because"],
): Promise<void> {
  const moved = await movePayment(ctx, { paymentId: entry.value.id, to, because });
  if (moved.outcome === "applied" || moved.payment.status !== "pending") return;
  log.warn("payment check: the provider reports a status the payment cannot take", {
    paymentId: entry.value.id,
    confirmed: to,
  });
  const fresh = await getPaymentEntry(ctx.kv, entry.value.id);
  if (fresh.value) {
    const p = fresh.value;
    const now = ctx.now();
    await reschedulePaymentCheck(ctx.kv, fresh as Deno.KvEntry<Payment>, retryAt(ctx, p, p.expiresAt ?? now, now));
  }
}

/** After a failed try: in CHECK_RETRY_MS, or at the next planned check when that comes sooner. */
function retryAt(ctx: AppContext, p: Payment, expiresAt: number, now: number): number {
  const next = nextCheckAt(p.createdAt, expiresAt, now, ctx.config.paymentCheckScheduleMs);
  return next > now ? Math.min(next, now + CHECK_RETRY_MS) : now + CHECK_RETRY_MS;
}

/**
 * What a failed status call means, for the log line an operator reads first: a provider that does not know the
 * payment (its account's credentials changed?) calls for other checks than one that cannot be reached.
 */
function whatFailed(err: UpstreamError): string {
  if (err.timedOut) return "provider did not answer in time";
  if (err.answered === 404) return "provider does not know this payment (check its account)";
  if (err.answered !== null) return `provider answered ${err.answered}`;
  return "provider unreachable";
}
