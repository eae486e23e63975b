import type { OperationEntry } from "../db/operations.ts";
import type { Payment, PaymentEvent } from "../payments/types.ts";
import type { Delivery, DeliveryAttempt } from "../relay/types.ts";
import { supersederOf } from "../relay/delivery.ts";
import type { EmailOptions, InsertRow } from "./types.ts";
import type { Invoice } from "../invoices/types.ts";
import { formatBaseUnits } from "../invoices/amounts.ts";
import { invoiceTotals } from "../invoices/view.ts";
import { moneySettledAt } from "../payments/settlement.ts";

/**
 * Turns stored records into BigQuery rows (columns in docs/bigquery/*.json).
 * Rows are pure functions of what is in KV, so a row sent again after a crash
 * or by a backfill is byte-for-byte the first one, under the same insertId.
 * Only fields listed here leave KV: delivery bodies, the shop's answers and
 * every secret stay behind.
 */

const ts = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : iso(ms));
const iso = (ms: number): string => new Date(ms).toISOString();

/** Imports the HMAC key that `ANALYTICS_EMAIL=hash` uses. */
export function importEmailHashKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

/** The `email` column: the address, a keyed hash of it (joinable across payments, not reversible), or null. */
export async function emailColumn(email: string, opts: EmailOptions): Promise<string | null> {
  switch (opts.policy) {
    case "raw":
      return email;
    case "omit":
      return null;
    case "hash": {
      if (!opts.hashKey) throw new Error("ANALYTICS_EMAIL=hash without a hash key");
      const normalized = new TextEncoder().encode(email.trim().toLowerCase());
      const mac = new Uint8Array(await crypto.subtle.sign("HMAC", opts.hashKey, normalized));
      return `hmac_sha256:${Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("")}`;
    }
  }
}

/** What a payment's row needs besides the record: its postbacks, and a late payment's events (its settling time). */
export interface PaymentRecords {
  deliveries: Delivery[];
  /** The payment's timeline, which `settled_at` needs for a late payment (see readsTimeline); [] for any other. */
  events: PaymentEvent[];
}

/**
 * The payment's current state with its latest postback. `updated_at` is the
 * newest change to anything in the row, and with the id it forms the
 * insertId: the same state is never inserted twice, a new state always is.
 * `settled_at` is when the money came, as the console's Settled line says it
 * (lib/payments/settlement.ts): `finalized_at` keeps a late payment's expiry.
 */
export async function paymentRow(
  p: Payment,
  { deliveries, events }: PaymentRecords,
  email: EmailOptions,
): Promise<InsertRow> {
  // Newest by when it was made, among those no other makes old news (supersederOf): a late payment.succeeded made on
  // a server whose clock is behind the expiry's is the payment's latest postback, not the payment.expired it follows.
  const latest = deliveries.filter((d) => !supersederOf(d, deliveries))
    .reduce<Delivery | null>((a, d) => (!a || d.createdAt > a.createdAt ? d : a), null);
  const updatedAt = Math.max(p.updatedAt, p.firstRedirectAt ?? 0, ...deliveries.map((d) => d.updatedAt));
  return {
    insertId: `${p.id}:${updatedAt}`,
    json: {
      id: p.id,
      shop_id: p.shopId,
      shop_tx_id: p.shopTxId,
      idempotency_key: p.idempotencyKey,
      email: await emailColumn(p.email, email),
      name: p.name,
      amount: p.amount,
      currency: p.currency,
      type: p.type,
      success_url: p.successUrl,
      error_url: p.errorUrl,
      postback_url: p.postbackUrl,
      status: p.status,
      provider: p.provider,
      provider_ref: p.providerRef,
      provider_url: p.providerUrl,
      last_error: p.lastError,
      created_at: iso(p.createdAt),
      updated_at: iso(updatedAt),
      finalized_at: ts(p.finalizedAt),
      first_redirect_at: ts(p.firstRedirectAt),
      postback_status: latest?.status ?? null,
      postback_attempts: latest?.attempts ?? null,
      postback_last_status_code: latest?.lastStatusCode ?? null,
      postback_last_error: latest?.lastError ?? null,
      refunded_amount: p.refundedAmount ?? 0,
      settled_at: ts(moneySettledAt(p, events)),
    },
  };
}

/** Where a `payment_events` row came from in the activity log. */
export interface RowSource {
  activitySeq: string;
  paymentId: string;
  shopId: string;
}

/** A payment event (created, status_changed, ...) as a `payment_events` row; refund events fill their own columns. */
export function eventRow(src: RowSource, eventSeq: string, e: PaymentEvent): InsertRow {
  const eventId = `${src.paymentId}:${eventSeq}`;
  const refund = refundColumns(e);
  return {
    insertId: eventId,
    json: {
      ...eventColumns(src, eventId, e.type, e.at),
      data: JSON.stringify(e.data),
      ...refund,
    },
  };
}

