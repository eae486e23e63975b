import { encodeTime } from "../ids.ts";
import type { AppContext } from "../context.ts";
import { type ActivityRef, listActivity } from "../db/activity.ts";
import { claimExport, EXPORT_JOB, type ExportState, finishExport } from "../db/analytics.ts";
import { log } from "../log.ts";
import { describeBigQueryError } from "./_errors.ts";
import { buildRows } from "./batch.ts";
import type { Analytics } from "./types.ts";

/** Failed runs back off exponentially from the interval up to this. */
const MAX_BACKOFF_MS = 5 * 60_000;

/**
 * The export job: claims the single export record, sends the next batch of
 * the activity log to BigQuery and, only once both tables accepted it, moves
 * the cursor in the same checked write that releases the claim. A crash
 * anywhere before that write leaves the cursor where it was, and the batch is
 * sent again under the same insertIds. Never throws for BigQuery's failures:
 * they are recorded and retried with back-off.
 */
export async function runAnalyticsExport(ctx: AppContext, _id: string): Promise<void> {
  const a = ctx.analytics;
  if (!a) return; // export switched off: the job record waits until it is on again
  const claimed = await claimExport(ctx.kv, ctx.now(), a.leaseMs);
  if (!claimed) return;
  const next = await exportNextBatch(ctx, a, claimed.value);
  const now = ctx.now();
  const saved = await finishExport(ctx.kv, claimed, next, { queue: ctx.config.jobsQueue, now });
  if (!saved) {
    log.warn("analytics export lease lost; the batch will be sent again by the new owner");
    return;
  }
  if (!ctx.config.jobsQueue) ctx.kick(EXPORT_JOB, Math.max(0, next.nextRunAt - now));
}

async function exportNextBatch(ctx: AppContext, a: Analytics, state: ExportState): Promise<ExportState> {
  const started = ctx.now();
  try {
    const entries = await listSettledActivity(ctx.kv, state.cursor, started - a.settleMs, a.batchSize);
    const rows = await sendBatch(ctx.kv, a, entries);
    const done = ctx.now();
    const full = entries.length >= a.batchSize;
    if (state.failures > 0) log.info("analytics export recovered", { failures: state.failures });
    if (rows) log.debug("analytics batch exported", { entries: entries.length, rows, ms: done - started });
    return {
      ...state,
      cursor: entries.at(-1)?.seq ?? state.cursor,
      // A full batch means more is waiting: go again at once instead of after the interval.
      nextRunAt: full ? done : done + a.intervalMs,
      leaseUntil: 0,
      failures: 0,
      lastSuccessAt: done,
      exportedRows: state.exportedRows + rows,
    };
  } catch (err) {
    const done = ctx.now();
    const failures = state.failures + 1;
    const retryInMs = Math.min(a.intervalMs * 2 ** (failures - 1), MAX_BACKOFF_MS);
    const message = describeBigQueryError(err);
    log.warn("analytics export failed; will retry", { failures, retryInMs, error: message });
    return {
      ...state,
      nextRunAt: done + retryInMs,
      leaseUntil: 0,
      failures,
      lastError: { at: done, message },
    };
  }
}

/**
 * Activity entries after the cursor that are at least `settleMs` old. An
 * entry's id is taken from the writer's clock before its commit, so a slow
 * commit (or a writer whose clock lags) can land behind entries already
 * exported; waiting until ids are old enough keeps the cursor from skipping it.
 */
function listSettledActivity(kv: Deno.Kv, cursor: string | null, settledBefore: number, limit: number) {
  const toSeq = encodeTime(Math.max(0, settledBefore));
  if (cursor && cursor >= toSeq) return Promise.resolve([]);
  return listActivity(kv, { afterSeq: cursor, toSeq, limit });
}

/** Builds and sends the rows for some activity entries; resolves with the row count once both tables accepted them. */
export async function sendBatch(
  kv: Deno.Kv,
  a: Analytics,
  entries: { seq: string; ref: ActivityRef }[],
): Promise<number> {
  if (!entries.length) return 0;
  const batch = await buildRows(kv, entries, a.email);
  await Promise.all([
    a.sink.insert("payment_events", batch.events),
    a.sink.insert("payments", batch.payments),
    a.sink.insert("provider_operations", batch.operations),
    a.sink.insert("invoices", batch.invoices),
    a.sink.insert("invoice_deposits", batch.invoiceDeposits),
  ]);
  return batch.events.length + batch.payments.length + batch.operations.length + batch.invoices.length +
    batch.invoiceDeposits.length;
}
