import type { Payment, PaymentEvent } from "../payments/types.ts";
import type { Delivery } from "../relay/types.ts";
import { decodeTime, encodeTime, sortableId } from "../ids.ts";
import { collectValues, getManyEntries } from "./kv.ts";
import { groupCommitterPerStore } from "./group_commit.ts";
import { groupReader } from "./group_read.ts";
import { addDeliveryOps, addSupersedeOps } from "./deliveries.ts";
import { scheduleJob, type ScheduleOptions, unscheduleJob } from "./jobs.ts";
import { addStatsOps, type StatEvent } from "./stats.ts";
import { addAuditOps, type NewAuditEntry } from "./audit.ts";
import { addActivityOps } from "./activity.ts";
import { sha256Base64url } from "../crypto.ts";
import { DEFAULT_ACCOUNT_ID } from "../accounts/types.ts";
import { addOperationOps, type OperationEntry } from "./operations.ts";
import { Collector } from "./collected.ts";
import { type PaymentName, paymentNameOf } from "../payments/names.ts";

const WEBHOOK_DEDUP_TTL_MS = 30 * 24 * 60 * 60 * 1000;

const paymentKey = (id: string) => ["payments", id] as const;
/**
 * Which payment a shop's name for it (its own `id`, or an Idempotency-Key) names: the payment's id. The name is the key
 * as the shop wrote it, so a shop that numbers its orders adds its names next to each other, to a few pages of the
 * store, where a hash of the name would put each on a page of its own.
 */
const paymentNameKey = (shopId: string, name: PaymentName) => ["payment_names", shopId, name.kind, name.value] as const;
const byShopKey = (shopId: string, seq: string) => ["payments_by_shop", shopId, seq] as const;
const byTimeKey = (seq: string) => ["payments_by_time", seq] as const;
/** The buyer's email is in the key only as a hash (see paymentEmailHash). */
const byEmailKey = (emailHash: string, seq: string) => ["payments_by_email", emailHash, seq] as const;
/** Progress of building the email index for payments stored before it existed. */
const emailIndexStateKey = ["payments_index_state", "email"] as const;
const eventKey = (paymentId: string, seq: string) => ["payment_events", paymentId, seq] as const;
/** Payments that succeeded after we expired or cancelled them and are not refunded in full: the console lists them. */
const lateKey = (seq: string) => ["payments_late", seq] as const;
const checkJob = (id: string) => ({ kind: "payment_check" as const, id });
/** The key of one payment event, for bulk readers such as the analytics export. */
export const paymentEventKey = eventKey;
/** Writes a payment event and its activity-log entry into an atomic operation. */
function addEventOps(op: Deno.AtomicOperation, paymentId: string, shopId: string, event: PaymentEvent) {
  const eventSeq = sortableId();
  op.set(eventKey(paymentId, eventSeq), event);
  addActivityOps(op, { kind: "event", paymentId, shopId, eventSeq, event });
}

/** The key of a payment record, for a module that reads it together with its own keys (refunds). */
export const paymentRecordKey = paymentKey;
/** Adds a payment event to another module's atomic operation (a refund writes its payment's timeline with it). */
export const addPaymentEventOps = addEventOps;

/**
 * Adds a payment event that the timeline shows from another record (a refund's own), so only its activity
 * entry is written: the export gets it, and the payment's event list keeps no copy.
 */
export function addDerivedEventOps(op: Deno.AtomicOperation, paymentId: string, shopId: string, event: PaymentEvent) {
  addActivityOps(op, { kind: "event", paymentId, shopId, eventSeq: sortableId(), event });
}

/**
 * A provider's event id is unique within the account that sent it, not across accounts: the key is the account's,
 * so one account's webhooks (whoever holds its secret) can never mark another's as already seen.
 */
const webhookSeenKey = (accountId: string, eventId: string) => ["webhook_events_seen", accountId, eventId] as const;

