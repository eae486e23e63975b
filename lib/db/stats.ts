/**
 * Counters kept in the same atomic operation as the payment changes they
 * count, so the console's numbers never drift from the payments. Per UTC day,
 * shop, currency and status ("created" or a settled status): a count, for
 * settled statuses the amount in minor units, and for successes the total
 * time to pay.
 */
import type { CountedStatus } from "../payments/status.ts";

/** What the counters are kept for: created payments, each status the status table counts on entry, and succeeded refunds. */
export type StatStatus = "created" | CountedStatus | "refund" | InvoiceStat;
/** What invoices count: created, and how they ended up (paid counts once, at payment_accepted or finished). */
export type InvoiceStat = "invoice_created" | "invoice_paid" | "invoice_expired" | "invoice_cancelled";
type Measure = "count" | "amount" | "pay_ms";

const statKey = (measure: Measure, day: string, shopId: string, currency: string, status: StatStatus) =>
  ["stats", measure, day, shopId, currency, status] as const;

const DAY_MS = 86_400_000;
/** The last day asked for: nearly every call on a hot path asks for today (formatting a Date is the slow part). */
let lastDay = { number: NaN, text: "" };

export function utcDay(ms: number): string {
  const number = Math.floor(ms / DAY_MS);
  if (number !== lastDay.number) lastDay = { number, text: new Date(number * DAY_MS).toISOString().slice(0, 10) };
  return lastDay.text;
}

export interface StatEvent {
  at: number;
  shopId: string;
  currency: string;
  status: StatStatus;
  amount: number;
  /** For successes: milliseconds from creation to payment. */
  payMs?: number;
  /**
   * Takes back what an earlier event of this status on the day of `at` added (a payment that expired, then
   * succeeded late, is no longer an expired one).
   */
  withdrawn?: boolean;
}

export function addStatsOps(op: Deno.AtomicOperation, e: StatEvent) {
  const day = utcDay(e.at);
  // KV's sums are unsigned and wrap at 2^64, so adding 2^64 - n takes n away; readStats reads counters as signed.
  const signed = (n: bigint) => BigInt.asUintN(64, e.withdrawn ? -n : n);
  op.sum(statKey("count", day, e.shopId, e.currency, e.status), signed(1n));
  // Amounts count for settled payments only (volume); a created payment's amount is not money yet.
  if (e.status !== "created") {
    op.sum(statKey("amount", day, e.shopId, e.currency, e.status), signed(BigInt(e.amount)));
  }
  if (e.payMs !== undefined) {
    op.sum(statKey("pay_ms", day, e.shopId, e.currency, e.status), signed(BigInt(Math.max(0, e.payMs))));
  }
}

/**
 * Counts one invoice event (per day, shop and coin). Only a count: crypto amounts are bigints that can outgrow the
 * counters, and BigQuery has them exactly.
 */
export function addInvoiceStatsOps(
  op: Deno.AtomicOperation,
  e: { at: number; shopId: string; coin: string; stat: InvoiceStat },
) {
  op.sum(statKey("count", utcDay(e.at), e.shopId, e.coin, e.stat), 1n);
}

export interface StatRow {
  day: string;
  shopId: string;
  currency: string;
  status: StatStatus;
  count: number;
  amount: number;
  payMs: number;
}

/** Every counter row for the days in [fromDay, toDay], optionally for one shop. */
export async function readStats(kv: Deno.Kv, fromDay: string, toDay: string, shopId?: string): Promise<StatRow[]> {
  const rows = new Map<string, StatRow>();
  for (const measure of ["count", "amount", "pay_ms"] as const) {
    const iter = kv.list<Deno.KvU64>({ start: ["stats", measure, fromDay], end: ["stats", measure, toDay + "\uffff"] });
    for await (const { key, value } of iter) {
      const [, , day, shop, currency, status] = key as [string, string, string, string, string, StatStatus];
      if (shopId && shop !== shopId) continue;
      const id = `${day}|${shop}|${currency}|${status}`;
      const row = rows.get(id) ?? { day, shopId: shop, currency, status, count: 0, amount: 0, payMs: 0 };
      const n = Number(BigInt.asIntN(64, value.value));
      if (measure === "count") row.count = n;
      else if (measure === "amount") row.amount = n;
      else row.payMs = n;
      rows.set(id, row);
    }
  }
  return [...rows.values()];
}
