import assert from "node:assert/strict";
import { storedPayment } from "../../fixtures/payments.ts";
import { storedInvoice } from "../../fixtures/invoices.ts";
import type { Invoice } from "../invoices/types.ts";
import type { PaymentEvent } from "../payments/types.ts";
import { importEmailHashKey, invoiceDepositRows, invoiceRow, type PaymentRecords, paymentRow } from "./rows.ts";
import { TABLES } from "./schema.ts";
import type { EmailOptions, TableId } from "./types.ts";
import { newDelivery } from "../relay/delivery.ts";

const NOW = Date.parse("2026-11-29T12:00:00Z");

/** A finished USDT invoice with one confirmed deposit, as the store keeps it. */
function finishedInvoice(fields: Partial<Invoice> = {}): Invoice {
  return storedInvoice(NOW, {
    status: "finished",
    email: "Buyer@Example.com",
    deposits: [{ txid: "tx1", amount: "12500000", confirmations: 20, seenAt: NOW, late: false }],
    closedAt: NOW,
    checkAt: null,
    ...fields,
  });
}

/** A payment's row read without postbacks or events, as most payments' are. */
const alone: PaymentRecords = { deliveries: [], events: [] };
const columns = (table: TableId) => TABLES.find((t) => t.id === table)!.fields.map((f) => f.name);
const raw: EmailOptions = { policy: "raw" };

Deno.test("[analytics] each row has exactly its table's columns, in the order of the schema file setup creates", async () => {
  const inv = finishedInvoice();
  assert.deepEqual(Object.keys((await paymentRow(storedPayment(NOW), alone, raw)).json), columns("payments"));
  assert.deepEqual(Object.keys((await invoiceRow(inv, raw)).json), columns("invoices"));
  assert.deepEqual(Object.keys(invoiceDepositRows(inv)[0].json), columns("invoice_deposits"));
});

Deno.test("[analytics] an invoice's email follows ANALYTICS_EMAIL as a payment's does; one stored without it exports null", async () => {
  const inv = finishedInvoice();
  assert.equal((await invoiceRow(inv, raw)).json.email, "Buyer@Example.com");
  assert.equal((await invoiceRow(inv, { policy: "omit" })).json.email, null);

  // The same buyer hashes alike in both tables, so a dashboard can join them without the address.
  const hash: EmailOptions = { policy: "hash", hashKey: await importEmailHashKey("analytics-hash-secret-0123456789") };
  const hashed = (await invoiceRow(inv, hash)).json.email;
  assert.match(String(hashed), /^hmac_sha256:[0-9a-f]{64}$/);
  assert.equal(hashed, (await paymentRow(storedPayment(NOW, { email: " buyer@example.COM" }), alone, hash)).json.email);

  // Invoices stored before they took an email have no field at all; those with none given hold null.
  const { email: _, ...older } = inv;
  assert.equal((await invoiceRow(older as Invoice, raw)).json.email, null);
  assert.equal((await invoiceRow(finishedInvoice({ email: null }), hash)).json.email, null);
});

Deno.test("[analytics] a deposit the chain dropped gets a row of its own, saying so", () => {
  const inv = finishedInvoice();
  const before = invoiceDepositRows(inv)[0];
  const after = invoiceDepositRows({ ...inv, deposits: [{ ...inv.deposits[0], dropped: true }] })[0];
  assert.equal(before.json.dropped, false);
  assert.equal(after.json.dropped, true);
  assert.notEqual(after.insertId, before.insertId, "a new state, not a retry of the old one");
  const back = invoiceDepositRows({ ...inv, deposits: [{ ...inv.deposits[0], dropped: false }] })[0];
  assert.equal(back.json.dropped, false);
  assert.ok(![before.insertId, after.insertId].includes(back.insertId), "back from dropped: not a copy of either");
});

Deno.test("[analytics] settled_at is when the money came: a success's finalized_at, a late one's success, null unpaid", async () => {
  const iso = (ms: number) => new Date(ms).toISOString();
  const row = async (fields: Parameters<typeof storedPayment>[1], events: PaymentEvent[] = []) =>
    (await paymentRow(storedPayment(NOW, fields), { deliveries: [], events }, raw)).json;
  const MINUTE = 60_000;
  const paid = NOW + MINUTE;

  const onTime = await row({ status: "succeeded", finalizedAt: paid, updatedAt: paid });
  assert.equal(onTime.settled_at, iso(paid));
  assert.equal(onTime.settled_at, onTime.finalized_at);

  // Expired at +1 min, paid at +3 min: finalized_at keeps the expiry (the API's meaning), settled_at the money.
  const expired = NOW + MINUTE;
  const latePaid = NOW + 3 * MINUTE;
  const timeline: PaymentEvent[] = [
    { type: "expiry_reached", at: expired, data: { confirmed: "pending", providerCancelled: false } },
    { type: "status_changed", at: expired, data: { from: "pending", to: "expired" } },
    { type: "webhook_received", at: latePaid, data: { confirmed: "succeeded" } },
    { type: "status_changed", at: latePaid, data: { from: "expired", to: "succeeded" } },
  ];
  const late = { late: true, finalizedAt: expired, updatedAt: latePaid };
  const lateRow = await row({ ...late, status: "succeeded" }, timeline);
  assert.equal(lateRow.finalized_at, iso(expired));
  assert.equal(lateRow.settled_at, iso(latePaid));
  // Refunded since, it still settled when the money came.
  const refund: PaymentEvent = {
    type: "status_changed",
    at: latePaid + MINUTE,
    data: { from: "succeeded", to: "refunded" },
  };
  assert.equal(
    (await row({ ...late, status: "refunded", refundedAmount: 1000 }, [...timeline, refund])).settled_at,
    iso(latePaid),
  );
  // A late payment without its move to succeeded (a record mended by hand): unknown, never its expiry.
  assert.equal((await row({ ...late, status: "succeeded" })).settled_at, null);

  for (const status of ["failed", "expired", "cancelled"] as const) {
    const never = await row({ status, finalizedAt: paid, updatedAt: paid });
    assert.equal(never.finalized_at, iso(paid), status);
    assert.equal(never.settled_at, null, status);
  }
  assert.equal((await row({})).settled_at, null, "pending");
});

Deno.test("[analytics] a late payment's row shows its payment.succeeded's postback, also when made on a server whose clock is behind the expiry's", async () => {
  const p = storedPayment(NOW, { status: "succeeded", late: true, finalizedAt: NOW, updatedAt: NOW });
  const made = (eventType: string, at: number) =>
    newDelivery({ paymentId: p.id, shopId: p.shopId, url: "https://shop.example/pb", eventType, body: "{}", now: at });
  // The expiry's postback went out; the late success's, made 3 s "before" it by a clock behind, keeps failing.
  const expired = { ...made("payment.expired", NOW), status: "delivered" as const, attempts: 1, lastStatusCode: 200 };
  const succeeded = { ...made("payment.succeeded", NOW - 3_000), attempts: 2, lastStatusCode: 500 };
  for (const deliveries of [[expired, succeeded], [succeeded, expired]]) {
    const row = (await paymentRow(p, { deliveries, events: [] }, raw)).json;
    assert.deepEqual([row.postback_status, row.postback_attempts, row.postback_last_status_code], ["pending", 2, 500]);
  }
});