/**
 * Stores a new payment (already known to the provider) with its name, indexes,
 * "created" activity entry and counters in one atomic operation. False when
 * its name (a shop's own id or Idempotency-Key) is taken: the request lost the
 * race to a copy of itself.
 *
 * Concurrent requests share commits (group commit, see group_commit.ts), and
 * each payment writes as few keys as it can, since every key costs the store
 * pages: the "created" event lives only in the activity log (the payment
 * record holds its content, and `listPaymentEvents` shows it from there).
 */
export function createPayment(
  kv: Deno.Kv,
  payment: Payment,
  opts: {
    operations?: OperationEntry[];
    extraOps?: (op: Deno.AtomicOperation) => void;
    /** The version of the name's key when read: null when unused, an attempt's when its id is used again. */
    nameVersion?: string | null;
  } = {},
): Promise<boolean> {
  return paymentWriter(kv).commit({
    payment,
    operations: opts.operations ?? [],
    extraOps: opts.extraOps,
    nameVersion: opts.nameVersion ?? null,
  });
}

/** A new payment and the provider calls that made it, whose log entries ride in the same commit. */
interface NewPaymentWrite {
  payment: Payment;
  operations: OperationEntry[];
  /** Another record born with the payment (an embedded checkout's session), in the same commit. */
  extraOps?: (op: Deno.AtomicOperation) => void;
  nameVersion: string | null;
}

const paymentWriter = groupCommitterPerStore<NewPaymentWrite>({
  addOps: addCreatePaymentOps,
  // Two payments under one name never share a group: both checks of the name's key would pass within it.
  identity: (w) => {
    const name = paymentNameOf(w.payment);
    return name ? JSON.stringify([w.payment.shopId, name.kind, name.value]) : w.payment.id;
  },
  maxGroup: 32,
});

function addCreatePaymentOps(
  op: Deno.AtomicOperation,
  { payment, operations, extraOps, nameVersion }: NewPaymentWrite,
) {
  for (const entry of operations) addOperationOps(op, entry);
  extraOps?.(op);
  op.check({ key: paymentKey(payment.id), versionstamp: null })
    .set(paymentKey(payment.id), payment);
  // The name is the uniqueness check: a copy of the request that stored its payment first fails this one.
  const name = paymentNameOf(payment);
  if (name) {
    const key = paymentNameKey(payment.shopId, name);
    op.check({ key, versionstamp: nameVersion }).set(key, payment.id);
  }
  addListingOps(op, {
    seq: payment.seq,
    id: payment.id,
    shopId: payment.shopId,
    emailHash: paymentEmailHash(payment.email),
  });
  // The first status check is a due-index key only: no queue message, since the cron sweep covers waits of minutes.
  if (payment.checkAt) scheduleJob(op, checkJob(payment.id), payment.checkAt, { queue: false, now: payment.createdAt });
  addActivityOps(op, {
    kind: "event",
    paymentId: payment.id,
    shopId: payment.shopId,
    eventSeq: payment.seq,
    event: createdEvent(payment),
  });
  addStatsOps(op, { ...payment, at: payment.createdAt, status: "created" });
}

/** The "created" event of a payment, made from the record itself. */
function createdEvent(p: Payment): PaymentEvent {
  return { type: "created", at: p.createdAt, data: { amount: p.amount, currency: p.currency, ref: p.providerRef } };
}

export async function getPayment(kv: Deno.Kv, id: string): Promise<Payment | null> {
  return (await kv.get<Payment>(paymentKey(id))).value;
}

/**
 * A payment read on a hot path (the buyer's redirects, init-payment's replay
 * check). It shares its read with concurrent ones (group_read.ts), so the
 * entry may be shared too: read-only.
 */
export async function getPaymentEntryShared(kv: Deno.Kv, id: string): Promise<Deno.KvEntryMaybe<Payment>> {
  const [entry] = await groupReader(kv).getMany<[Payment]>([paymentKey(id)]);
  return entry;
}

export function getPaymentEntry(kv: Deno.Kv, id: string): Promise<Deno.KvEntryMaybe<Payment>> {
  return kv.get<Payment>(paymentKey(id));
}

