import type { AppContext } from "../context.ts";
import { getBackfillState } from "../db/backfills.ts";
import { describeError, log } from "../log.ts";
import { lateCheckBackfill } from "../payments/backfill.ts";
import { reversalCheckBackfill } from "../refunds/backfill.ts";
import { lateInvoiceIndexBackfill } from "../invoices/backfill.ts";
import { type Backfill, runBackfill } from "./run.ts";

/**
 * Every backfill, in the order start-up runs them. All run at start-up as well as from the CLI, with their progress
 * record as the marker that they are done: the checks they schedule matter only within days of the record's event (7
 * for a late check, 30 for a refund's re-check), so one that waits for an operator to remember it misses them, and the
 * index's missing invoices would stay out of the count unnoticed. The CLI runs them to the end where no server runs
 * against the store, and says whether they are done. The most urgent first (late checks: the shortest window), the one
 * that reads most (every older invoice) last.
 */
export const BACKFILL_RUNS: readonly Backfill[] = [lateCheckBackfill, reversalCheckBackfill, lateInvoiceIndexBackfill];

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
 * Runs every backfill at start-up (startEmailIndexBackfill's pattern): a first batch of each before this returns, so
 * a small store is done at once, the rest in the background, logged when done; an interrupted run resumes at the next
 * start. `stop` waits for it.
 */
export async function startBackfills(ctx: AppContext): Promise<{ stop(): Promise<void> }> {
  const pending: Backfill[] = [];
  for (const backfill of BACKFILL_RUNS) {
    const first = await runOrLog(ctx, backfill, { maxBatches: 1 });
    if (first && !first.done) pending.push(backfill);
    else if (first?.written) log.info(`${backfill.name} backfill done`, { written: first.written });
  }
  if (!pending.length) return { stop: () => Promise.resolve() };
  const abort = new AbortController();
  const running = (async () => {
    for (const backfill of pending) {
      log.info(`${backfill.name} backfill started in the background`, { what: backfill.what });
      const r = await runOrLog(ctx, backfill, { signal: abort.signal });
      if (r) log.info(`${backfill.name} backfill ${r.done ? "done" : "paused"}`, { written: r.written });
    }
  })();
  return {
    async stop() {
      abort.abort();
      await running;
    },
  };
}

async function runOrLog(ctx: AppContext, backfill: Backfill, opts: { maxBatches?: number; signal?: AbortSignal }) {
  try {
    return await runBackfill(ctx, backfill, opts);
  } catch (err) {
    log.error(`${backfill.name} backfill failed; it resumes at the next start`, { error: describeError(err) });
    return null;
  }
}
