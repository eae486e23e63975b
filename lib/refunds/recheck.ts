import type { AppContext } from "../context.ts";
import { commitRefundUpdate, getRefundEntry } from "../db/refunds.ts";
import { UpstreamError } from "../errors.ts";
import { scheduledCheckRetryAt } from "../check_schedule.ts";
import { log } from "../log.ts";
import { applyRefundResult, nextReversalCheckAt, refundScope, REVERSAL_CHECK_MS } from "./settle.ts";
import type { RefundStatus } from "./status.ts";
import type { Refund } from "./types.ts";

/** When the provider cannot be reached (or refuses the read), the next try: an hour on, or the next check if sooner. */
const RECHECK_RETRY_MS = 60 * 60_000;
/** How long past the last re-check a provider that could not be reached is still asked (every RECHECK_RETRY_MS). */
const RECHECK_RETRY_WINDOW_MS = 24 * 60 * 60_000;

/**
 * The `refund_recheck` job: asks the provider whether a refund that succeeded still stands (REVERSAL_CHECK_MS, from
 * its success; only where the provider can reverse one). A `failed` now is the provider's reversal, applied as its
 * webhook would have been (applyRefundResult: the refund fails, the payment's refundedAmount and status go back, the
 * amount is free again, the shop gets refund.failed, all in one atomic operation). Still standing, only the job moves
 * on to its next check, or ends. Idempotent: a re-check not due (run already, or the refund changed) does nothing,
 * and every write is checked against the version read.
 */
export async function runRefundRecheck(ctx: AppContext, id: string): Promise<void> {
  const entry = await getRefundEntry(ctx.kv, id);
  const r = entry.value;
  const now = ctx.now();
  if (!r || r.status !== "succeeded" || !r.recheckAt || r.recheckAt > now) return;
  const current = entry as Deno.KvEntry<Refund>;
  const succeededAt = r.settledAt ?? r.updatedAt;
  // A success always came with the provider's reference; without one there is nothing to ask about.
  const status = r.providerRef ? await providerRefundStatus(ctx, r, r.providerRef) : "succeeded";
  if (status === "failed") {
    // A concurrent run or the webhook may have applied it first: the refund is then failed already, and stays so.
    await applyRefundResult(ctx, id, { ref: r.providerRef, status });
    return;
  }
  // Anything but a failure (succeeded; pending, which a success does not go back to) leaves the refund standing.
  const next = status === null
    ? retryAt(succeededAt, now)
    : r.providerRef
    ? nextReversalCheckAt(succeededAt, now)
    : null;
  // False when the refund changed meanwhile (the webhook, another run): what that wrote stands.
  await commitRefundUpdate(ctx.kv, current, { ...r, recheckAt: next }, { queue: ctx.config.jobsQueue, now });
}

/** After a failed try: in RECHECK_RETRY_MS (or at the next check, if sooner), up to a day past the last check. */
function retryAt(succeededAt: number, now: number): number | null {
  return scheduledCheckRetryAt(REVERSAL_CHECK_MS, succeededAt, now, {
    retryMs: RECHECK_RETRY_MS,
    windowMs: RECHECK_RETRY_WINDOW_MS,
  });
}

/** The refund's status as its provider says it now; null (logged) when the provider did not say. */
async function providerRefundStatus(ctx: AppContext, r: Refund, ref: string): Promise<RefundStatus | null> {
  const { adapter } = await ctx.providers.forPayment(refundScope(r));
  try {
    return await adapter.getRefundStatus(ref);
  } catch (err) {
    if (!(err instanceof UpstreamError)) throw err;
    log.warn("refund re-check: the provider did not say whether the refund still stands; trying again later", {
      refundId: r.id,
      paymentId: r.paymentId,
      detail: err.detail,
    });
    return null;
  }
}