export interface PaymentMove {
  events: PaymentEvent[];
  /** Events the timeline shows from another record (see addDerivedEventOps): activity entries only. */
  derivedEvents?: PaymentEvent[];
  /** The counters the move changes (the status table says which moves count). */
  stats?: StatEvent[];
  /** A postback to schedule in the same atomic operation as the change that causes it. */
  delivery?: Delivery;
  /** Older postbacks of the payment that `delivery` supersedes, as read and as they become (see addSupersedeOps). */
  superseded?: { entry: Deno.KvEntry<Delivery>; next: Delivery }[];
  /** Marks a provider webhook as handled, so a duplicate is ignored. */
  webhookEventId?: string;
  /** An operator's action, recorded with the change. */
  audit?: NewAuditEntry;
  jobs: ScheduleOptions;
  /** What else commits with the move (a refund's own state change); its checks fail the move too. */
  extraOps?: (op: Deno.AtomicOperation) => void;
}

/**
 * Writes a new version of a payment read as `entry`, with everything the move
 * causes, in one atomic operation. Returns false when someone else wrote the
 * payment first: the caller re-reads and decides again.
 */
/** Commits a payment's move; the versionstamp it was stored with, or null when the payment changed meanwhile. */
export function commitPaymentMove(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Payment>,
  next: Payment,
  move: PaymentMove,
): Promise<string | null> {
  return moveWriter(kv).commitStamped({ entry, next, move });
}

interface Move {
  entry: Deno.KvEntry<Payment>;
  next: Payment;
  move: PaymentMove;
}

// Moves of different payments share commits under load (see group_commit.ts); one payment's never do.
const moveWriter = groupCommitterPerStore<Move>({ addOps: addMoveOps, identity: (m) => m.next.id, maxGroup: 16 });

function addMoveOps(op: Deno.AtomicOperation, { entry, next, move }: Move) {
  op.check(entry).set(paymentKey(next.id), next);
  addRecordDrivenOps(op, entry.value, next);
  for (const event of move.events) addEventOps(op, next.id, next.shopId, event);
  for (const event of move.derivedEvents ?? []) addDerivedEventOps(op, next.id, next.shopId, event);
  for (const stat of move.stats ?? []) addStatsOps(op, stat);
  if (move.delivery) addDeliveryOps(op, move.delivery, move.jobs);
  for (const { entry, next } of move.superseded ?? []) addSupersedeOps(op, entry, next);
  if (move.audit) addAuditOps(op, move.audit);
  move.extraOps?.(op);
  if (move.webhookEventId) {
    const seen = webhookSeenKey(next.accountId ?? DEFAULT_ACCOUNT_ID, move.webhookEventId);
    op.check({ key: seen, versionstamp: null }).set(seen, true, { expireIn: WEBHOOK_DEDUP_TTL_MS });
  }
}

/**
 * Keys that follow fields of the payment record, kept in step with it in the
 * same atomic operation: the due-index key of its status check (`checkAt`),
 * and the late-payments list (late and not refunded in full).
 */
function addRecordDrivenOps(op: Deno.AtomicOperation, before: Payment, after: Payment) {
  if (before.checkAt !== after.checkAt) {
    if (before.checkAt) unscheduleJob(op, checkJob(after.id), before.checkAt);
    if (after.checkAt) scheduleJob(op, checkJob(after.id), after.checkAt, { queue: false, now: after.updatedAt });
  }
  const wasListed = before.late === true && before.status !== "refunded";
  const listed = after.late === true && after.status !== "refunded";
  if (listed && !wasListed) op.set(lateKey(after.seq), after.id);
  if (wasListed && !listed) op.delete(lateKey(after.seq));
}

/**
 * Moves a payment's next status check to `at` (null: no more checks), checked
 * against the version read. False when the payment changed meanwhile.
 */
