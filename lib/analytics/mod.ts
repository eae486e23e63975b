/**
 * The BigQuery export: every payment event and postback attempt in the
 * activity log becomes a `payment_events` row, and the payment it belongs to
 * a `payments` row in its current state. It runs only as a background job
 * (lib/jobs.ts), never on a request.
 */
import type { Config } from "../config.ts";
import type { AppContext } from "../context.ts";
import { countExportBacklog, ensureExportJob, getExportStateEntry } from "../db/analytics.ts";
import { importEmailHashKey } from "./rows.ts";
import type { Analytics } from "./types.ts";

export { runAnalyticsExport } from "./export.ts";
export { backfillAnalytics } from "./backfill.ts";
export type { Analytics, AnalyticsSink } from "./types.ts";

/** Builds the export from the config; undefined when BigQuery is not configured (the export is off). */
export async function createAnalytics(config: Config): Promise<Analytics | undefined> {
  if (!config.bigquery) return undefined;
  // Loaded only when configured: the client pulls in a large Node dependency tree.
  const { BigQuerySink } = await import("./bigquery.ts");
  const { email, hashSecret } = config.analytics;
  return {
    sink: new BigQuerySink(config.bigquery),
    email: { policy: email, hashKey: email === "hash" ? await importEmailHashKey(hashSecret!) : undefined },
    batchSize: config.analytics.batchSize,
    intervalMs: config.analytics.intervalMs,
    settleMs: config.analytics.settleMs,
    // Two inserts run side by side, each bounded by the timeout; the rest is local reads.
    leaseMs: 2 * config.bigquery.timeoutMs + 1_000,
  };
}

/** Creates the export job when the export is on and the job does not exist yet (at start-up). */
export async function startAnalyticsExport(ctx: AppContext): Promise<void> {
  if (!ctx.analytics) return;
  await ensureExportJob(ctx.kv, { queue: ctx.config.jobsQueue, now: ctx.now() });
}

export interface AnalyticsStatus {
  enabled: boolean;
  /** "project.dataset", or null when off. */
  target: string | null;
  /** Activity entries not exported yet (0 when off). */
  backlog: number;
  /** End of the last run that went through (an empty run counts: it shows the export is alive). */
  lastSuccessAt: number | null;
  /** The failure of the last run, while runs keep failing; null once one goes through. */
  lastError: { at: number; message: string } | null;
  /** Failed runs in a row. */
  failures: number;
  exportedRows: number;
}

/** The export's health for the console: is it on, how far behind, when it last went through, why it fails. */
export async function analyticsStatus(ctx: AppContext): Promise<AnalyticsStatus> {
  const state = (await getExportStateEntry(ctx.kv)).value;
  const enabled = ctx.analytics !== undefined;
  return {
    enabled,
    target: ctx.analytics?.sink.target ?? null,
    backlog: enabled ? await countExportBacklog(ctx.kv) : 0,
    lastSuccessAt: state?.lastSuccessAt ?? null,
    lastError: state && state.failures > 0 ? state.lastError : null,
    failures: state?.failures ?? 0,
    exportedRows: state?.exportedRows ?? 0,
  };
}
