import type { Delivery, DeliveryAttempt } from "../relay/types.ts";
import { collectValues, getManyEntries } from "./kv.ts";
import { listShops } from "./shops.ts";
import { addActivityOps } from "./activity.ts";
import { scheduleJob, type ScheduleOptions, unscheduleJob } from "./jobs.ts";
import { groupCommitterPerStore } from "./group_commit.ts";
import { groupReader } from "./group_read.ts";
import { LONGEST_LIVE_LEASE_MS } from "../relay/lease.ts";

const deliveryKey = (id: string) => ["deliveries", id] as const;
const byPaymentKey = (paymentId: string, id: string) => ["deliveries_by_payment", paymentId, id] as const;
const attemptKey = (id: string, n: number) => ["delivery_attempts", id, n] as const;
/** The key of one postback attempt, for bulk readers such as the analytics export. */
export const deliveryAttemptKey = attemptKey;
/** Deliveries that failed at least once and are not delivered: the console's "needs attention" list. */
const attentionKey = (shopId: string, id: string) => ["deliveries_attention", shopId, id] as const;
/**
 * An attention entry's value: when the delivery was made (the console's listing, newest first) and when an attempt at
 * it last failed (a replay's window). Written before the second, it is the creation time alone, read as both until the
 * delivery's next failed attempt writes it again.
 */
type AttentionMark = number | { createdAt: number; failedAt: number };
const markMadeAt = (m: AttentionMark) => typeof m === "number" ? m : m.createdAt;
const markFailedAt = (m: AttentionMark) => typeof m === "number" ? m : m.failedAt;

const job = (id: string) => ({ kind: "postback" as const, id });

/**
 * Adds a new delivery, its index and its schedule to an atomic operation (called with the state change).
 * Its first attempt is due now and the process that commits it sends it at once (every caller kicks it), so
 * it gets a due-index key but no queue message: a message would only make the queue listener read it again
 * after it was sent. Should that process die first, its start-up sweep, or any process's cron sweep, sends
 * it (once the lease it may be born with ran out, see firstAttemptLease). Retries, which wait, are woken by
 * the queue where there is one (recordDeliveryAttempt).
 */
export function addDeliveryOps(op: Deno.AtomicOperation, d: Delivery, jobs: ScheduleOptions) {
  op.check({ key: deliveryKey(d.id), versionstamp: null })
    .set(deliveryKey(d.id), d)
    .set(byPaymentKey(d.paymentId, d.id), d.id);
  scheduleJob(op, job(d.id), d.nextAttemptAt, { ...jobs, queue: false });
}

/** A delivery as a commit stored it (for the process that wrote it, which need not read it back). */
export function storedDelivery(d: Delivery, versionstamp: string): Deno.KvEntry<Delivery> {
  return { key: deliveryKey(d.id), value: d, versionstamp };
}

export function getDeliveryEntry(kv: Deno.Kv, id: string): Promise<Deno.KvEntryMaybe<Delivery>> {
  return kv.get<Delivery>(deliveryKey(id));
}

/**
 * A delivery read on the relay's hot path: concurrent reads share one store
 * read (group_read.ts), so the entry may be shared too: read-only.
 */
export async function getDeliveryEntryShared(kv: Deno.Kv, id: string): Promise<Deno.KvEntryMaybe<Delivery>> {
  const [entry] = await groupReader(kv).getMany<[Delivery]>([deliveryKey(id)]);
  return entry;
}

/**
 * Whether a delivery read at `now` may be attempted: pending, due, and not leased by a live attempt. A lease ending
 * further ahead than a live attempt's can (LONGEST_LIVE_LEASE_MS) was left by a process whose clock ran ahead, and
 * would otherwise hold the postback until that clock's time came: a sweep takes it, as an operator's resend does.
 */
export function isDeliveryDue(d: Delivery | null, now: number): d is Delivery {
  return d !== null && d.status === "pending" && d.nextAttemptAt <= now && liveLeaseLeft(d, now) === 0;
}

/** How long a live lease still holds a delivery that is otherwise due at `now` (pending, its time come); 0 for none. */
export function heldWhileDue(d: Delivery | null, now: number): number {
  return d !== null && d.status === "pending" && d.nextAttemptAt <= now ? liveLeaseLeft(d, now) : 0;
}

/** True while an attempt at the delivery is under way at `now` (a live lease holds it), as the console shows it. */
export function attemptUnderWay(d: Delivery, now: number): boolean {
  return liveLeaseLeft(d, now) > 0;
}

/** How long a live attempt still holds the delivery's lease at `now`; 0 for none, expired or stale (see above). */
function liveLeaseLeft(d: Delivery, now: number): number {
  const held = d.leaseUntil - now;
  return held > 0 && held <= LONGEST_LIVE_LEASE_MS ? held : 0;
}