export async function reschedulePaymentCheck(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Payment>,
  at: number | null,
): Promise<boolean> {
  const next: Payment = { ...entry.value, checkAt: at };
  const op = kv.atomic().check(entry).set(paymentKey(next.id), next);
  addRecordDrivenOps(op, entry.value, next);
  return (await op.commit()).ok;
}

/** Late payments (succeeded after we expired or cancelled them) not refunded in full, newest first; one shop's or all. */
export async function listLatePayments(kv: Deno.Kv, opts: { shopId?: string; limit: number }): Promise<Payment[]> {
  // The list is short by nature (each one is an operator's to-do), so one shop's is found by filtering.
  const ids = await collectValues(
    kv.list<string>({ prefix: ["payments_late"] }, { reverse: true, limit: opts.shopId ? 1000 : opts.limit }),
  );
  const payments = await getPayments(kv, ids);
  return payments.filter((p) => !opts.shopId || p.shopId === opts.shopId).slice(0, opts.limit);
}

export async function isWebhookEventSeen(kv: Deno.Kv, accountId: string, eventId: string): Promise<boolean> {
  return (await kv.get(webhookSeenKey(accountId, eventId))).versionstamp !== null;
}

/** Whether a webhook was handled before, and its payment as read (with its version), in one read. */
export async function getWebhookTarget(
  kv: Deno.Kv,
  accountId: string,
  eventId: string,
  paymentId: string,
): Promise<{ seen: boolean; payment: Deno.KvEntryMaybe<Payment> }> {
  const [seen, payment] = await kv.getMany<[boolean, Payment]>([
    webhookSeenKey(accountId, eventId),
    paymentKey(paymentId),
  ]);
  return { seen: seen.versionstamp !== null, payment };
}

/** Records that a webhook was handled without changing the payment (duplicates, stale news). */
export async function markWebhookEventSeen(
  kv: Deno.Kv,
  accountId: string,
  eventId: string,
  payment: Payment,
  event: PaymentEvent,
) {
  const op = kv.atomic().set(webhookSeenKey(accountId, eventId), true, { expireIn: WEBHOOK_DEDUP_TTL_MS });
  addEventOps(op, payment.id, payment.shopId, event);
  await op.commit();
}

const webhookUnconfirmedKey = (accountId: string, eventId: string) =>
  ["webhook_events_unconfirmed", accountId, eventId] as const;

/**
 * Records, once per event id, a webhook whose claim the provider does not
 * confirm yet. It is not marked seen (its retry must still apply), so without
 * this every retry or replay would add to the payment's timeline.
 */
export async function recordUnconfirmedWebhook(
  kv: Deno.Kv,
  accountId: string,
  eventId: string,
  payment: Payment,
  event: PaymentEvent,
) {
  const key = webhookUnconfirmedKey(accountId, eventId);
  const op = kv.atomic().check({ key, versionstamp: null }).set(key, true, { expireIn: WEBHOOK_DEDUP_TTL_MS });
  addEventOps(op, payment.id, payment.shopId, event);
  await op.commit();
}

/** Records an event on a payment's timeline, and the operator action behind it when there is one. */
export async function addPaymentEvent(
  kv: Deno.Kv,
  payment: Payment,
  event: PaymentEvent,
  opts: { audit?: NewAuditEntry } = {},
) {
  const op = kv.atomic();
  addEventOps(op, payment.id, payment.shopId, event);
  if (opts.audit) addAuditOps(op, opts.audit);
  await op.commit();
}

/** A payment's timeline, oldest first, starting with its "created" event. */
export async function listPaymentEvents(kv: Deno.Kv, payment: Payment): Promise<PaymentEvent[]> {
  const stored = await collectValues(kv.list<PaymentEvent>({ prefix: ["payment_events", payment.id] }));
  // Payments stored before the "created" event moved into the record have it among their events.
  return stored.some((e) => e.type === "created") ? stored : [createdEvent(payment), ...stored];
}

