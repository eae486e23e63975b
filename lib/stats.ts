import { type AttentionCounts, countAttentionDeliveries } from "./db/deliveries.ts";
import { listLatePayments } from "./db/payments.ts";
import type { Payment } from "./payments/types.ts";
import { readStats, type StatRow, utcDay } from "./db/stats.ts";
import { getShopNames } from "./db/shops.ts";
import { countLateInvoices } from "./db/invoices.ts";
import { COUNTED_STATUSES } from "./payments/status.ts";

export interface Overview {
  today: PeriodSummary;
  last30: PeriodSummary;
  /** Created payments per day over the last 30 days, oldest first. */
  daily: { day: string; created: number; succeeded: number }[];
  postbacks: AttentionCounts;
  /** Payments that succeeded after they expired or were cancelled, not refunded in full: to refund or ship. */
  latePayments: Payment[];
  /** The late payments' shops by id, so the list names each by name. */
  shopNames: Map<string, string>;
  /**
   * Crypto invoices holding late money (hasLateMoney), counted up to LATE_INVOICES_COUNT_MAX: the same to-do for
   * coins, listed at /admin/invoices?late=1.
   */
  lateInvoices: { count: number; more: boolean };
}

/** Most invoices with late money the overview counts (keys only): past it the count says "at least". */
const LATE_INVOICES_COUNT_MAX = 1_000;

export interface PeriodSummary {
  created: number;
  succeeded: number;
  failed: number;
  expired: number;
  cancelled: number;
  /** Payments that settled in the period, in any status the table counts (a late success once, as a success). */
  settled: number;
  /** Settled payments that succeeded, 0..1 (null when none settled). */
  successRate: number | null;
  /** Created but not settled within the period. */
  open: number;
  /** Succeeded volume per currency in minor units. */
  volume: Record<string, number>;
  /** Mean seconds from creation to payment, for successes. */
  meanSecondsToPay: number | null;
  /** Refunds that succeeded in the period (counted when they succeed, not when asked). */
  refunds: number;
  /** Refunded volume per currency in minor units. */
  refunded: Record<string, number>;
  /** Crypto invoices created in the period, and how many were paid, expired or were cancelled in it. */
  invoices: { created: number; paid: number; expired: number; cancelled: number };
}

export function summarize(rows: StatRow[]): PeriodSummary {
  const sum = (status: StatRow["status"]) => rows.filter((r) => r.status === status).reduce((n, r) => n + r.count, 0);
  const created = sum("created");
  const succeeded = sum("succeeded");
  const failed = sum("failed");
  const expired = sum("expired");
  const cancelled = sum("cancelled");
  // Every status the table counts on entry has left "pending"; a late success took its expiry (or cancel) back.
  const settled = COUNTED_STATUSES.reduce((n, status) => n + sum(status), 0);
  const volume: Record<string, number> = {};
  let payMs = 0;
  const refunded: Record<string, number> = {};
  for (const r of rows) {
    if (r.status === "refund") refunded[r.currency] = (refunded[r.currency] ?? 0) + r.amount;
  }
  for (const r of rows) {
    if (r.status !== "succeeded") continue;
    volume[r.currency] = (volume[r.currency] ?? 0) + r.amount;
    payMs += r.payMs;
  }
  return {
    created,
    succeeded,
    failed,
    expired,
    cancelled,
    settled,
    successRate: settled ? succeeded / settled : null,
    open: Math.max(0, created - settled),
    volume,
    meanSecondsToPay: succeeded ? Math.round(payMs / succeeded / 1000) : null,
    refunds: sum("refund"),
    refunded,
    invoices: {
      created: sum("invoice_created"),
      paid: sum("invoice_paid"),
      expired: sum("invoice_expired"),
      cancelled: sum("invoice_cancelled"),
    },
  };
}

/** The console overview: today, the last 30 days, a daily series and postback health, optionally for one shop. */
export async function overview(kv: Deno.Kv, now: number, shopId?: string): Promise<Overview> {
  const today = utcDay(now);
  const from = utcDay(now - 29 * 86_400_000);
  const rows = await readStats(kv, from, today, shopId);
  const daily = [];
  for (let i = 29; i >= 0; i--) {
    const day = utcDay(now - i * 86_400_000);
    const dayRows = rows.filter((r) => r.day === day);
    daily.push({
      day,
      created: dayRows.filter((r) => r.status === "created").reduce((n, r) => n + r.count, 0),
      succeeded: dayRows.filter((r) => r.status === "succeeded").reduce((n, r) => n + r.count, 0),
    });
  }
  const [latePayments, lateInvoices] = await Promise.all([
    listLatePayments(kv, { shopId, limit: 20 }),
    countLateInvoices(kv, { shopId, max: LATE_INVOICES_COUNT_MAX }),
  ]);
  return {
    today: summarize(rows.filter((r) => r.day === today)),
    last30: summarize(rows),
    daily,
    postbacks: await countAttentionDeliveries(kv),
    latePayments,
    shopNames: await getShopNames(kv, latePayments.map((p) => p.shopId)),
    lateInvoices,
  };
}

export interface DailyPoint {
  day: string;
  created: number;
  succeeded: number;
  settled: number;
  successRate: number | null;
  /** Succeeded volume per currency, in minor units. */
  volume: Record<string, number>;
  meanSecondsToPay: number | null;
}

/** One point per UTC day over the last `days` days, oldest first (the built-in charts). */
export async function dailySeries(kv: Deno.Kv, now: number, days: number, shopId?: string): Promise<DailyPoint[]> {
  const rows = await readStats(kv, utcDay(now - (days - 1) * 86_400_000), utcDay(now), shopId);
  const out: DailyPoint[] = [];
  for (let i = days - 1; i >= 0; i--) {
    const day = utcDay(now - i * 86_400_000);
    const s = summarize(rows.filter((r) => r.day === day));
    out.push({
      day,
      created: s.created,
      succeeded: s.succeeded,
      settled: s.settled,
      successRate: s.successRate,
      volume: s.volume,
      meanSecondsToPay: s.meanSecondsToPay,
    });
  }
  return out;
}
