import type { AppContext } from "../context.ts";
import { getPaymentEntry, reschedulePaymentCheck } from "../db/payments.ts";
import { nextScheduledCheckAt, scheduledCheckRetryAt } from "../check_schedule.ts";
import { UpstreamError } from "../errors.ts";
import { describeError, log } from "../log.ts";
import type { CancelResult, PaymentProvider, ProviderStatus } from "../providers/types.ts";
import { isLateSuccess, isOpen } from "./status.ts";
import { movePayment } from "./transition.ts";
import type { Payment } from "./types.ts";

/**
 * The janitor: a pending payment is checked at the provider on a backoff
 * counted from its creation, so a lost webhook never leaves it pending, and
 * once more at `expiresAt`, where still pending means expired. Each payment
 * has at most one check due (`checkAt`, a `payment_check` job); the engine
 * drops it in the same operation that settles the payment, except after an
 * expiry or a cancel the provider did not confirm: money on its way may still
 * come, so a few late checks stay (LATE_CHECK_MS).
 */
/** The default schedule of re-checks after creation (PAYMENT_CHECK_SCHEDULE): 2 min, 10 min, 1 h, 6 h. */
export const CHECK_BACKOFF_MS: readonly number[] = [2 * 60_000, 10 * 60_000, 60 * 60_000, 6 * 60 * 60_000];
/** When the provider cannot be reached, the next try. */
export const CHECK_RETRY_MS = 5 * 60_000;

/**
 * The checks of a payment we gave up on (expired, or cancelled by the shop) while the provider could not confirm it
 * stopped taking money (it refused the cancel, money being on its way, or could not be reached), counted from when we
 * gave up: 10 min, 1 h, 6 h, 1 day, 3 days and 7 days. Late money usually brings its own webhook; these find it when
 * that is lost, which would otherwise hide it for good. Sparse, since such money takes a while: a transfer in flight or
 * a crypto deposit lands within hours, a bank debit within about 5 business days (SEPA's longest), which a week covers
 * over a weekend. Past that, an operator's re-check is the way. Such payments are few (most cancels are confirmed), so
 * six checks each cost the provider little.
 */
export const LATE_CHECK_MS: readonly number[] = [
  10 * 60_000,
  60 * 60_000,
  6 * 60 * 60_000,
  24 * 60 * 60_000,
  3 * 24 * 60 * 60_000,
  7 * 24 * 60 * 60_000,
];
/** How long past the last late check a provider that could not be reached is still asked (every CHECK_RETRY_MS). */
const LATE_RETRY_WINDOW_MS = 24 * 60 * 60_000;

/** The late check after `now` of a payment given up on at `givenUpAt`; null once the schedule is through. */
export function nextLateCheckAt(givenUpAt: number, now: number): number | null {
  return nextScheduledCheckAt(LATE_CHECK_MS, givenUpAt, now);
}

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
 * expiry, tells the provider to cancel and expires the payment. A payment
 * given up on with late checks left gets one (checkGivenUp). Idempotent: a
 * check that is not due (already run, or the payment settled) does nothing,
 * and every write is checked against the version read.
 */
export async function runPaymentCheck(ctx: AppContext, paymentId: string): Promise<void> {
  const entry = await getPaymentEntry(ctx.kv, paymentId);
  const p = entry.value;
  const now = ctx.now();
  if (!p || !p.checkAt || p.checkAt > now) return;
  const current = entry as Deno.KvEntry<Payment>;
  if (p.providerRef && isOpen(p.status)) return await checkPending(ctx, current, p.providerRef, now);
  // Expired or cancelled (where a success would be late): the move that gave up on it kept late checks.
  if (p.providerRef && p.finalizedAt !== null && isLateSuccess(p.status, "succeeded")) {
    return await checkGivenUp(ctx, current, p.providerRef, p.finalizedAt, now);
  }
  await reschedulePaymentCheck(ctx.kv, current, null);
}