/**
 * Records the buyer's first pass through our pay wrapper. Later passes write
 * nothing, which keeps the redirect hot path to a single read. Concurrent
 * buyers' first passes share commits (group_commit.ts): each buyer on the way
 * to pay makes one, and a commit of its own cost the store more than the
 * payment's rewrite in it. False when the visit is not recorded: the
 * payment changed twice meanwhile, or is no longer pending or already marked.
 */
export async function markBuyerRedirected(kv: Deno.Kv, entry: Deno.KvEntry<Payment>, now: number): Promise<boolean> {
  const writer = visitWriter(kv);
  if (await writer.commit({ entry, now })) return true;
  // The payment changed since it was read (its next check moved, say): once more, from what is stored now.
  const again = await getPaymentEntry(kv, entry.value.id);
  if (again.value?.status !== "pending" || again.value.firstRedirectAt) return false;
  return await writer.commit({ entry: again as Deno.KvEntry<Payment>, now });
}

interface BuyerVisit {
  entry: Deno.KvEntry<Payment>;
  now: number;
}

const visitWriter = groupCommitterPerStore<BuyerVisit>({
  addOps: addVisitOps,
  identity: (v) => v.entry.value.id,
  maxGroup: 32,
});

function addVisitOps(op: Deno.AtomicOperation, { entry, now }: BuyerVisit) {
  op.check(entry).set(paymentKey(entry.value.id), { ...entry.value, firstRedirectAt: now });
  addEventOps(op, entry.value.id, entry.value.shopId, { type: "buyer_redirected", at: now, data: {} });
}

/**
 * A new payment's place in the three listings: everyone's (by time), its shop's and its buyer's (by email hash).
 *
 * A payment written alone has a key in each, named by its seq, holding its id. A group commit's payments are
 * written as a few shared keys instead (collected.ts): per listing, one key holding the group's "seq id" pairs,
 * named by the newest seq among them. Every key costs the store a row and an expiry-index entry: with a key per
 * payment the listings took about a sixth of a 11-payment commit's time, and sharing them made init-payment 3-4 %
 * faster side by side. iteratePaymentIds reads both shapes back in seq order.
 */
interface ListingEntry {
  seq: string;
  id: string;
  shopId: string;
  emailHash: string;
}

/**
 * How far apart the oldest and the newest payment of one shared listing key may be. Keys are named by their newest
 * seq, so a reader bounded above by a seq also reads the keys up to this much later, which can hold older payments:
 * kept short, since every next page of a listing reads that far. A group's payments get their seqs within one
 * commit's time (milliseconds); a group that spans longer is split.
 */
const LISTING_SPAN_MS = 1_000;

/** Writes entries into the three listings; one entry alone gets the lone write's keys (see setListing). */
function setListings(target: Deno.AtomicOperation, entries: ListingEntry[]) {
  setListing(target, byTimeKey, entries);
  for (const [shopId, group] of Map.groupBy(entries, (e) => e.shopId)) {
    setListing(target, (seq) => byShopKey(shopId, seq), group);
  }
  for (const [emailHash, group] of Map.groupBy(entries, (e) => e.emailHash)) {
    setListing(target, (seq) => byEmailKey(emailHash, seq), group);
  }
}

const listings = new Collector<ListingEntry>(setListings);

function addListingOps(op: Deno.AtomicOperation, e: ListingEntry) {
  const group = listings.gathering(op);
  if (group) group.push(e);
  else setListings(op, [e]);
}

/** Writes entries of one listing as keys of at most LISTING_SPAN_MS each; a key of one entry is a lone write's. */
function setListing(target: Deno.AtomicOperation, key: (seq: string) => Deno.KvKey, entries: ListingEntry[]) {
  const runs: ListingEntry[][] = [];
  for (const e of entries.toSorted((a, b) => (a.seq < b.seq ? -1 : 1))) {
    const run = runs.at(-1);
    if (run && decodeTime(e.seq) - decodeTime(run[0].seq) <= LISTING_SPAN_MS) run.push(e);
    else runs.push([e]);
  }
  for (const run of runs) {
    const newest = run.at(-1)!;
    target.set(key(newest.seq), run.length === 1 ? newest.id : run.map((e) => `${e.seq} ${e.id}`));
  }
}

