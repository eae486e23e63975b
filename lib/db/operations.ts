import { sortableId } from "../ids.ts";
import { groupCommitterPerStore } from "./group_commit.ts";
import { addActivityOps } from "./activity.ts";
import { Collector, GATHERED_LIST_BATCH, gatheredRecords, setInChunks } from "./collected.ts";
import { getManyEntries } from "./kv.ts";

/** The provider calls the operation log records. */
export const OPERATIONS = ["create", "status", "refund", "refund_status", "cancel"] as const;
export type Operation = typeof OPERATIONS[number];
export const OUTCOMES = ["ok", "error", "timeout"] as const;
export type Outcome = typeof OUTCOMES[number];

/** One provider call: who for, which account, what came of it (seed 004's payment_log, for every account). */
export interface OperationEntry {
  id: string;
  at: number;
  shopId: string;
  accountId: string;
  orgId: string;
  provider: string;
  operation: Operation;
  paymentId: string;
  refundId: string | null;
  /** The provider's reference of the payment (or of the refund, for refund calls once known). */
  providerRef: string | null;
  amount: number;
  currency: string;
  outcome: Outcome;
  /** The status the provider answered, in our words (`succeeded`, `cancelled`...); null on error. */
  status: string | null;
  /** What went wrong, without provider internals or credentials (the adapter's own words). */
  error: string | null;
  durationMs: number;
}

/** Entries are kept this long; the log is for finding out what happened, not an archive. */
export const OPERATION_TTL_MS = 90 * 24 * 60 * 60 * 1000;

// An entry is stored once, under the log's own prefix: one key per entry, or one for the entries of a group commit
// (collected.ts). The shop's and the account's listings hold pointers to those keys (a group's key also holds other
// shops' entries, which their reader skips): three full copies of every entry were a tenth of what init-payment's
// commit wrote, and init-payment ran 7 % faster without the two extra ones. Keys of earlier layouts are read as
// well until they expire: listings that held the entries in full (from the first group commits), and, before that,
// an entry under ["provider_ops", id] with its id in both listings.
const allKey = (seq: string) => ["provider_ops", seq] as const;
const byShopKey = (shopId: string, seq: string) => ["provider_ops_by_shop", shopId, seq] as const;
const byAccountKey = (accountId: string, seq: string) => ["provider_ops_by_account", accountId, seq] as const;

/** A listing's pointer: the seqs of the log's keys that hold its entries. */
interface InLog {
  inLog: string[];
}

/** What a key holds: an entry, a group's entries, a pointer, or (the first layout) an index's entry id. */
type StoredOperations = OperationEntry | OperationEntry[] | InLog | string;

const writer = groupCommitterPerStore<OperationEntry>({ addOps: addOperationOps, identity: (e) => e.id, maxGroup: 64 });

const gathered = new Collector<OperationEntry>((target, entries) => {
  const chunks = setInChunks(target, allKey, entries, { expireIn: OPERATION_TTL_MS });
  // Each listing's pointer comes after the keys it names, so a listing sees entries in the order they were logged.
  const pointTo = (owner: (e: OperationEntry) => string, key: (owner: string, seq: string) => Deno.KvKey) => {
    const named = chunks.flatMap(({ seq, records }) => [...new Set(records.map(owner))].map((o) => ({ o, seq })));
    for (const [o, pairs] of Map.groupBy(named, (n) => n.o)) {
      setPointer(target, key(o, sortableId()), pairs.map((n) => n.seq));
    }
  };
  pointTo((e) => e.shopId, byShopKey);
  pointTo((e) => e.accountId, byAccountKey);
});

function setPointer(op: Deno.AtomicOperation, key: Deno.KvKey, seqs: string[]) {
  op.set(key, { inLog: seqs } satisfies InLog, { expireIn: OPERATION_TTL_MS });
}

/**
 * Adds an entry to the log in an atomic operation (in a group commit, to the group's shared keys), with its
 * activity entry, which carries it to the BigQuery export like payment events (and never expires).
 */
export function addOperationOps(op: Deno.AtomicOperation, e: OperationEntry) {
  const group = gathered.gathering(op);
  if (group) {
    group.push(e);
  } else {
    // Keyed by when it is logged, like a group's keys, so the listings show entries in the order they were logged.
    const seq = sortableId();
    op.set(allKey(seq), e, { expireIn: OPERATION_TTL_MS });
    setPointer(op, byShopKey(e.shopId, seq), [seq]);
    setPointer(op, byAccountKey(e.accountId, seq), [seq]);
  }
  addActivityOps(op, { kind: "operation", paymentId: e.paymentId, shopId: e.shopId, operation: e });
}

/** An entry with its id (time-ordered), ready for insertOperation or for a caller's own atomic write. */
export function newOperation(entry: Omit<OperationEntry, "id">): OperationEntry {
  return { id: sortableId(entry.at), ...entry };
}

/**
 * Stores an entry in the log. Concurrent entries share commits (group_commit.ts), so logging costs the hot paths
 * little.
 */
export function insertOperation(kv: Deno.Kv, entry: Omit<OperationEntry, "id">): Promise<boolean> {
  return writer(kv).commit(newOperation(entry));
}

