import type { AppContext } from "../context.ts";
import { getBackfillState } from "../db/backfills.ts";
import { describeError, log } from "../log.ts";
import { lateCheckBackfill, paymentNameBackfill } from "../payments/backfill.ts";
import { pendingRefundIndexBackfill, reversalCheckBackfill } from "../refunds/backfill.ts";
import { lateInvoiceIndexBackfill } from "../invoices/backfill.ts";
import { type Backfill, runBackfill } from "./run.ts";

/**
 * Every backfill, in the order start-up runs them. All run at start-up as well as from the CLI, with their progress
 * record as the marker that they are done: the checks they schedule matter only within days of the record's event (7
 * for a late check, 30 for a refund's re-check), so one that waits for an operator to remember it misses them, and the
 * indexes' missing records would stay out of their counts unnoticed. The CLI runs them to the end where no server runs
 * against the store, and says whether they are done. The most urgent first (late checks: the shortest window), the ones
 * that read most (every older invoice, then every older payment) last.
 */
export const BACKFILL_RUNS: readonly Backfill[] = [
  lateCheckBackfill,
  reversalCheckBackfill,
  pendingRefundIndexBackfill,
  lateInvoiceIndexBackfill,
  paymentNameBackfill,
];

/** Every backfill's progress, for the CLI: done or not, when, and what it wrote. */
export async function describeBackfills(ctx: AppContext) {
  return await Promise.all(BACKFILL_RUNS.map(async (b) => {
    const s = (await getBackfillState(ctx.kv, b.name)).value;
    return {
      name: b.name,
      what: b.what,
      state: s?.done ? "complete" : s ? "in progress" : "not started",
      written: s?.written ?? 0,
      doneAt: s?.doneAt ? new Date(s.doneAt).toISOString() : null,
    };
  }));
}

/**
 * How long a backfill that failed waits before it is tried again in the same process: the first pause, doubling with
 * each failure in a row up to the longest. Left to the next start, a store that failed for a moment (locked, a disk
 * briefly full) could stay unbackfilled past the windows its checks matter in (7 days for a late check).
 */
export const BACKFILL_RETRY = { firstMs: 60_000, longestMs: 60 * 60_000 };

/**
 * Runs every backfill at start-up (startEmailIndexBackfill's pattern): a first batch of each before this returns, so
 * a small store is done at once, the rest in the background, logged when done; an interrupted run resumes at the next
 * start. A backfill that fails (its first batch or a later one) is tried again after a pause (BACKFILL_RETRY), while
 * the others go on; each failure is logged once. `stop` waits for it, pauses included.
 */
export async function startBackfills(
  ctx: AppContext,
  opts: { runs?: readonly Backfill[]; retry?: typeof BACKFILL_RETRY } = {},
): Promise<{ stop(): Promise<void> }> {
  const retry = opts.retry ?? BACKFILL_RETRY;
  /** Each backfill left to the background: when it runs next, and the pause after its next failure. */
  const pending: { backfill: Backfill; at: number; pauseMs: number; started?: boolean }[] = [];
  for (const backfill of opts.runs ?? BACKFILL_RUNS) {
    const first = await runOrLog(ctx, backfill, { maxBatches: 1 }, retry.firstMs);
    const twice = Math.min(retry.firstMs * 2, retry.longestMs);
    if (!first) pending.push({ backfill, at: Date.now() + retry.firstMs, pauseMs: twice });
    else if (!first.done) pending.push({ backfill, at: 0, pauseMs: retry.firstMs });
    else if (first.written) log.info(`${backfill.name} backfill done`, { written: first.written });
  }
  if (!pending.length) return { stop: () => Promise.resolve() };
  const abort = new AbortController();
  const signal = abort.signal;
  const running = (async () => {
    let left = pending;
    while (left.length && !signal.aborted) {
      const later: typeof pending = [];
      for (const run of left) {
        if (signal.aborted) return;
        if (run.at > Date.now()) {
          later.push(run);
          continue;
        }
        const { backfill } = run;
        if (!run.started) log.info(`${backfill.name} backfill started in the background`, { what: backfill.what });
        const r = await runOrLog(ctx, backfill, { signal }, run.pauseMs);
        if (r) {
          log.info(`${backfill.name} backfill ${r.done ? "done" : "paused"}`, { written: r.written });
          continue;
        }
        // Failed: tried again after a pause, doubling with each failure in a row; the others go on meanwhile.
        const pauseMs = Math.min(run.pauseMs * 2, retry.longestMs);
        later.push({ backfill, at: Date.now() + run.pauseMs, pauseMs, started: true });
      }
      left = later;
      if (left.length) await pauseUntil(Math.min(...left.map((r) => r.at)), signal);
    }
  })();
  return {
    async stop() {
      abort.abort();
      await running;
    },
  };
}

/** Resolves at `at` (wall clock), or at once when `signal` aborts (a stop does not wait out a pause). */
function pauseUntil(at: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, at - Date.now()));
    signal.addEventListener("abort", done, { once: true });
  });
}

async function runOrLog(
  ctx: AppContext,
  backfill: Backfill,
  opts: { maxBatches?: number; signal?: AbortSignal },
  retryInMs: number,
) {
  try {
    return await runBackfill(ctx, backfill, opts);
  } catch (err) {
    log.error(`${backfill.name} backfill failed; it is tried again in ${Math.round(retryInMs / 1000)} s`, {
      error: describeError(err),
    });
    return null;
  }
}
