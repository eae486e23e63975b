import type { Payment, PaymentEvent } from "../payments/types.ts";
import type { Refund } from "../refunds/types.ts";
import type { Delivery } from "../relay/types.ts";
import { addAuditOps, type NewAuditEntry } from "./audit.ts";
import { addDeliveryOps } from "./deliveries.ts";
import {
  type JobMessage,
  listScheduledJobs,
  type ScheduledJob,
  scheduleJob,
  type ScheduleOptions,
  unscheduleJob,
} from "./jobs.ts";
import { collectValues, getManyEntries } from "./kv.ts";
import { addOperationOps, type OperationEntry } from "./operations.ts";
import { groupCommitterPerStore } from "./group_commit.ts";
import { addDerivedEventOps, paymentRecordKey } from "./payments.ts";
import { addStatsOps, type StatEvent } from "./stats.ts";

const refundKey = (id: string) => ["refunds", id] as const;
const byPaymentKey = (paymentId: string, seq: string) => ["refunds_by_payment", paymentId, seq] as const;
/**
 * What is spent of a payment: the sum of its pending and succeeded refunds, in
 * minor units. Its own key, so reserving an amount never contends with the
 * payment record's other writers, and every reservation is checked against the
 * version read: concurrent refunds can never spend more than the payment.
 */
const reservedKey = (paymentId: string) => ["refund_reserved", paymentId] as const;
/**
 * The refunds waiting on their provider, oldest first: by when they were asked for, not by id (a refund named by the
 * shop has a random id) nor by next check (a refund asked about often may be the oldest). Derived from the record in
 * every write of it (addPendingIndexOps), so the pending-refund gauges read the oldest as the first key, however many
 * wait.
 */
const pendingKey = (createdAt: number, id: string) => ["refunds_pending", createdAt, id] as const;

const job = (id: string) => ({ kind: "refund" as const, id });
const recheckJob = (id: string) => ({ kind: "refund_recheck" as const, id });
/**
 * A refund's job is a backup (the request or a webhook settles it), so it is a
 * due-index key only: no queue message to write and later consume per refund.
 * The in-process kick and the cron sweep run it. The same goes for a succeeded
 * refund's re-checks, days apart: the cron sweep runs them.
 */
const noQueue = (jobs: ScheduleOptions): ScheduleOptions => ({ ...jobs, queue: false });

/**
 * The job a refund has due, if any: a pending one's `refund` job (only pending refunds have one), or a succeeded one's
 * `refund_recheck` while its re-checks last.
 */
function dueJobOf(r: Refund): { msg: JobMessage; at: number } | null {
  if (r.status === "pending") return { msg: job(r.id), at: r.nextCheckAt };
  if (r.status === "succeeded" && r.recheckAt) return { msg: recheckJob(r.id), at: r.recheckAt };
  return null;
}

/**
 * Keeps the pending index in step with a refund's new version, and returns the version to store (marked when it is
 * in the index). The key is set on every update that leaves a refund pending, not only on the move into pending: a
 * refund stored before the index existed gets its key at its next write (the job writes each one at least every 6
 * hours), the backfill aside. A new refund is not indexed: most settle in their request, in the update that stores
 * the provider's answer, and would cost every refund a key written and deleted; one the provider left pending is
 * indexed by that update (or, if its request died before the answer, by its job's first check, minutes later).
 */
function withPendingIndex(op: Deno.AtomicOperation, before: Refund, next: Refund): Refund {
  const stays = next.status === "pending" && next.createdAt === before.createdAt;
  if (before.pendingIndexed && !stays) op.delete(pendingKey(before.createdAt, before.id));
  if (next.status !== "pending") {
    const { pendingIndexed: _, ...settled } = next;
    return settled;
  }
  op.set(pendingKey(next.createdAt, next.id), true);
  return { ...next, pendingIndexed: true };
}

export async function getRefund(kv: Deno.Kv, id: string): Promise<Refund | null> {
  return (await kv.get<Refund>(refundKey(id))).value;
}

export function getRefundEntry(kv: Deno.Kv, id: string): Promise<Deno.KvEntryMaybe<Refund>> {
  return kv.get<Refund>(refundKey(id));
}

/** Reads refunds by id with their versions, in the order of `ids` (an id of none: an empty entry). */
export function getRefundEntries(kv: Deno.Kv, ids: string[]): Promise<Deno.KvEntryMaybe<Refund>[]> {
  return getManyEntries<Refund>(kv, ids.map(refundKey));
}

/** A payment's refunds, oldest first. */
export async function listRefundsByPayment(kv: Deno.Kv, paymentId: string): Promise<Refund[]> {
  const ids = await collectValues(kv.list<string>({ prefix: ["refunds_by_payment", paymentId] }));
  const out: Refund[] = [];
  for (let i = 0; i < ids.length; i += 10) {
    const entries = await kv.getMany<Refund[]>(ids.slice(i, i + 10).map(refundKey));
    for (const e of entries) if (e.value) out.push(e.value);
  }
  return out;
}

