import { sortableId } from "../ids.ts";
import { GroupCommitter } from "./group_commit.ts";
import { addActivityOps } from "./activity.ts";

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

const opKey = (id: string) => ["provider_ops", id] as const;
const byShopKey = (shopId: string, id: string) => ["provider_ops_by_shop", shopId, id] as const;
const byAccountKey = (accountId: string, id: string) => ["provider_ops_by_account", accountId, id] as const;

const writers = new WeakMap<Deno.Kv, GroupCommitter<OperationEntry>>();

/** Adds an entry, its shop and account indexes and its activity entry to an atomic operation. */
export function addOperationOps(op: Deno.AtomicOperation, e: OperationEntry) {
  const expireIn = OPERATION_TTL_MS;
  op.set(opKey(e.id), e, { expireIn })
    .set(byShopKey(e.shopId, e.id), e.id, { expireIn })
    .set(byAccountKey(e.accountId, e.id), e.id, { expireIn });
  // The activity log (never expiring) carries the entry to the BigQuery export like payment events.
  addActivityOps(op, { kind: "operation", paymentId: e.paymentId, shopId: e.shopId, operation: e });
}

/**
 * Stores an operation entry with its shop and account indexes. Concurrent
 * entries share commits (group_commit.ts), so logging costs the hot paths
 * little.
 */
/** An entry with its id (time-ordered), ready for insertOperation or for a caller's own atomic write. */
export function newOperation(entry: Omit<OperationEntry, "id">): OperationEntry {
  return { id: sortableId(entry.at), ...entry };
}

export function insertOperation(kv: Deno.Kv, entry: Omit<OperationEntry, "id">): Promise<boolean> {
  let writer = writers.get(kv);
  if (!writer) {
    writer = new GroupCommitter(kv, { addOps: addOperationOps, identity: (e) => e.id, maxGroup: 64 });
    writers.set(kv, writer);
  }
  return writer.commit(newOperation(entry));
}

export interface OperationFilter {
  shopId?: string;
  accountId?: string;
  outcome?: Outcome;
  limit: number;
  /** Entries older than this id (the last one of the previous page). */
  before?: string;
}

/**
 * Newest first, by shop or account through their index (both given: the shop's
 * index, filtered), or all; the outcome is filtered while reading, within a
 * bounded scan.
 */
export async function listOperations(kv: Deno.Kv, f: OperationFilter): Promise<OperationEntry[]> {
  const prefix = f.shopId
    ? ["provider_ops_by_shop", f.shopId]
    : f.accountId
    ? ["provider_ops_by_account", f.accountId]
    : ["provider_ops"];
  const indexed = prefix[0] !== "provider_ops";
  const selector: Deno.KvListSelector = f.before ? { prefix, end: [...prefix, f.before] } : { prefix };
  const out: OperationEntry[] = [];
  const SCAN = 5_000;
  let batch: string[] = [];
  const flush = async () => {
    const entries = await kv.getMany<OperationEntry[]>(batch.map(opKey));
    batch = [];
    for (const e of entries) if (e.value && matches(e.value, f) && out.length < f.limit) out.push(e.value);
  };
  for await (const e of kv.list<OperationEntry | string>(selector, { reverse: true, limit: SCAN })) {
    if (indexed) {
      batch.push(e.value as string);
      if (batch.length === 10) await flush();
    } else if (matches(e.value as OperationEntry, f)) {
      out.push(e.value as OperationEntry);
    }
    if (out.length >= f.limit) break;
  }
  if (batch.length && out.length < f.limit) await flush();
  return out;
}

function matches(e: OperationEntry, f: OperationFilter): boolean {
  return (!f.accountId || e.accountId === f.accountId) && (!f.outcome || e.outcome === f.outcome);
}
