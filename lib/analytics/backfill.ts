import { encodeTime } from "../ids.ts";
import { listActivity } from "../db/activity.ts";
import { describeBigQueryError } from "./_errors.ts";
import { sendBatch } from "./export.ts";
import type { Analytics } from "./types.ts";

export interface BackfillOptions {
  /** First moment included (ms since epoch). */
  from: number;
  /** First moment no longer included (ms since epoch). */
  to: number;
  /** Tries per batch before giving up (default 5). */
  tries?: number;
  /** Wait before the first retry, doubled each time (default 1 s). */
  retryDelayMs?: number;
  onBatch?: (progress: { entries: number; rows: number }) => void;
}

/**
 * Sends everything the activity log holds between two times again, in the
 * live export's batches and insertIds, without touching its cursor. Rows
 * already in BigQuery come back as duplicates that the views in
 * docs/bigquery/README.md collapse.
 */
export async function backfillAnalytics(
  kv: Deno.Kv,
  a: Analytics,
  opts: BackfillOptions,
): Promise<{ entries: number; rows: number }> {
  const fromSeq = encodeTime(opts.from);
  const toSeq = encodeTime(opts.to);
  const total = { entries: 0, rows: 0 };
  let after: string | null = null;
  for (;;) {
    const entries = await listActivity(kv, { afterSeq: after, fromSeq, toSeq, limit: a.batchSize });
    if (!entries.length) return total;
    const rows = await withRetries(() => sendBatch(kv, a, entries), opts.tries ?? 5, opts.retryDelayMs ?? 1_000);
    total.entries += entries.length;
    total.rows += rows;
    opts.onBatch?.(total);
    after = entries.at(-1)!.seq;
  }
}

async function withRetries<T>(fn: () => Promise<T>, tries: number, delayMs: number): Promise<T> {
  for (let i = 1;; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= tries) throw new Error(`gave up after ${tries} tries: ${describeBigQueryError(err)}`);
      await new Promise((r) => setTimeout(r, delayMs * 2 ** (i - 1)));
    }
  }
}
