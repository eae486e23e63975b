import { sortableId } from "../ids.ts";
import { Collector, GATHERED_LIST_BATCH, gatheredRecords, setInChunks } from "./collected.ts";
import type { Payment, PaymentEvent } from "../payments/types.ts";
import type { OperationEntry } from "./operations.ts";
import type { Invoice, InvoiceEvent } from "../invoices/types.ts";

/**
 * A global, time-ordered log of everything that happened to payments: each
 * payment event and each postback attempt gets an entry, written in the same
 * atomic operation as the thing it points at. Background readers (the
 * BigQuery export, a backfill) walk it with a cursor; nothing else needs a
 * per-write hook. A lone write adds one key per entry; a group commit's
 * entries share keys (collected.ts), so under load the request path pays a
 * small part of a key per event.
 */
export type ActivityRef =
  // The event rides along (it is small) so the export need not read it back. For "created" the payment's own
  // seq stands in for eventSeq: that event is not stored apart (see createPayment). Entries written by earlier
  // versions carry the payment as created as well. New ones do not: a second copy of every new payment was a tenth
  // of what init-payment's commit wrote (init-payment ran 6 % faster without it), and the store's one writer is what
  // the request path waits for, whereas the export reads the payment back off that path.
  | { kind: "event"; paymentId: string; shopId: string; eventSeq: string; event?: PaymentEvent; payment?: Payment }
  | { kind: "attempt"; paymentId: string; shopId: string; deliveryId: string; attempt: number }
  // A provider call of the operation log; the entry rides along (it is small and never changes).
  | { kind: "operation"; paymentId: string; shopId: string; operation: OperationEntry }
  // An invoice write (its last event) with the invoice as it stands after it: the export's invoice and deposit rows.
  | { kind: "invoice"; invoiceId: string; shopId: string; event: InvoiceEvent; invoice: Invoice };

const activityKey = (seq: string) => ["activity", seq] as const;

/** What one activity key holds: one entry, or entries of one group commit (collected.ts). */
type StoredActivity = ActivityRef | ActivityRef[];

const gathered = new Collector<ActivityRef>((target, refs) => setInChunks(target, activityKey, refs));

/** Adds an activity entry to an atomic operation (in a group commit, to the group's shared keys). */
export function addActivityOps(op: Deno.AtomicOperation, ref: ActivityRef) {
  const group = gathered.gathering(op);
  if (group) group.push(ref);
  else op.set(activityKey(sortableId()), ref);
}

/**
 * Activity entries strictly after `afterSeq` (or from `fromSeq`), oldest first. A key's entries share its seq
 * and are never split between calls: the last key read may take the count past `limit` (by less than a group).
 */
export async function listActivity(
  kv: Deno.Kv,
  opts: { afterSeq?: string | null; fromSeq?: string; toSeq?: string; limit: number },
): Promise<{ seq: string; ref: ActivityRef }[]> {
  const start = opts.afterSeq ? [...activityKey(opts.afterSeq), ""] : ["activity", opts.fromSeq ?? ""];
  const end = ["activity", opts.toSeq ?? "\uffff"];
  const out: { seq: string; ref: ActivityRef }[] = [];
  const list = kv.list<StoredActivity>({ start, end }, { limit: opts.limit, batchSize: GATHERED_LIST_BATCH });
  for await (const e of list) {
    const seq = e.key[1] as string;
    for (const ref of gatheredRecords(e.value)) out.push({ seq, ref });
    if (out.length >= opts.limit) break;
  }
  return out;
}

/** How many entries follow `afterSeq` (the export backlog), counting at most about `max`. */
export async function countActivityAfter(kv: Deno.Kv, afterSeq: string | null, max = 100_000): Promise<number> {
  let n = 0;
  const start = afterSeq ? [...activityKey(afterSeq), ""] : ["activity", ""];
  for await (const e of kv.list<StoredActivity>({ start, end: ["activity", "\uffff"] }, { limit: max })) {
    n += gatheredRecords(e.value).length;
    if (n >= max) break;
  }
  return n;
}
