import type { PaymentEvent } from "../payments/types.ts";
import type { DeliveryAttempt } from "../relay/types.ts";
import { type ActivityRef, countActivityAfter } from "./activity.ts";
import { deliveryAttemptKey } from "./deliveries.ts";
import { paymentEventKey } from "./payments.ts";
import { scheduleJob, type ScheduleOptions, unscheduleJob } from "./jobs.ts";

/**
 * The BigQuery export is one recurring job whose record holds the cursor (the
 * last activity-log entry BigQuery accepted) and a lease. The cursor moves
 * only in the checked write that ends a claimed run, so a worker that lost its
 * lease can never move it, and a batch is retried until it is accepted.
 */
export interface ExportState {
  /** Activity seq of the last entry BigQuery accepted; null before the first batch. */
  cursor: string | null;
  /** When the job is next due (its `jobs_due` key). */
  nextRunAt: number;
  /** A worker holds the job until then. */
  leaseUntil: number;
  /** Failed runs in a row (drives the back-off). */
  failures: number;
  lastSuccessAt: number | null;
  lastError: { at: number; message: string } | null;
  /** Rows accepted since the job was created (events and payment states). */
  exportedRows: number;
}

const stateKey = ["analytics_export"] as const;
/** The job's id in the due index; there is only one export job. */
export const EXPORT_JOB = { kind: "analytics" as const, id: "export" };

/** The export job's record (cursor, schedule, lease, last outcome), or a null entry before the first start. */
export function getExportStateEntry(kv: Deno.Kv): Promise<Deno.KvEntryMaybe<ExportState>> {
  return kv.get<ExportState>(stateKey);
}

/**
 * Creates the job, due now, if it does not exist yet. An existing job keeps
 * its cursor and schedule; its due entry is written again (a no-op when it is
 * there), so no edit of the due index can strand the export for good.
 */
export async function ensureExportJob(kv: Deno.Kv, jobs: ScheduleOptions): Promise<void> {
  const entry = await getExportStateEntry(kv);
  if (entry.value) {
    const op = kv.atomic().check(entry);
    scheduleJob(op, EXPORT_JOB, entry.value.nextRunAt, { ...jobs, queue: false });
    await op.commit(); // fails only when a worker just moved the job, which schedules it anyway
    return;
  }
  const state: ExportState = {
    cursor: null,
    nextRunAt: jobs.now,
    leaseUntil: 0,
    failures: 0,
    lastSuccessAt: null,
    lastError: null,
    exportedRows: 0,
  };
  const op = kv.atomic().check(entry).set(stateKey, state);
  scheduleJob(op, EXPORT_JOB, state.nextRunAt, jobs);
  await op.commit(); // fails only when another process created it first
}

/**
 * Leases the job when it is due and nobody holds it, so two workers never
 * export the same batch. Returns the claimed entry, or null.
 */
export async function claimExport(
  kv: Deno.Kv,
  now: number,
  leaseMs: number,
): Promise<Deno.KvEntry<ExportState> | null> {
  const entry = await getExportStateEntry(kv);
  const s = entry.value;
  if (!s || s.nextRunAt > now || s.leaseUntil > now) return null;
  const claimed = { ...s, leaseUntil: now + leaseMs };
  const res = await kv.atomic().check(entry).set(stateKey, claimed).commit();
  if (!res.ok) return null;
  return { key: entry.key, value: claimed, versionstamp: res.versionstamp };
}

/**
 * Ends a claimed run: writes the new state (cursor, schedule, outcome) and
 * moves the due-index entry, only if nobody took the job in the meantime.
 */
export async function finishExport(
  kv: Deno.Kv,
  claimed: Deno.KvEntry<ExportState>,
  next: ExportState,
  jobs: ScheduleOptions,
): Promise<boolean> {
  const op = kv.atomic().check(claimed).set(stateKey, next);
  if (claimed.value.nextRunAt !== next.nextRunAt) unscheduleJob(op, EXPORT_JOB, claimed.value.nextRunAt);
  scheduleJob(op, EXPORT_JOB, next.nextRunAt, jobs);
  return (await op.commit()).ok;
}

/** Activity entries not exported yet (counting stops at `max`). */
export async function countExportBacklog(kv: Deno.Kv, max = 100_000): Promise<number> {
  const state = (await getExportStateEntry(kv)).value;
  return await countActivityAfter(kv, state?.cursor ?? null, max);
}

/**
 * The records activity entries point at, in order (null where one is gone).
 * The keys come from lib/db/payments.ts and lib/db/deliveries.ts, which own
 * them; they are read here in bulk, 10 per getMany (KV's
 * limit) with the chunks in parallel, because one get per entry made reading
 * the slowest part of an export batch.
 */
export async function getActivityRecords(
  kv: Deno.Kv,
  refs: Exclude<ActivityRef, { kind: "invoice" }>[],
): Promise<(PaymentEvent | DeliveryAttempt | null)[]> {
  // Events carried in their activity entry need no read; older entries and attempts are read in bulk. Operation
  // entries always ride along and have no record of their own here (the export reads them from the ref).
  const missing = refs.flatMap((r, i) => ((r.kind === "event" && r.event) || r.kind === "operation" ? [] : [i]));
  const keys = missing.map((i) => {
    const r = refs[i] as Exclude<ActivityRef, { kind: "operation" | "invoice" }>;
    return r.kind === "event" ? paymentEventKey(r.paymentId, r.eventSeq) : deliveryAttemptKey(r.deliveryId, r.attempt);
  });
  const chunks: Deno.KvKey[][] = [];
  for (let i = 0; i < keys.length; i += 10) chunks.push(keys.slice(i, i + 10));
  const read = (await Promise.all(chunks.map((c) => kv.getMany<(PaymentEvent | DeliveryAttempt)[]>(c)))).flat();
  const out: (PaymentEvent | DeliveryAttempt | null)[] = refs.map((r) => (r.kind === "event" && r.event) || null);
  missing.forEach((refIndex, j) => (out[refIndex] = read[j].value));
  return out;
}
