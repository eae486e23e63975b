/**
 * Background work is a record in KV plus a due-time index key. Deno Deploy has
 * no KV queues, so the index is the truth: a sweep runs whatever is due, and
 * where queues exist an enqueue in the same atomic operation wakes the job on
 * time without waiting for the sweep.
 */
export const JOB_KINDS = [
  "postback",
  "analytics",
  "payment_check",
  "refund",
  "refund_recheck",
  "invoice_check",
] as const;
/** A kind of background job; its handler is registered in lib/jobs.ts, checked by the compiler to cover every kind. */
export type JobKind = typeof JOB_KINDS[number];

export interface JobMessage {
  kind: JobKind;
  id: string;
}

const dueKey = (kind: JobKind, at: number, id: string) => ["jobs_due", kind, at, id] as const;

export interface ScheduleOptions {
  /** Also enqueue a wake-up message (only where `kv.enqueue` is supported). */
  queue: boolean;
  now: number;
}

/** Adds the due-index entry (and optional wake-up) for a job to an atomic operation. */
export function scheduleJob(op: Deno.AtomicOperation, msg: JobMessage, at: number, opts: ScheduleOptions) {
  op.set(dueKey(msg.kind, at, msg.id), true);
  if (opts.queue) op.enqueue(msg, { delay: Math.max(0, at - opts.now) });
}

export function unscheduleJob(op: Deno.AtomicOperation, msg: JobMessage, at: number) {
  op.delete(dueKey(msg.kind, at, msg.id));
}

/** Ids of the jobs of one kind due at or before `now`, oldest first, streamed from the index. */
export async function* iterateDueJobs(kv: Deno.Kv, kind: JobKind, now: number): AsyncGenerator<string> {
  const iter = kv.list<boolean>({ start: ["jobs_due", kind], end: ["jobs_due", kind, now + 1] });
  for await (const entry of iter) yield entry.key[3] as string;
}

/** Number of jobs of a kind waiting, due or not (for health and the console). */
export async function countScheduledJobs(kv: Deno.Kv, kind: JobKind): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix: ["jobs_due", kind] })) n++;
  return n;
}

/** Where a walk of a kind's jobs stands: the due time and id of the last job read. */
export interface ScheduledJob {
  at: number;
  id: string;
}

/** The jobs of one kind waiting, due or not, soonest due first, after `after` (from the first when null), at most `limit`. */
export async function listScheduledJobs(
  kv: Deno.Kv,
  kind: JobKind,
  opts: { after: ScheduledJob | null; limit: number },
): Promise<ScheduledJob[]> {
  const prefix = ["jobs_due", kind];
  // A key with one more part sorts right after the key itself: the walk goes on past the last job read.
  const selector = opts.after ? { prefix, start: [...dueKey(kind, opts.after.at, opts.after.id), ""] } : { prefix };
  const jobs: ScheduledJob[] = [];
  for await (const e of kv.list(selector, { limit: opts.limit })) {
    jobs.push({ at: e.key[2] as number, id: e.key[3] as string });
  }
  return jobs;
}

/** Number of jobs of a kind due at or before `now`, counting at most `max` index keys. */
export async function countDueJobs(kv: Deno.Kv, kind: JobKind, now: number, max: number): Promise<number> {
  let n = 0;
  const iter = kv.list({ start: ["jobs_due", kind], end: ["jobs_due", kind, now + 1] }, { limit: max });
  for await (const _ of iter) n++;
  return n;
}

export function isJobMessage(value: unknown): value is JobMessage {
  const v = value as JobMessage;
  return typeof v === "object" && v !== null && (JOB_KINDS as readonly string[]).includes(v.kind) &&
    typeof v.id === "string";
}