/** How many refunds wait on their provider, and since when the oldest of them does (null when none does). */
export interface PendingRefunds {
  count: number;
  oldestCreatedAt: number | null;
}

/**
 * The refunds still pending (asked of the provider, not settled), read from the pending index: the oldest is its first
 * key, exact however many wait; the count stops at `max` keys, so a huge backlog cannot slow a scrape (`max` then
 * means at least that many). Reads index keys only, no refund records.
 */
export async function readPendingRefunds(kv: Deno.Kv, max: number): Promise<PendingRefunds> {
  let count = 0;
  let oldestCreatedAt: number | null = null;
  for await (const e of kv.list<true>({ prefix: ["refunds_pending"] }, { limit: max })) {
    if (count++ === 0) oldestCreatedAt = e.key[1] as number;
  }
  return { count, oldestCreatedAt };
}

/**
 * One batch of the pending index's backfill (lib/refunds/backfill.ts): the refunds of the next `limit` `refund` jobs
 * after `after` (every pending refund has one, and only pending refunds do), each still pending and not in the index
 * yet, written again as they are (which indexes them), checked against the version read: a refund settled meanwhile,
 * or indexed by another runner, is left as it is. The last job read, how many were read, and how many were indexed.
 */
export async function indexPendingRefundsBatch(
  kv: Deno.Kv,
  opts: { after: ScheduledJob | null; limit: number; now: number },
): Promise<{ last: ScheduledJob | null; listed: number; indexed: number }> {
  const jobs = await listScheduledJobs(kv, "refund", opts);
  const unindexed = (await getRefundEntries(kv, jobs.map((j) => j.id)))
    .filter((e): e is Deno.KvEntry<Refund> => e.value?.status === "pending" && !e.value.pendingIndexed);
  const indexed = await Promise.all(unindexed.map(async (entry) => {
    const op = kv.atomic();
    // Its job stays as it is: the same refund's due time.
    addRefundUpdateOps(op, entry, entry.value, { queue: false, now: opts.now });
    return (await op.commit()).ok;
  }));
  return { last: jobs.at(-1) ?? null, listed: jobs.length, indexed: indexed.filter(Boolean).length };
}

/** What a new refund is decided on: its payment, the amount its refunds hold, and a refund already stored under its id. */
export interface RefundTarget {
  payment: Deno.KvEntryMaybe<Payment>;
  reservation: Deno.KvEntryMaybe<number>;
  /** The refund stored under the id asked about (a named request's retry), or null. */
  refund: Refund | null;
}

/** A payment, the amount its refunds hold and (for a named request) the refund with that id, in one read. */
export async function getRefundTarget(kv: Deno.Kv, paymentId: string, refundId: string | null): Promise<RefundTarget> {
  const keys: Deno.KvKey[] = [paymentRecordKey(paymentId), reservedKey(paymentId)];
  if (refundId) keys.push(refundKey(refundId));
  const [payment, reservation, refund] = await kv.getMany(keys) as [
    Deno.KvEntryMaybe<Payment>,
    Deno.KvEntryMaybe<number>,
    Deno.KvEntryMaybe<Refund>?,
  ];
  return { payment, reservation, refund: refund?.value ?? null };
}

/** The amount of a payment held by its pending and succeeded refunds (0 when none), with its version. */
export function getRefundReservation(kv: Deno.Kv, paymentId: string): Promise<Deno.KvEntryMaybe<number>> {
  return kv.get<number>(reservedKey(paymentId));
}

export interface NewRefund {
  refund: Refund;
  /** The reservation as read; the write fails if another refund reserved meanwhile. */
  reservation: Deno.KvEntryMaybe<number>;
  /** The payment's timeline entry for the request (shown from the refund record: an activity entry only). */
  event: PaymentEvent;
  audit?: NewAuditEntry;
  jobs: ScheduleOptions;
}

/**
 * Stores a new pending refund, reserves its amount, schedules its job (the
 * durable backup of the provider call made right after) and writes the
 * payment's timeline entry, in one atomic operation. False when the
 * reservation changed since it was read or a refund with this id exists (the
 * caller reads again and decides again); otherwise the stored refund's entry.
 */
export async function insertRefund(kv: Deno.Kv, n: NewRefund): Promise<Deno.KvEntry<Refund> | null> {
  const versionstamp = await refundWriter(kv).commitStamped(n);
  return versionstamp === null ? null : { key: refundKey(n.refund.id), value: n.refund, versionstamp };
}

// Concurrent refunds share commits (see group_commit.ts); two of one payment never share a group.
const refundWriter = groupCommitterPerStore<NewRefund>({
  addOps: addInsertRefundOps,
  identity: (x) => x.refund.paymentId,
  maxGroup: 16,
});

