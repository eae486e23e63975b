import { sortableId } from "../ids.ts";
import type { Payment, PaymentEvent } from "../payments/types.ts";
import type { OperationEntry } from "./operations.ts";
import type { Invoice, InvoiceEvent } from "../invoices/types.ts";

/**
 * A global, time-ordered log of everything that happened to payments: each
 * payment event and each postback attempt gets an entry, written in the same
 * atomic operation as the thing it points at. Background readers (the
 * BigQuery export, a backfill) walk it with a cursor; nothing else needs a
 * per-write hook, so the request path pays one extra key per event.
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

/** Adds an activity entry to an atomic operation. */
export function addActivityOps(op: Deno.AtomicOperation, ref: ActivityRef) {
  op.set(activityKey(sortableId()), ref);
}

/** Activity entries strictly after `afterSeq` (or from `fromSeq`), oldest first. */
export async function listActivity(
  kv: Deno.Kv,
  opts: { afterSeq?: string | null; fromSeq?: string; toSeq?: string; limit: number },
): Promise<{ seq: string; ref: ActivityRef }[]> {
  const start = opts.afterSeq ? [...activityKey(opts.afterSeq), ""] : ["activity", opts.fromSeq ?? ""];
  const end = ["activity", opts.toSeq ?? "\uffff"];
  const out: { seq: string; ref: ActivityRef }[] = [];
  for await (const e of kv.list<ActivityRef>({ start, end }, { limit: opts.limit })) {
    out.push({ seq: e.key[1] as string, ref: e.value });
  }
  return out;
}

/** How many entries follow `afterSeq` (the export backlog), counting at most `max`. */
export async function countActivityAfter(kv: Deno.Kv, afterSeq: string | null, max = 100_000): Promise<number> {
  let n = 0;
  const start = afterSeq ? [...activityKey(afterSeq), ""] : ["activity", ""];
  for await (const _ of kv.list({ start, end: ["activity", "\uffff"] }, { limit: max })) n++;
  return n;
}