/** A payment as a listing names it. */
export interface ListedPayment {
  seq: string;
  id: string;
}

/** What a listing key holds: one payment's id (its seq is the key's), or a group's "seq id" pairs. */
type StoredListing = string | string[];

function listedPayments(entry: Deno.KvEntry<StoredListing>): ListedPayment[] {
  if (!Array.isArray(entry.value)) return [{ seq: entry.key.at(-1) as string, id: entry.value }];
  return entry.value.map((pair) => {
    const space = pair.indexOf(" ");
    return { seq: pair.slice(0, space), id: pair.slice(space + 1) };
  });
}

/**
 * The key part that finds a buyer's payments: SHA-256 of the lowercased email,
 * base64url. The index names buyers without spelling their address in clear.
 */
export function paymentEmailHash(email: string): string {
  return sha256Base64url(email.toLowerCase());
}

/**
 * Payments newest first (by seq): one buyer's (by `emailHash`, across shops), one shop's, or everyone's; `startSeq`
 * (inclusive) and `endSeq` (exclusive) bound the seqs (ULIDs: creation time).
 */
export async function* iteratePaymentIds(
  kv: Deno.Kv,
  opts: { shopId?: string; emailHash?: string; startSeq?: string; endSeq?: string },
): AsyncGenerator<ListedPayment> {
  const prefix = opts.emailHash
    ? ["payments_by_email", opts.emailHash]
    : opts.shopId
    ? ["payments_by_shop", opts.shopId]
    : ["payments_by_time"];
  const startSeq = opts.startSeq ?? "";
  const endSeq = opts.endSeq;
  // Keys named up to LISTING_SPAN_MS after the end can hold payments before it (and never less than the end itself,
  // whatever a cursor from a URL holds).
  const spanEnd = endSeq === undefined ? "\uffff" : encodeTime(decodeTime(endSeq) + LISTING_SPAN_MS + 1);
  const listEnd = endSeq !== undefined && endSeq > spanEnd ? endSeq : spanEnd;
  const keys = kv.list<StoredListing>({ start: [...prefix, startSeq], end: [...prefix, listEnd] }, {
    reverse: true,
    batchSize: 100,
  });
  // A key holds no payment newer than its name, and keys come newest name first: whatever is pending above the
  // next key's name is newer than everything still to come.
  let pending: ListedPayment[] = [];
  for await (const entry of keys) {
    const name = entry.key.at(-1) as string;
    while (pending.length && pending[0].seq > name) yield pending.shift()!;
    const inRange = listedPayments(entry).filter((p) => p.seq >= startSeq && (endSeq === undefined || p.seq < endSeq));
    if (inRange.length) pending = [...pending, ...inRange].sort((a, b) => (a.seq < b.seq ? 1 : -1));
  }
  yield* pending;
}

/** The key of the id a payment name names, read with the API key by init-payment (one trip for both). */
export const paymentNameRecordKey = paymentNameKey;

/**
 * The key of a payment name as read: the id it holds (a stored payment's, or an attempt's that stored none, see
 * reservePaymentName) and its version; both null for a name nobody used, or used only by a payment stored before
 * names were (lib/payments/names.ts).
 */
export interface PaymentNameEntry {
  id: string | null;
  versionstamp: string | null;
}

/** A name's key as read (see PaymentNameEntry), sharing its read with concurrent ones. */
export async function getPaymentNameEntry(kv: Deno.Kv, shopId: string, name: PaymentName): Promise<PaymentNameEntry> {
  const [entry] = await groupReader(kv).getMany<[string]>([paymentNameKey(shopId, name)]);
  return { id: entry.value, versionstamp: entry.versionstamp };
}

/**
 * Keeps an id for a name whose request reached the provider but stored no payment (the call failed or timed out):
 * the shop's retry asks the provider again under the same id, the same request there (it deduplicates on it), so a
 * payment it made but answered too late is the one the retry gets. False when the name's key is taken meanwhile.
 */
