import { sortableId } from "../ids.ts";
import type { Payment, PaymentEvent } from "../payments/types.ts";
import type { OperationEntry } from "./operations.ts";
import type { Invoice, InvoiceEvent } from "../invoices/types.ts";

/**
 * A global, time-ordered log of everything that happened to payments: each
 * payment event and each postback attempt gets an entry, written in the same
 * atomic operation as the thing it points at. Background readers (the
 * BigQuery export, a backfill) walk it with a cursor; nothing else needs a
 * per-write hook. A lone write adds one key per entry; a group commit's
 * entries share keys (collectActivity), so under load the request path pays
 * a small part of a key per event.
 */
export type ActivityRef =
  // The event rides along (it is small) so the export need not read it back. For "created" the payment's own
  // seq stands in for eventSeq: that event is not stored apart (see createPayment). The payment as created rides
  // along too: under load most payments reach the export with nothing else happened to them yet, and reading each
  // record back cost the export more than all the rest of its work for them.
  | { kind: "event"; paymentId: string; shopId: string; eventSeq: string; event?: PaymentEvent; payment?: Payment }
  | { kind: "attempt"; paymentId: string; shopId: string; deliveryId: string; attempt: number }
  // A provider call of the operation log; the entry rides along (it is small and never changes).
  | { kind: "operation"; paymentId: string; shopId: string; operation: OperationEntry }
  // An invoice event with the invoice as it stands after it (both small): the export's invoice and deposit rows.
  | { kind: "invoice"; invoiceId: string; shopId: string; event: InvoiceEvent; invoice: Invoice };

const activityKey = (seq: string) => ["activity", seq] as const;

/**
 * What one activity key holds: one entry, or the entries of one group commit (group_commit.ts). Every key costs
 * the store its own row and expiry-index entry, whatever its size; under load, one key per group instead of one
 * or two per payment took about a sixth off the store's work for a new payment.
 */
type StoredActivity = ActivityRef | ActivityRef[];

/** Operations whose entries are collected (see collectActivity), and the entries so far. */
const collecting = new WeakMap<Deno.AtomicOperation, ActivityRef[]>();

/** Adds an activity entry to an atomic operation (or to its collected entries, see collectActivity). */
export function addActivityOps(op: Deno.AtomicOperation, ref: ActivityRef) {
  const collected = collecting.get(op);
  if (collected) collected.push(ref);
  else op.set(activityKey(sortableId()), ref);
}

/**
 * From now on, entries added through `through` are collected instead of written; `write` then adds them to
 * `target` as few keys, in the order they came. For a group commit: `through` is the operation its writes see.
 */
export function collectActivity(through: Deno.AtomicOperation): { write(target: Deno.AtomicOperation): void } {
  const refs: ActivityRef[] = [];
  collecting.set(through, refs);
  return {
    write(target) {
      collecting.delete(through);
      for (const chunk of chunksUnderValueLimit(refs)) {
        target.set(activityKey(sortableId()), chunk.length === 1 ? chunk[0] : chunk);
      }
    },
  };
}

/**
 * KV values are at most 64 KiB as serialized: V8 takes at most 2 bytes per character of a string and less than
 * JSON for the rest, so 24,000 characters of JSON stay well under it. An entry alone over that is still written
 * alone (a record that large fails its own commit as well).
 */
const CHUNK_JSON_CHARS = 24_000;

function chunksUnderValueLimit(refs: ActivityRef[]): ActivityRef[][] {
  const chunks: ActivityRef[][] = [];
  let chunk: ActivityRef[] = [];
  let chars = 0;
  for (const ref of refs) {
    const size = JSON.stringify(ref).length;
    if (chunk.length && chars + size > CHUNK_JSON_CHARS) {
      chunks.push(chunk);
      chunk = [];
      chars = 0;
    }
    chunk.push(ref);
    chars += size;
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
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
  for await (const e of kv.list<StoredActivity>({ start, end }, { limit: opts.limit })) {
    const seq = e.key[1] as string;
    for (const ref of entriesOf(e.value)) out.push({ seq, ref });
    if (out.length >= opts.limit) break;
  }
  return out;
}

function entriesOf(stored: StoredActivity): ActivityRef[] {
  return Array.isArray(stored) ? stored : [stored];
}

/** How many entries follow `afterSeq` (the export backlog), counting at most about `max`. */
export async function countActivityAfter(kv: Deno.Kv, afterSeq: string | null, max = 100_000): Promise<number> {
  let n = 0;
  const start = afterSeq ? [...activityKey(afterSeq), ""] : ["activity", ""];
  for await (const e of kv.list<StoredActivity>({ start, end: ["activity", "\uffff"] }, { limit: max })) {
    n += entriesOf(e.value).length;
    if (n >= max) break;
  }
  return n;
}