/**
 * Resolves once every log entry asked for so far is written (or failed): callers on hot paths do not wait for
 * theirs, so a process about to close its store waits here.
 */
export function operationWritesSettled(kv: Deno.Kv): Promise<void> {
  return writer(kv).settled();
}

export interface OperationFilter {
  shopId?: string;
  accountId?: string;
  outcome?: Outcome;
  limit: number;
}

/**
 * Newest first (in the order they were logged), by shop or account through their prefix (both given: the shop's,
 * filtered), or all; the outcome is filtered while reading, within a bounded scan: the newest 5,000 or so of the
 * listing's entries, and at most 20,000 read in all (a shop with one entry in each of many busy groups sees fewer).
 */
export async function listOperations(kv: Deno.Kv, f: OperationFilter): Promise<OperationEntry[]> {
  // The listing's prefix, and which of the entries a pointer's keys hold are the listing's own.
  const [prefix, own]: [Deno.KvKey, (e: OperationEntry) => boolean] = f.shopId
    ? [["provider_ops_by_shop", f.shopId], (e) => e.shopId === f.shopId]
    : f.accountId
    ? [["provider_ops_by_account", f.accountId], (e) => e.accountId === f.accountId]
    : [["provider_ops"], () => true];
  const out: OperationEntry[] = [];
  // At most this many of the listing's own entries are looked at (a group's key holds many): a filter that matches
  // little stays cheap. The keys pointers name also hold other shops' or accounts' entries: at most READ entries are
  // read in all, so a listing whose shop has one entry in each of many busy groups stays bounded too.
  const SCAN = 5_000;
  const READ = 4 * SCAN;
  let scanned = 0;
  let read = 0;
  // Values are taken in batches: the log's keys that a batch's pointers (and ids of the first layout) name are read
  // together, 10 a trip (KV's getMany limit) and the trips at once. Batches start at one value and double up to a
  // list batch, so a short listing reads little more than it shows.
  let batch: StoredOperations[] = [];
  let batchSize = 1;
  const takeBatch = async (): Promise<boolean> => {
    const named = batch.flatMap((v) => (typeof v === "string" ? [v] : isInLog(v) ? v.inLog : []));
    const logged = await readLogKeys(kv, named);
    const recordsAt = (seq: string) => logged.get(seq) ?? [];
    for (const value of batch) {
      const records = typeof value === "string"
        ? recordsAt(value)
        : isInLog(value)
        ? value.inLog.flatMap(recordsAt)
        : gatheredRecords(value);
      read += records.length;
      const entries = (isInLog(value) ? records.filter(own) : records).toReversed();
      for (const e of entries) if (matches(e, f) && out.length < f.limit) out.push(e);
      scanned += entries.length;
      if (out.length >= f.limit || scanned >= SCAN || read >= READ) return true;
    }
    batch = [];
    batchSize = Math.min(2 * batchSize, GATHERED_LIST_BATCH);
    return false;
  };
  const list = kv.list<StoredOperations>({ prefix }, { reverse: true, limit: SCAN, batchSize: GATHERED_LIST_BATCH });
  for await (const { value } of list) {
    batch.push(value);
    if (batch.length >= batchSize && await takeBatch()) return out;
  }
  await takeBatch();
  return out;
}

/**
 * The log's own keys strictly after `afterSeq` (or from `fromSeq`) and before `toSeq`, oldest first, at most `limit`
 * keys, each with the entries it holds (one, or a group commit's): for a walk of the log in time order (a backfill).
 */
export async function listLoggedOperations(
  kv: Deno.Kv,
  opts: { afterSeq: string | null; fromSeq: string; toSeq: string; limit: number },
): Promise<{ seq: string; entries: OperationEntry[] }[]> {
  const start = opts.afterSeq ? [...allKey(opts.afterSeq), ""] : allKey(opts.fromSeq);
  const out: { seq: string; entries: OperationEntry[] }[] = [];
  const list = kv.list<OperationEntry | OperationEntry[]>({ start, end: allKey(opts.toSeq) }, {
    limit: opts.limit,
    batchSize: GATHERED_LIST_BATCH,
  });
  for await (const e of list) out.push({ seq: e.key[1] as string, entries: gatheredRecords(e.value) });
  return out;
}

function isInLog(value: StoredOperations): value is InLog {
  return !Array.isArray(value) && typeof value === "object" && "inLog" in value;
}

/** The entries each of the log's keys `seqs` holds, by seq (a key that has expired is left out). */
async function readLogKeys(kv: Deno.Kv, seqs: string[]): Promise<Map<string, OperationEntry[]>> {
  const unique = [...new Set(seqs)];
  const entries = await getManyEntries<OperationEntry | OperationEntry[]>(kv, unique.map(allKey));
  return new Map(unique.flatMap((seq, i) => {
    const value = entries[i].value;
    return value ? [[seq, gatheredRecords(value)]] : [];
  }));
}

/** A pointer's keys hold other shops' and accounts' entries too, so the shop is checked here as well. */
function matches(e: OperationEntry, f: OperationFilter): boolean {
  return (!f.shopId || e.shopId === f.shopId) && (!f.accountId || e.accountId === f.accountId) &&
    (!f.outcome || e.outcome === f.outcome);
}
