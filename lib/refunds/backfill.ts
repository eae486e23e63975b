import { type Backfill, catchUpCheckAt } from "../backfills/run.ts";
import type { AppContext } from "../context.ts";
import type { BackfillState } from "../db/backfills.ts";
import { listLoggedOperations } from "../db/operations.ts";
import { commitRefundUpdate, getRefundEntries, indexPendingRefundsBatch } from "../db/refunds.ts";
import { encodeTime } from "../ids.ts";
import { nextReversalCheckAt, refundScope, REVERSAL_CHECK_MS } from "./settle.ts";
import type { Refund } from "./types.ts";

/** Refunds whose first re-checks passed before the backfill found them get their catch-up within this. */
export const REVERSAL_CHECK_CATCH_UP_MS = 6 * 60 * 60_000;

/**
 * Re-checks for refunds that succeeded, at a provider that can reverse them (Stripe), before those re-checks existed
 * (recheck.ts, REVERSAL_CHECK_MS): stored without `recheckAt` at all (this version writes it on every success, null
 * where no re-check is planned), so a reversal whose webhook is lost would leave them succeeded for good.
 *
 * Refunds have no listing in time order of their own; the operation log has one (kept 90 days), and every success
 * came with a provider call that answered it (the refund, or a status read) logged at that moment. So only the log's
 * last REVERSAL_CHECK_MS before the cut is read, oldest first, and only the refunds its successful refund calls name:
 * a refund that succeeded earlier is past its last re-check. Each gets the re-check a refund succeeding now has: the
 * next step from its success (nextReversalCheckAt), or, where steps passed unchecked, one catch-up within
 * REVERSAL_CHECK_CATCH_UP_MS (catchUpCheckAt; a read of each at Stripe spread over hours, not a burst); the job then
 * follows the schedule.
 */
export const reversalCheckBackfill: Backfill = {
  name: "refund_reversal_checks",
  what: "reversal re-checks for refunds that succeeded at a provider that can reverse them before re-checks existed",
  step: backfillReversalChecks,
};

async function backfillReversalChecks(ctx: AppContext, state: BackfillState, batchSize: number) {
  const keys = await listLoggedOperations(ctx.kv, {
    afterSeq: state.after,
    fromSeq: encodeTime(state.cut - REVERSAL_CHECK_MS.at(-1)!),
    toSeq: encodeTime(state.cut + 1),
    limit: batchSize,
  });
  const ids = new Set(
    keys.flatMap((k) =>
      k.entries.flatMap((e) =>
        (e.operation === "refund" || e.operation === "refund_status") && e.outcome === "ok" &&
          e.status === "succeeded" && e.refundId
          ? [e.refundId]
          : []
      )
    ),
  );
  const entries = await getRefundEntries(ctx.kv, [...ids]);
  const written = await Promise.all(entries.map(async (entry) => {
    const r = entry.value;
    if (!r || !mayOweReChecks(r, state.cut) || !(await canReverse(ctx, r))) return false;
    const now = ctx.now();
    const next = nextReversalCheckAt(r.settledAt!, now);
    if (next === null) return false;
    const at = catchUpCheckAt(
      { from: r.settledAt!, firstStepMs: REVERSAL_CHECK_MS[0], next, now },
      r.id,
      REVERSAL_CHECK_CATCH_UP_MS,
    );
    // Checked against the version read: a refund that changed meanwhile (its reversal's webhook) keeps what that wrote.
    const jobs = { queue: ctx.config.jobsQueue, now };
    return await commitRefundUpdate(ctx.kv, entry as Deno.KvEntry<Refund>, { ...r, recheckAt: at }, jobs);
  }));
  return {
    after: keys.at(-1)?.seq ?? state.after,
    done: keys.length < batchSize,
    written: written.filter(Boolean).length,
  };
}

/**
 * Succeeded before the cut and stored without `recheckAt`: what an earlier version stored. This version's own
 * successes have it (a time, or null once through or where none was planned) and are never touched.
 */
function mayOweReChecks(r: Refund, cut: number): boolean {
  return r.status === "succeeded" && r.recheckAt === undefined && r.providerRef !== null && r.settledAt !== null &&
    r.settledAt < cut;
}

/** Whether the refund's provider can still reverse a success (refundsCanReverse: Stripe, not Bansky). */
async function canReverse(ctx: AppContext, r: Refund): Promise<boolean> {
  try {
    return (await ctx.providers.forPayment(refundScope(r))).adapter.refundsCanReverse;
  } catch {
    // An account no longer known: nothing could ask it anyway.
    return false;
  }
}

/**
 * The pending index (lib/db/refunds.ts: the refunds waiting on their provider, oldest first, which the pending-refund
 * gauges read) for refunds pending since before it existed: this version writes a refund's key with every write of it,
 * so one left pending by an earlier version is missing until its job writes it (within 6 hours), and the gauge's
 * oldest age would leave it out meanwhile, the one the alert is for.
 *
 * Every pending refund has a `refund` job and only pending refunds do, so the walk reads the refund job index in its
 * own order (due time, then id) and only those refunds: few, whatever the number of refunds ever made. The cursor is
 * the last job read. A job that moves meanwhile was moved by a write of this version, which indexed its refund; one
 * read twice is found indexed. Refunds pending since the cut were indexed as they were written, so nothing bounds the
 * walk but the index's end.
 */
export const pendingRefundIndexBackfill: Backfill = {
  name: "refund_pending_index",
  what:
    "the index of refunds waiting on their provider (the pending-refund gauges) for refunds pending before it existed",
  step: backfillPendingRefundIndex,
};

async function backfillPendingRefundIndex(ctx: AppContext, state: BackfillState, batchSize: number) {
  const batch = await indexPendingRefundsBatch(ctx.kv, {
    after: state.after ? JSON.parse(state.after) : null,
    limit: batchSize,
    now: ctx.now(),
  });
  return {
    after: batch.last ? JSON.stringify(batch.last) : state.after,
    done: batch.listed < batchSize,
    written: batch.indexed,
  };
}