/**
 * Takes a lease on a due delivery so no other worker sends the same attempt.
 * Returns the claimed entry, or null when it is not due, leased, or finished.
 */
export async function claimDelivery(
  kv: Deno.Kv,
  id: string,
  now: number,
  leaseMs: number,
): Promise<Deno.KvEntry<Delivery> | null> {
  const entry = await getDeliveryEntry(kv, id);
  return entry.value ? await claimDeliveryEntry(kv, entry as Deno.KvEntry<Delivery>, now, leaseMs) : null;
}

/**
 * Takes the lease on a delivery as read in `entry` (checked against its
 * version): null when it is not due, or someone else wrote it since. Claims of
 * concurrent attempts share commits (group_commit.ts).
 */
export async function claimDeliveryEntry(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Delivery>,
  now: number,
  leaseMs: number,
): Promise<Deno.KvEntry<Delivery> | null> {
  if (!isDeliveryDue(entry.value, now)) return null;
  return await commitLease(kv, entry, { ...entry.value, leaseUntil: now + leaseMs, leaseToken: crypto.randomUUID() });
}

/**
 * Extends the lease of a delivery this process holds, as read in `entry` (checked against its version; the lease's
 * token stays): the renewed entry, or null when someone else wrote it since (our lease had run out and another
 * worker took it).
 */
export function renewDeliveryLease(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Delivery>,
  leaseUntil: number,
): Promise<Deno.KvEntry<Delivery> | null> {
  return commitLease(kv, entry, { ...entry.value, leaseUntil });
}

/**
 * Gives back the lease of a delivery this process holds and will not attempt (as stored in `entry`, checked against
 * its version): due for any worker at once. Null when it changed since. With `queue` (where KV queues exist), a
 * message in the same atomic operation tells a running process to send it, once that one looks at the queue (on a
 * SQLite file another process does so on its own at most once a minute: its sweep may come first).
 */
export function releaseDeliveryLease(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Delivery>,
  opts: { queue: boolean } = { queue: false },
): Promise<Deno.KvEntry<Delivery> | null> {
  return commitLease(kv, entry, { ...entry.value, leaseUntil: 0 }, opts.queue);
}

/** Writes a claim, a renewal or a release of `entry`'s lease, checked against its version: the stored entry, or null. */
async function commitLease(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Delivery>,
  claimed: Delivery,
  wake = false,
): Promise<Deno.KvEntry<Delivery> | null> {
  const versionstamp = await claimWriter(kv).commitStamped({ entry, claimed, wake });
  return versionstamp === null ? null : { key: entry.key, value: claimed, versionstamp };
}

interface Claim {
  entry: Deno.KvEntry<Delivery>;
  claimed: Delivery;
  /** A lease given back: also a queue message that wakes a process to send it (the due-index key stays as it is). */
  wake?: boolean;
}

function addClaimOps(op: Deno.AtomicOperation, { entry, claimed, wake }: Claim) {
  op.check(entry).set(deliveryKey(claimed.id), claimed);
  if (wake) op.enqueue(job(claimed.id));
}

/**
 * Records one attempt and the delivery's next state in one atomic operation,
 * moving its due-index entry. Returns false when the lease was lost (another
 * worker took the delivery after our lease ran out). Outcomes of concurrent
 * attempts share commits.
 */
export function recordDeliveryAttempt(
  kv: Deno.Kv,
  claimed: Deno.KvEntry<Delivery>,
  attempt: DeliveryAttempt,
  next: Delivery,
  jobs: ScheduleOptions,
): Promise<boolean> {
  return outcomeWriter(kv).commit({ claimed, attempt, next, jobs });
}

interface Outcome {
  claimed: Deno.KvEntry<Delivery>;
  attempt: DeliveryAttempt;
  next: Delivery;
  jobs: ScheduleOptions;
}

function addOutcomeOps(op: Deno.AtomicOperation, { claimed, attempt, next, jobs }: Outcome) {
  op.check(claimed)
    .set(deliveryKey(next.id), next)
    .set(attemptKey(next.id, attempt.n), attempt);
  unscheduleJob(op, job(next.id), claimed.value.nextAttemptAt);
  if (next.status === "pending") scheduleJob(op, job(next.id), next.nextAttemptAt, jobs);
  addActivityOps(op, {
    kind: "attempt",
    paymentId: next.paymentId,
    shopId: next.shopId,
    deliveryId: next.id,
    attempt: attempt.n,
  });
  // Only a delivery that had an attempt before can be on the attention list: a first success has nothing to delete.
  if (next.status !== "delivered") {
    const mark: AttentionMark = { createdAt: next.createdAt, failedAt: next.updatedAt };
    op.set(attentionKey(next.shopId, next.id), mark);
  } else if (claimed.value.attempts > 0) op.delete(attentionKey(next.shopId, next.id));
}