/** A pending payment's check (see runPaymentCheck). */
async function checkPending(ctx: AppContext, current: Deno.KvEntry<Payment>, ref: string, now: number) {
  const p = current.value;
  const paymentId = p.id;
  const expiresAt = p.expiresAt ?? p.createdAt + ctx.config.paymentTtlMs;
  const { adapter } = await ctx.providers.forPayment(p);
  const confirmed = await providerStatus(adapter, p, ref, "payment check");
  if (confirmed === null) {
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
  // payment it confirms later still succeeds, marked late, by its webhook or a late check. A provider that cannot
  // be reached does not hold the expiry back: the shop hears about it on time, and late money is never hidden.
  const cancel: CancelResult | null = await adapter.cancel(ref).catch((err) => {
    if (!(err instanceof UpstreamError)) throw err;
    log.warn("payment check: provider cancel failed at expiry", { paymentId, error: describeError(err) });
    return null;
  });
  // The buyer paid (or failed) in the last moment: what the provider says wins over our expiry.
  const to = cancel && !cancel.cancelled && cancel.status !== "pending" ? cancel.status : "expired";
  const providerCancelled = cancel?.cancelled ?? false;
  await settle(ctx, current, to, {
    type: "expiry_reached",
    at: now,
    data: { confirmed: to === "expired" ? "pending" : to, providerCancelled },
  }, {
    // Expired without the provider's word that it stopped: money on its way (or a buyer still on a provider we
    // could not reach) may come yet, and its webhook alone must not be all that tells us.
    checkAfterMs: to === "expired" && !providerCancelled ? LATE_CHECK_MS[0] : undefined,
  });
}

/**
 * A late check of a payment we gave up on without the provider's word that it stopped taking money (LATE_CHECK_MS,
 * from `givenUpAt`). Money the provider confirms now makes it succeed late, exactly as the webhook would have (the
 * shop gets payment.succeeded with late: true). Still on its way: the next late check, if any is left. Anything else
 * (failed, expired or cancelled at the provider) means no money is coming: the checks end. A provider that cannot
 * be reached is asked again in CHECK_RETRY_MS, up to a day past the last late check.
 */
async function checkGivenUp(
  ctx: AppContext,
  current: Deno.KvEntry<Payment>,
  ref: string,
  givenUpAt: number,
  now: number,
): Promise<void> {
  const p = current.value;
  const { adapter } = await ctx.providers.forPayment(p);
  const confirmed = await providerStatus(adapter, p, ref, "late payment check");
  if (confirmed === null) {
    const retry = scheduledCheckRetryAt(LATE_CHECK_MS, givenUpAt, now, {
      retryMs: CHECK_RETRY_MS,
      windowMs: LATE_RETRY_WINDOW_MS,
    });
    await reschedulePaymentCheck(ctx.kv, current, retry);
    return;
  }
  if (confirmed === "succeeded") {
    // The move clears checkAt; refused, the payment changed meanwhile (its webhook came) and keeps what that set.
    await movePayment(ctx, {
      paymentId: p.id,
      read: current,
      to: confirmed,
      because: { type: "status_checked", at: now, data: { confirmed, by: "janitor" } },
    });
    return;
  }
  await reschedulePaymentCheck(ctx.kv, current, confirmed === "pending" ? nextLateCheckAt(givenUpAt, now) : null);
}

/** Moves the payment; if the table refuses (it changed meanwhile, or a status we cannot take), the next check is set. */
async function settle(
  ctx: AppContext,
  entry: Deno.KvEntry<Payment>,
  to: ProviderStatus,
  because: Parameters<typeof movePayment>[1]["because"],
  opts: { checkAfterMs?: number } = {},
): Promise<void> {
  const moved = await movePayment(ctx, { paymentId: entry.value.id, to, because, checkAfterMs: opts.checkAfterMs });
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
/** The payment's status as its provider says it now; null (logged as `what` failing) when the provider did not say. */
async function providerStatus(
  adapter: PaymentProvider,
  p: Payment,
  ref: string,
  what: string,
): Promise<ProviderStatus | null> {
  try {
    return await adapter.getStatus(ref);
  } catch (err) {
    if (!(err instanceof UpstreamError)) throw err;
    log.warn(`${what}: ${whatFailed(err)}, trying again later`, { paymentId: p.id, detail: err.detail });
    return null;
  }
}

function whatFailed(err: UpstreamError): string {
  if (err.timedOut) return "provider did not answer in time";
  if (err.answered === 404) return "provider does not know this payment (check its account)";
  if (err.answered !== null) return `provider answered ${err.answered}`;
  return "provider unreachable";
}