function addInsertRefundOps(op: Deno.AtomicOperation, n: NewRefund) {
  const r = n.refund;
  op
    .check({ key: refundKey(r.id), versionstamp: null })
    .check({ key: reservedKey(r.paymentId), versionstamp: n.reservation.versionstamp })
    .set(reservedKey(r.paymentId), (n.reservation.value ?? 0) + r.amount)
    .set(refundKey(r.id), r)
    .set(byPaymentKey(r.paymentId, r.seq), r.id);
  scheduleJob(op, job(r.id), r.nextCheckAt, noQueue(n.jobs));
  addDerivedEventOps(op, r.paymentId, r.shopId, n.event);
  if (n.audit) addAuditOps(op, n.audit);
}

/** Adds a new version of a refund read as `entry` to an atomic operation, moving its job's due time with it. */
export function addRefundUpdateOps(
  op: Deno.AtomicOperation,
  entry: Deno.KvEntry<Refund>,
  next: Refund,
  jobs: ScheduleOptions,
) {
  op.check(entry).set(refundKey(next.id), withPendingIndex(op, entry.value, next));
  const before = dueJobOf(entry.value);
  const after = dueJobOf(next);
  if (before && after && before.msg.kind === after.msg.kind && before.at === after.at) return;
  if (before) unscheduleJob(op, before.msg, before.at);
  if (after) scheduleJob(op, after.msg, after.at, noQueue(jobs));
}

/**
 * Writes a new version of a refund that stays as it is (a pending one's provider reference and next check, a
 * succeeded one's next re-check), with the log entries of the provider calls that led to it.
 */
export async function commitRefundUpdate(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Refund>,
  next: Refund,
  jobs: ScheduleOptions,
  operations: OperationEntry[] = [],
): Promise<boolean> {
  const op = kv.atomic();
  addRefundUpdateOps(op, entry, next, jobs);
  for (const e of operations) addOperationOps(op, e);
  return (await op.commit()).ok;
}

export interface RefundFailure {
  /** The payment as read: the postback describes it, so it must not change under us. */
  payment: Deno.KvEntry<Payment>;
  /** Shown from the refund record: an activity entry only. */
  event: PaymentEvent;
  delivery?: Delivery;
  jobs: ScheduleOptions;
  /** Log entries of the provider calls that led to it. */
  operations?: OperationEntry[];
  /** The operator's entry, when one recorded the failure (lib/refunds/admin.ts). */
  audit?: NewAuditEntry;
}

/**
 * Records a failed refund and gives its amount back to the payment (a
 * checked read-modify-write of the reservation), with the payment's timeline
 * entry, the shop's postback and an operator's audit entry, in one atomic operation. Answers the commit's
 * versionstamp, or null when anything read changed meanwhile.
 */
export async function commitRefundFailure(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Refund>,
  next: Refund,
  f: RefundFailure,
): Promise<string | null> {
  const reservation = await getRefundReservation(kv, next.paymentId);
  const op = kv.atomic().check(f.payment).check(reservation)
    .set(reservedKey(next.paymentId), Math.max(0, (reservation.value ?? 0) - next.amount));
  addRefundUpdateOps(op, entry, next, f.jobs);
  addDerivedEventOps(op, next.paymentId, next.shopId, f.event);
  if (f.delivery) addDeliveryOps(op, f.delivery, f.jobs);
  for (const e of f.operations ?? []) addOperationOps(op, e);
  if (f.audit) addAuditOps(op, f.audit);
  const res = await op.commit();
  return res.ok ? res.versionstamp : null;
}

/** Ops a refund's success adds to its payment's move: the refund's new state, its counters and its postback. */
export function addRefundSuccessOps(
  op: Deno.AtomicOperation,
  entry: Deno.KvEntry<Refund>,
  next: Refund,
  more: { stats: StatEvent; delivery?: Delivery; jobs: ScheduleOptions },
) {
  addRefundUpdateOps(op, entry, next, more.jobs);
  addStatsOps(op, more.stats);
  if (more.delivery) addDeliveryOps(op, more.delivery, more.jobs);
}

/**
 * Ops a refund's reversal (it succeeded, then the provider failed it) adds to its payment's move back: the refund's
 * new state, its amount given back to what is left to refund (checked against the reservation as read), its counter
 * taken back and its postback.
 */
export function addRefundReversalOps(
  op: Deno.AtomicOperation,
  entry: Deno.KvEntry<Refund>,
  next: Refund,
  more: { reservation: Deno.KvEntryMaybe<number>; stats: StatEvent; delivery?: Delivery; jobs: ScheduleOptions },
) {
  op.check(more.reservation)
    .set(reservedKey(next.paymentId), Math.max(0, (more.reservation.value ?? 0) - next.amount));
  addRefundUpdateOps(op, entry, next, more.jobs);
  addStatsOps(op, more.stats);
  if (more.delivery) addDeliveryOps(op, more.delivery, more.jobs);
}