// One group committer per store and kind of write. A group holds one write per delivery (the identity), and
// at most 64: an outcome is about 7 keys, well under KV's limits for an operation.
const claimWriter = groupCommitterPerStore<Claim>({ addOps: addClaimOps, identity: (c) => c.claimed.id, maxGroup: 64 });
const outcomeWriter = groupCommitterPerStore<Outcome>({
  addOps: addOutcomeOps,
  identity: (o) => o.next.id,
  maxGroup: 64,
});

/**
 * Puts a delivery back on the schedule now, as `putBack` has it (an operator's resend starts the schedule again, a
 * replay keeps a retrying one's place: lib/relay/schedule.ts); the webhook-id stays the same. With
 * `refuseInFlight`, a pending delivery a live attempt holds (liveLeaseLeft) is left alone and answered with how long
 * it is held (`inFlightMs`): an attempt at it is under way (or its process died moments ago), and putting it back
 * would send it a second time beside that attempt. A stale lease (a clock that jumped) is cleared like any other.
 * With `onlyIf` (a replay of failed postbacks), one it refuses as the delivery stands
 * now is left alone (null): a replay reads its postbacks long before it writes the last of them, and one resent
 * meanwhile was put back under way (its lease cleared, so sent a second time beside the resend) or delivered again.
 * `extraOps` adds what commits with it (a resend's timeline event, the operator's audit entry), given the delivery as
 * read and as put back.
 */
export async function rescheduleDelivery(
  kv: Deno.Kv,
  id: string,
  now: number,
  jobs: ScheduleOptions,
  opts: {
    putBack: (d: Delivery, now: number) => Delivery;
    refuseInFlight?: boolean;
    onlyIf?: (d: Delivery) => boolean;
    extraOps?: (op: Deno.AtomicOperation, d: Delivery, next: Delivery) => void;
  },
): Promise<Delivery | { inFlightMs: number } | null> {
  for (;;) {
    const entry = await getDeliveryEntry(kv, id);
    const d = entry.value;
    if (!d || (opts.onlyIf && !opts.onlyIf(d))) return null;
    const held = d.status === "pending" ? liveLeaseLeft(d, now) : 0;
    if (opts.refuseInFlight && held > 0) return { inFlightMs: held };
    const next = opts.putBack(d, now);
    const op = kv.atomic().check(entry).set(deliveryKey(id), next);
    if (d.status === "pending") unscheduleJob(op, job(id), d.nextAttemptAt);
    scheduleJob(op, job(id), next.nextAttemptAt, jobs);
    opts.extraOps?.(op, d, next);
    if ((await op.commit()).ok) return next;
  }
}

/**
 * A payment's postbacks not delivered yet (retrying or failed) that no live attempt holds, as read (with their
 * versions): those a newer postback about the payment supersedes (see supersededDelivery). One an attempt holds right
 * now is left to that attempt, whose outcome is checked against the version it claimed.
 */
export async function listSupersedableDeliveries(
  kv: Deno.Kv,
  paymentId: string,
  now: number,
): Promise<Deno.KvEntry<Delivery>[]> {
  const ids = await collectValues(kv.list<string>({ prefix: ["deliveries_by_payment", paymentId] }));
  if (!ids.length) return [];
  const entries = await getManyEntries<Delivery>(kv, ids.map(deliveryKey));
  return entries.filter((e): e is Deno.KvEntry<Delivery> => {
    const d = e.value;
    return d !== null && (d.status === "failed" || (d.status === "pending" && liveLeaseLeft(d, now) === 0));
  });
}

/** Marks a delivery read (or claimed) as `entry` superseded on its own (see addSupersedeOps); false when it changed. */
export async function supersedeDelivery(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Delivery>,
  next: Delivery,
): Promise<boolean> {
  const op = kv.atomic();
  addSupersedeOps(op, entry, next);
  return (await op.commit()).ok;
}

/**
 * Marks a delivery read as `entry` superseded (`next`, see supersededDelivery), checked against that version, in the
 * operation of the change that makes the newer postback: its due-index key and its place on the attention list go.
 */
export function addSupersedeOps(op: Deno.AtomicOperation, entry: Deno.KvEntry<Delivery>, next: Delivery) {
  op.check(entry).set(deliveryKey(next.id), next).delete(attentionKey(next.shopId, next.id));
  if (entry.value.status === "pending") unscheduleJob(op, job(next.id), entry.value.nextAttemptAt);
}

/**
 * A payment's (or an invoice's) postbacks, its refunds' included. Read 10 at a time (KV's getMany limit): a payment
 * refunded item by item, or an invoice whose status went back and forth, has more than 10.
 */