export async function reservePaymentName(kv: Deno.Kv, shopId: string, name: PaymentName, id: string) {
  const key = paymentNameKey(shopId, name);
  return (await kv.atomic().check({ key, versionstamp: null }).set(key, id).commit()).ok;
}

/**
 * Gives a payment stored before names its name's key (the payment_names backfill): true when written, false when the
 * name already names a payment (this one, written by an earlier run).
 */
export async function addPaymentName(kv: Deno.Kv, p: Payment): Promise<boolean> {
  const name = paymentNameOf(p);
  return name ? await reservePaymentName(kv, p.shopId, name, p.id) : false;
}

/** Reads payments by id with their versions, in the order of `ids` (an id of none: an empty entry). */
export function getPaymentEntries(kv: Deno.Kv, ids: string[]): Promise<Deno.KvEntryMaybe<Payment>[]> {
  return getManyEntries<Payment>(kv, ids.map(paymentKey));
}

/** Reads payments by id (those that exist), in the order of `ids`. */
export async function getPayments(kv: Deno.Kv, ids: string[]): Promise<Payment[]> {
  return (await getManyEntries<Payment>(kv, ids.map(paymentKey))).flatMap((e) => (e.value ? [e.value] : []));
}

interface EmailIndexState {
  done: boolean;
  /** The ULID of the last payment indexed, walking oldest first. */
  after: string | null;
}

const readyEmailIndexes = new WeakSet<Deno.Kv>();

/** True once every stored payment is in the email index (new payments always are). */
export async function isPaymentEmailIndexReady(kv: Deno.Kv): Promise<boolean> {
  if (readyEmailIndexes.has(kv)) return true;
  const ready = (await kv.get<EmailIndexState>(emailIndexStateKey)).value?.done === true;
  if (ready) readyEmailIndexes.add(kv);
  return ready;
}

/**
 * Adds payments stored before the email index existed to it, oldest first, a
 * batch per atomic operation together with the progress, so an interrupted run
 * resumes where it stopped and two runners never step back. Once done, a run
 * costs one read. Stops after `maxBatches` or when `signal` aborts.
 */
export async function backfillPaymentEmailIndex(
  kv: Deno.Kv,
  opts: { batchSize?: number; maxBatches?: number; signal?: AbortSignal } = {},
): Promise<{ indexed: number; done: boolean }> {
  const batchSize = opts.batchSize ?? 200;
  let indexed = 0;
  for (let batches = 0; batches < (opts.maxBatches ?? Infinity) && !opts.signal?.aborted; batches++) {
    const state = await kv.get<EmailIndexState>(emailIndexStateKey);
    if (state.value?.done) {
      readyEmailIndexes.add(kv);
      return { indexed, done: true };
    }
    const after = state.value?.after ?? null;
    const ids: string[] = [];
    let listed = 0;
    let last = after;
    const list = kv.list<StoredListing>({
      start: after ? [...byTimeKey(after), ""] : ["payments_by_time"],
      end: ["payments_by_time", "\uffff"],
    }, { limit: batchSize, batchSize });
    for await (const entry of list) {
      // A group's shared key is only ever written with its payments' email entries: only a payment's own key can
      // predate the index (and rewriting the email key of one that does not is a no-op).
      if (!Array.isArray(entry.value)) ids.push(entry.value);
      listed++;
      last = entry.key[1] as string;
    }
    const op = kv.atomic().check(state);
    for (const p of await getPayments(kv, ids)) op.set(byEmailKey(paymentEmailHash(p.email), p.seq), p.id);
    op.set(emailIndexStateKey, { done: listed < batchSize, after: last } satisfies EmailIndexState);
    // A failed check means another runner moved on meanwhile: read its progress and go on from there.
    if ((await op.commit()).ok) indexed += ids.length;
  }
  return { indexed, done: await isPaymentEmailIndexReady(kv) };
}
