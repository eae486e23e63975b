import type { ActivityRef } from "../db/activity.ts";

type PaymentActivityRef = Exclude<ActivityRef, { kind: "invoice" }>;
import { getActivityRecords } from "../db/analytics.ts";
import { getDeliveryEntry, listDeliveriesByPayment } from "../db/deliveries.ts";
import { getPayments, listPaymentEvents } from "../db/payments.ts";
import { readsTimeline } from "../payments/settlement.ts";
import { log } from "../log.ts";
import type { Payment, PaymentEvent } from "../payments/types.ts";
import type { Delivery, DeliveryAttempt } from "../relay/types.ts";
import { attemptRow, eventRow, invoiceDepositRows, invoiceRow, operationRow, paymentRow } from "./rows.ts";
import type { Invoice } from "../invoices/types.ts";
import type { EmailOptions, InsertRow } from "./types.ts";

export interface RowBatch {
  /** One row per activity entry. */
  events: InsertRow[];
  /** One row per payment touched by the batch, in its current state. */
  payments: InsertRow[];
  /** One row per provider call (operation log entry). */
  operations: InsertRow[];
  /** One row per invoice touched by the batch, in its latest state there. */
  invoices: InsertRow[];
  /** One row per deposit of those invoices, in that state. */
  invoiceDeposits: InsertRow[];
}

/**
 * Reads what a slice of the activity log points at and builds its rows. Reads
 * are batched and run concurrently, so a batch costs a few KV round trips
 * rather than one per entry.
 */
export async function buildRows(
  kv: Deno.Kv,
  entries: { seq: string; ref: ActivityRef }[],
  email: EmailOptions,
): Promise<RowBatch> {
  const deliveries = new Map<string, Promise<Delivery | null>>();
  const delivery = (id: string) => {
    let p = deliveries.get(id);
    if (!p) deliveries.set(id, p = getDeliveryEntry(kv, id).then((e) => e.value));
    return p;
  };
  const operations: InsertRow[] = [];
  for (const { seq, ref } of entries) if (ref.kind === "operation") operations.push(operationRow(seq, ref.operation));
  // Invoice entries carry their own rows (see invoiceRows); the rest point at payments.
  const paymentEntries = entries.filter((e): e is { seq: string; ref: PaymentActivityRef } =>
    e.ref.kind !== "operation" && e.ref.kind !== "invoice"
  );
  const records = await getActivityRecords(kv, paymentEntries.map((e) => e.ref));
  const events = await Promise.all(paymentEntries.map(async ({ seq, ref }, i): Promise<InsertRow | null> => {
    const record = records[i];
    if (!record) return null;
    const src = { activitySeq: seq, paymentId: ref.paymentId, shopId: ref.shopId };
    switch (ref.kind) {
      case "event":
        return eventRow(src, ref.eventSeq, record as PaymentEvent);
      case "attempt": {
        const d = await delivery(ref.deliveryId);
        return d ? attemptRow(src, d, record as DeliveryAttempt) : null;
      }
      case "operation":
        return null; // kept out of paymentEntries above
    }
  }));

  // A provider call changes nothing in the payment's row: only its own entries count.
  const { known, toRead } = paymentsToRead(paymentEntries);
  const payments = [...known, ...await getPayments(kv, toRead)];
  const paymentRows = await Promise.all(payments.map(async (p) =>
    paymentRow(p, {
      deliveries: mayHavePostbacks(p) ? await listDeliveriesByPayment(kv, p.id) : [],
      // Only a late payment's settling time is on its timeline (see settlement): the rest need no read.
      events: readsTimeline(p) ? await listPaymentEvents(kv, p) : [],
    }, email)
  ));
  const found = events.filter((r): r is InsertRow => r !== null);
  // Entries and records are written in one atomic operation and never deleted, so this is a bug worth hearing of.
  if (found.length < events.length) {
    log.warn("activity entries without their record", { missing: events.length - found.length });
  }
  // Invoice entries carry the invoice as it stood after them: the last one in the batch is its newest state.
  const invoices = new Map<string, Invoice>();
  for (const { ref } of entries) if (ref.kind === "invoice") invoices.set(ref.invoiceId, ref.invoice);
  const latest = [...invoices.values()];
  return {
    events: found,
    payments: paymentRows,
    operations,
    invoices: await Promise.all(latest.map((inv) => invoiceRow(inv, email))),
    invoiceDeposits: latest.flatMap(invoiceDepositRows),
  };
}

/**
 * The payments a batch touches: the ones whose only entry in it is their
 * creation and carries the payment as created (entries written by earlier
 * versions; its row is that state, a true one; whatever happened since has
 * entries of its own, in a later batch), and the ones to read in their
 * current state.
 */
function paymentsToRead(entries: { ref: PaymentActivityRef }[]): { known: Payment[]; toRead: string[] } {
  const created = new Map<string, Payment>();
  const touched = new Set<string>();
  for (const { ref } of entries) {
    if (ref.kind === "event" && ref.payment && !touched.has(ref.paymentId)) created.set(ref.paymentId, ref.payment);
    else created.delete(ref.paymentId);
    touched.add(ref.paymentId);
  }
  return { known: [...created.values()], toRead: [...touched].filter((id) => !created.has(id)) };
}

/**
 * Postbacks need the shop's id and a URL, and start with the first status
 * after `pending` (statuses never go back), so most payments in a busy batch,
 * just created, can skip the deliveries lookup.
 */
function mayHavePostbacks(p: Payment): boolean {
  return p.shopTxId !== null && p.postbackUrl !== null && p.status !== "pending";
}