export async function listDeliveriesByPayment(kv: Deno.Kv, paymentId: string): Promise<Delivery[]> {
  const ids = await collectValues(kv.list<string>({ prefix: ["deliveries_by_payment", paymentId] }));
  const entries = await getManyEntries<Delivery>(kv, ids.map(deliveryKey));
  return entries.flatMap((e) => (e.value ? [e.value] : []));
}

export function listDeliveryAttempts(kv: Deno.Kv, id: string): Promise<DeliveryAttempt[]> {
  return collectValues(kv.list<DeliveryAttempt>({ prefix: ["delivery_attempts", id] }));
}

/**
 * Ids of a shop's deliveries needing attention (failing or failed) whose last attempt failed at `since` or later, in
 * id order after `after` (a replay going on where its last request stopped), streamed from the whole index (whose
 * values hold that time), however long the shop's backlog. By the last failure, not the creation: a postback resent or
 * replayed days after it was made and still retrying failed within its schedule's span, whenever it was made.
 */
export async function* iterateAttentionDeliveryIds(
  kv: Deno.Kv,
  shopId: string,
  since: number,
  after?: string,
): AsyncGenerator<string> {
  const prefix = ["deliveries_attention", shopId];
  // KV's start is inclusive: the id the last request stopped at was handled there.
  const selector = after ? { prefix, start: [...prefix, after] } : { prefix };
  for await (const e of kv.list<AttentionMark>(selector)) {
    const id = e.key[e.key.length - 1] as string;
    if (markFailedAt(e.value) >= since && id !== after) yield id;
  }
}

/** Index entries a shop's listing fetches at a time when several shops' are merged: each holds one batch. */
const ATTENTION_MERGE_BATCH = 100;

/**
 * Deliveries needing attention (failing or failed), most recently updated first; one shop's or all: the `limit`
 * newest by creation, from each shop's index newest first (the index holds each one's creation time: AttentionMark),
 * so a shop's long backlog or shops listed before others in key order never hide another's newest failures. Across shops the
 * listings are merged as they are read: `limit` entries are taken in all, and each shop's listing holds one batch
 * at a time, however many shops there are and however long their backlogs (failed ones stay on the index).
 */
export async function listAttentionDeliveries(
  kv: Deno.Kv,
  opts: { shopId?: string; limit: number },
): Promise<Delivery[]> {
  const shopIds = opts.shopId ? [opts.shopId] : (await listShops(kv)).map((s) => s.id);
  const batchSize = shopIds.length > 1 ? Math.min(opts.limit, ATTENTION_MERGE_BATCH) : undefined;
  const lists = shopIds.map((shopId) =>
    kv.list<AttentionMark>({ prefix: ["deliveries_attention", shopId] }, {
      reverse: true,
      limit: opts.limit,
      batchSize,
    })
  );
  // Each listing's next entry (null once it has none), and ids taken newest first across them.
  const next = async (i: number) => (await lists[i].next()).value ?? null;
  const heads = await Promise.all(lists.map((_, i) => next(i)));
  const ids: string[] = [];
  while (ids.length < opts.limit) {
    let newest = -1;
    heads.forEach((h, i) => {
      if (h && (newest < 0 || markMadeAt(h.value) > markMadeAt(heads[newest]!.value))) newest = i;
    });
    if (newest < 0) break;
    const key = heads[newest]!.key;
    ids.push(key[key.length - 1] as string);
    heads[newest] = await next(newest);
  }
  const entries = await getManyEntries<Delivery>(kv, ids.map(deliveryKey));
  return entries.flatMap((e) => (e.value ? [e.value] : [])).sort((a, b) => b.updatedAt - a.updatedAt);
}

/** Most postbacks needing attention a count reads (each a delivery read): past it the counts say "at least". */
const ATTENTION_COUNT_MAX = 5_000;

/**
 * How many of a shop's (or all shops') postbacks need attention, among the newest ATTENTION_COUNT_MAX of them:
 * `more` when there may be others (an outage's backlog), so the numbers are shown as lower bounds.
 */
export async function countAttentionDeliveries(kv: Deno.Kv, shopId?: string): Promise<AttentionCounts> {
  const all = await listAttentionDeliveries(kv, { shopId, limit: ATTENTION_COUNT_MAX });
  return {
    failing: all.filter((d) => d.status === "pending").length,
    failed: all.filter((d) => d.status === "failed").length,
    more: all.length >= ATTENTION_COUNT_MAX,
  };
}

export interface AttentionCounts {
  failing: number;
  failed: number;
  /** Counted among the newest ATTENTION_COUNT_MAX only: there may be more. */
  more: boolean;
}
