import { sortableId } from "../ids.ts";
import { groupCommitterPerStore } from "./group_commit.ts";
import { addActivityOps } from "./activity.ts";
import { Collector, GATHERED_LIST_BATCH, gatheredRecords, setInChunks } from "./collected.ts";

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

// Each key holds one entry, or the entries of one group commit (collected.ts), in full: a listing reads only its
// own prefix. Entries written before that held the entry under ["provider_ops", id] and its id in both indexes;
// they are read as well until they expire.
const allKey = (seq: string) => ["provider_ops", seq] as const;
const byShopKey = (shopId: string, seq: string) => ["provider_ops_by_shop", shopId, seq] as const;
const byAccountKey = (accountId: string, seq: string) => ["provider_ops_by_account", accountId, seq] as const;

/** What a key holds: an entry, a group's entries, or (written before groups) an index's entry id. */
type StoredOperations = OperationEntry | OperationEntry[] | string;

const writer = groupCommitterPerStore<OperationEntry>({ addOps: addOperationOps, identity: (e) => e.id, maxGroup: 64 });

const gathered = new Collector<OperationEntry>((target, entries) => {
  // Each entry goes to three listings: its size is measured once.
  const sizes = new Map(entries.map((e) => [e, JSON.stringify(e).length]));
  const opts = { expireIn: OPERATION_TTL_MS, jsonSize: (e: OperationEntry) => sizes.get(e)! };
  setInChunks(target, allKey, entries, opts);
  for (const [shopId, group] of Map.groupBy(entries, (e) => e.shopId)) {
    setInChunks(target, (seq) => byShopKey(shopId, seq), group, opts);
  }
  for (const [accountId, group] of Map.groupBy(entries, (e) => e.accountId)) {
    setInChunks(target, (seq) => byAccountKey(accountId, seq), group, opts);
  }
});

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
    const expireIn = OPERATION_TTL_MS;
    op.set(allKey(seq), e, { expireIn })
      .set(byShopKey(e.shopId, seq), e, { expireIn })
      .set(byAccountKey(e.accountId, seq), e, { expireIn });
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
 * filtered), or all; the outcome is filtered while reading, within a bounded scan (the newest 5,000 or so).
 */
export async function listOperations(kv: Deno.Kv, f: OperationFilter): Promise<OperationEntry[]> {
  const prefix = f.shopId
    ? ["provider_ops_by_shop", f.shopId]
    : f.accountId
    ? ["provider_ops_by_account", f.accountId]
    : ["provider_ops"];
  const out: OperationEntry[] = [];
  // At most this many entries are looked at (a group's key holds many): a filter that matches little stays cheap.
  const SCAN = 5_000;
  let scanned = 0;
  // Entries of the earlier layout name their entry by id: read 10 at a time (KV's getMany limit).
  let byId: string[] = [];
  const take = (e: OperationEntry | null) => {
    if (e && matches(e, f) && out.length < f.limit) out.push(e);
  };
  const flush = async () => {
    const entries = await kv.getMany<OperationEntry[]>(byId.map(allKey));
    byId = [];
    for (const e of entries) take(e.value);
  };
  const list = kv.list<StoredOperations>({ prefix }, { reverse: true, limit: SCAN, batchSize: GATHERED_LIST_BATCH });
  for await (const { value } of list) {
    if (typeof value === "string") {
      byId.push(value);
      if (byId.length === 10) await flush();
      scanned++;
    } else {
      const entries = gatheredRecords(value).toReversed();
      for (const e of entries) take(e);
      scanned += entries.length;
    }
    if (out.length >= f.limit || scanned >= SCAN) break;
  }
  if (byId.length && out.length < f.limit) await flush();
  return out;
}

function matches(e: OperationEntry, f: OperationFilter): boolean {
  return (!f.accountId || e.accountId === f.accountId) && (!f.outcome || e.outcome === f.outcome);
}