function refundColumns(e: PaymentEvent): { refund_id: string; amount: number } | null {
  switch (e.type) {
    case "refund_requested":
    case "refund_succeeded":
    case "refund_failed":
      return { refund_id: String(e.data.refundId), amount: Number(e.data.amount) };
    case "created":
    case "webhook_received":
    case "status_checked":
    case "status_changed":
    case "postback_resent":
    case "buyer_redirected":
    case "cancel_requested":
    case "expiry_reached":
      return null;
  }
}

/** A postback attempt as a `payment_events` row of type `postback_attempt`. */
export function attemptRow(src: RowSource, d: Delivery, a: DeliveryAttempt): InsertRow {
  const eventId = `${d.id}:${a.n}`;
  return {
    insertId: eventId,
    json: {
      ...eventColumns(src, eventId, "postback_attempt", a.at),
      data: JSON.stringify({ eventType: d.eventType }),
      delivery_id: d.id,
      attempt: a.n,
      status_code: a.statusCode,
      latency_ms: a.latencyMs,
      error: a.error,
    },
  };
}

function eventColumns(src: RowSource, eventId: string, type: string, at: number) {
  return {
    event_id: eventId,
    activity_seq: src.activitySeq,
    payment_id: src.paymentId,
    shop_id: src.shopId,
    type,
    at: iso(at),
    data: null as string | null,
    delivery_id: null as string | null,
    attempt: null as number | null,
    status_code: null as number | null,
    latency_ms: null as number | null,
    error: null as string | null,
    refund_id: null as string | null,
    amount: null as number | null,
  };
}

/**
 * One provider call as the operation log holds it. The entry never changes, so its id is the insertId. It never
 * held a credential: the error text is the adapter's own words.
 */
export function operationRow(activitySeq: string, e: OperationEntry): InsertRow {
  return {
    insertId: e.id,
    json: {
      id: e.id,
      activity_seq: activitySeq,
      at: iso(e.at),
      shop_id: e.shopId,
      account_id: e.accountId,
      org_id: e.orgId,
      provider: e.provider,
      operation: e.operation,
      payment_id: e.paymentId,
      refund_id: e.refundId,
      provider_ref: e.providerRef,
      amount: e.amount,
      currency: e.currency,
      outcome: e.outcome,
      status: e.status,
      error: e.error,
      duration_ms: e.durationMs,
    },
  };
}

/**
 * A crypto invoice's state as an `invoices` row. Amounts are exact decimals
 * (BIGNUMERIC), never floats; the id and `updated_at` form the insertId. The
 * email goes through the payments' policy, so one buyer's hash joins across
 * both tables; invoices stored before they had one export null.
 */
export async function invoiceRow(inv: Invoice, email: EmailOptions): Promise<InsertRow> {
  const t = invoiceTotals(inv);
  const dec = (units: bigint | string) => formatBaseUnits(units, inv.decimals);
  return {
    insertId: `${inv.id}:${inv.updatedAt}`,
    json: {
      id: inv.id,
      shop_id: inv.shopId,
      shop_invoice_id: inv.shopInvoiceId,
      coin: inv.coin,
      network: inv.network,
      decimals: inv.decimals,
      amount: dec(inv.amount),
      paid_amount: dec(t.paid),
      pending_amount: dec(t.pending),
      late_amount: dec(t.late),
      address: inv.address,
      status: inv.status,
      deposits: inv.deposits.length,
      created_at: iso(inv.createdAt),
      updated_at: iso(inv.updatedAt),
      expires_at: iso(inv.expiresAt),
      closed_at: ts(inv.closedAt),
      email: inv.email ? await emailColumn(inv.email, email) : null,
    },
  };
}

/** Each deposit of an invoice's state as an `invoice_deposits` row; a deposit's row changes with its confirmations. */
export function invoiceDepositRows(inv: Invoice): InsertRow[] {
  return inv.deposits.map((d) => ({
    // A deposit back from dropped (dropped: false, where one never dropped has none) gets ids of its own, or BigQuery
    // could take its row for a copy of one sent before the drop and keep the dropped state as the latest.
    insertId: `${inv.id}:${d.txid}:${d.confirmations}:${d.late ? 1 : 0}${
      d.dropped ? ":dropped" : d.dropped === false ? ":back" : ""
    }`,
    json: {
      deposit_id: `${inv.id}:${d.txid}`,
      invoice_id: inv.id,
      shop_id: inv.shopId,
      coin: inv.coin,
      network: inv.network,
      address: inv.address,
      txid: d.txid,
      amount: formatBaseUnits(d.amount, inv.decimals),
      confirmations: d.confirmations,
      late: d.late,
      seen_at: iso(d.seenAt),
      updated_at: iso(inv.updatedAt),
      dropped: d.dropped === true,
    },
  }));
}
