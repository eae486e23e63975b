import { z } from "zod";
import type { AppContext } from "../context.ts";
import {
  backfillPaymentEmailIndex,
  getPayments,
  isPaymentEmailIndexReady,
  iteratePaymentIds,
  paymentEmailHash,
} from "../db/payments.ts";
import { describeError, log } from "../log.ts";
import { listShops } from "../db/shops.ts";
import { findNamedPayment } from "./query.ts";
import { PAYMENT_STATUSES } from "./status.ts";
import type { Payment } from "./types.ts";
import { parseOrThrow } from "../validation.ts";
import { formatDecimal } from "../money.ts";
import { decodeTime, encodeTime } from "../ids.ts";

/** Console and export filters; every field optional. Dates are UTC days, inclusive. */
export const PaymentFilterSchema = z.object({
  /** Our payment id (`pay_...`): read directly. */
  id: z.string().trim().max(100).optional(),
  shopId: z.string().max(100).optional(),
  status: z.enum(PAYMENT_STATUSES).optional(),
  currency: z.string().regex(/^[A-Za-z]{3}$/).transform((c) => c.toUpperCase()).optional(),
  /** The start of the buyer's address; a full address is found at once through the index. */
  email: z.string().trim().max(254).transform((e) => e.toLowerCase()).optional(),
  /** The shop's order id or its start; an existing id is found at once. */
  shopTxId: z.string().trim().max(64).optional(),
  from: z.iso.date().optional(),
  to: z.iso.date().optional(),
});
export type PaymentFilter = z.output<typeof PaymentFilterSchema>;

/** Reads filters from query parameters, ignoring empty ones. */
export function parsePaymentFilter(query: Record<string, string | undefined>): PaymentFilter {
  const present = Object.fromEntries(Object.entries(query).filter(([k, v]) => v && k in PaymentFilterSchema.shape));
  return parseOrThrow(PaymentFilterSchema, present, { what: "filter" });
}

/** The scan budget of one page: filters that match rarely stop here and offer "more" rather than run away. */
export const SCAN_LIMIT = 20_000;

export interface PaymentPage {
  payments: Payment[];
  cursor: string | null;
  /**
   * Set when the scan budget ran out before the page filled: the creation time
   * of the oldest payment looked at. Older ones were not searched; the cursor
   * goes on from there.
   */
  scanStoppedAt: number | null;
}

export interface SearchOptions {
  limit: number;
  cursor?: string;
  /** Payments looked at per page before giving up on a rare filter (tests use a small one). */
  scanLimit?: number;
}

/**
 * One page of payments, newest first. A payment id, a shop's order id that
 * exists and a buyer's full email address are index lookups; otherwise the
 * shop's own index or the global time index is walked between the ULID bounds
 * of the date range, and the remaining filters apply to each record. Email
 * and order id match as prefixes there: the email index holds hashes and the
 * order id names a derived payment id, so neither can answer "starts with"
 * and a prefix is checked one payment at a time, with the scan budget's
 * "stopped at, search older" paging.
 */
export async function searchPayments(
  ctx: Pick<AppContext, "kv" | "paymentIdKey">,
  filter: PaymentFilter,
  opts: SearchOptions,
): Promise<PaymentPage> {
  const kv = ctx.kv;
  if (filter.id) return exactPage(await getPayments(kv, [filter.id]), filter);
  if (filter.shopTxId && !opts.cursor) {
    // A shop's order id names its payment (the name's key, lib/db/payments.ts): a read or two per shop.
    const shopIds = filter.shopId ? [filter.shopId] : (await listShops(kv)).map((s) => s.id);
    const name = { kind: "shop_ref", value: filter.shopTxId } as const;
    const found = (await Promise.all(shopIds.map((shopId) => findNamedPayment(ctx, shopId, name))))
      .filter((p) => p !== null);
    // No order id is exactly this: read it as the start of one and scan.
    if (found.length) return exactPage(found, filter);
  }
  // Until payments stored before the email index are in it (backfill), an email search scans like the rest;
  // so does part of an address, which the hashed index cannot find.
  const emailHash = filter.email && isFullEmail(filter.email) && await isPaymentEmailIndexReady(kv)
    ? paymentEmailHash(filter.email)
    : undefined;
  const scanLimit = opts.scanLimit ?? SCAN_LIMIT;
  // The cursor is the ULID of the last payment looked at; the next page lists strictly older ones.
  const toBound = filter.to ? ulidBound(Date.parse(filter.to) + 86_400_000) : undefined;
  const iter = iteratePaymentIds(kv, {
    emailHash,
    shopId: filter.shopId,
    startSeq: filter.from ? ulidBound(Date.parse(filter.from)) : undefined,
    endSeq: opts.cursor && (!toBound || opts.cursor < toBound) ? opts.cursor : toBound,
  });
  const out: Payment[] = [];
  let batch: { seq: string; id: string }[] = [];
  let scanned = 0;
  let lastSeq: string | null = null;
  let full = false;
  const flush = async () => {
    const payments = new Map((await getPayments(kv, batch.map((b) => b.id))).map((p) => [p.id, p]));
    for (const { seq, id } of batch) {
      const p = payments.get(id);
      if (p && matches(p, filter)) out.push(p);
      lastSeq = seq;
      if (out.length >= opts.limit) {
        full = true;
        break;
      }
    }
    batch = [];
  };
  for await (const listed of iter) {
    batch.push(listed);
    scanned++;
    if (batch.length === 10) await flush();
    if (full || scanned >= scanLimit) break;
  }
  if (!full) await flush();
  const stopped = !full && scanned >= scanLimit;
  return {
    payments: out,
    cursor: full || stopped ? lastSeq : null,
    scanStoppedAt: stopped && lastSeq ? decodeTime(lastSeq) : null,
  };
}

/**
 * Puts payments stored before the email index into it (a no-op, one read,
 * once done). The first batch runs before this returns, so a small store is
 * done at once; a large one goes on in the background, resumable after a
 * restart, while email searches scan as before. `stop` waits for it.
 */
export async function startEmailIndexBackfill(kv: Deno.Kv): Promise<{ stop(): Promise<void> }> {
  const first = await backfillPaymentEmailIndex(kv, { maxBatches: 1 });
  if (first.done) {
    if (first.indexed) log.info("email index backfill done", { indexed: first.indexed });
    return { stop: () => Promise.resolve() };
  }
  log.info("email index backfill started in the background", { indexed: first.indexed });
  const abort = new AbortController();
  const running = backfillPaymentEmailIndex(kv, { signal: abort.signal }).then(
    (r) => log.info(r.done ? "email index backfill done" : "email index backfill paused", { indexed: r.indexed }),
    (err) => log.error("email index backfill failed; it resumes at the next start", { error: describeError(err) }),
  );
  return {
    async stop() {
      abort.abort();
      await running;
    },
  };
}

/** The page of a lookup that found at most a few payments: all of them, newest first. */
function exactPage(found: Payment[], filter: PaymentFilter): PaymentPage {
  const payments = found.filter((p) => matches(p, filter)).sort((a, b) => a.seq < b.seq ? 1 : -1);
  return { payments, cursor: null, scanStoppedAt: null };
}

function matches(p: Payment, f: PaymentFilter): boolean {
  return (!f.shopId || p.shopId === f.shopId) &&
    (!f.id || p.id === f.id) &&
    (!f.from || p.createdAt >= Date.parse(f.from)) &&
    (!f.to || p.createdAt < Date.parse(f.to) + 86_400_000) &&
    (!f.status || p.status === f.status) &&
    (!f.currency || p.currency === f.currency) &&
    (!f.email || p.email.toLowerCase().startsWith(f.email)) &&
    (!f.shopTxId || (p.shopTxId ?? "").startsWith(f.shopTxId));
}

/** An address the email index can look up: something before and after one "@", a dot in the domain. */
function isFullEmail(email: string): boolean {
  return /^[^@\s]+@[^@\s]+\.[^@\s.]+$/.test(email);
}

/** The smallest ULID of a millisecond: its time part followed by the lowest random part. */
function ulidBound(ms: number): string {
  return encodeTime(ms) + "0".repeat(16);
}

const CSV_COLUMNS = [
  "id",
  "shopId",
  "shopName",
  "shopTxId",
  "status",
  "amount",
  "amountDecimal",
  "currency",
  "type",
  "email",
  "name",
  "createdAt",
  "finalizedAt",
  "refundedAmount",
] as const;

/**
 * Every payment matching the filter as CSV, streamed page by page. Cells are
 * quoted and formula-neutralised (at their start and after any ";" in them). Unlike the console's pages, the export goes
 * on through every scan window until the filter's range is exhausted.
 * `amount` stays in minor units for programs; `amountDecimal` is the same in
 * major units for spreadsheets; times are ISO 8601 in UTC.
 */
export function paymentsCsv(
  ctx: Pick<AppContext, "kv" | "paymentIdKey">,
  filter: PaymentFilter,
  opts: { scanLimit?: number } = {},
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let cursor: string | undefined;
  let started = false;
  let shopNames = new Map<string, string>();
  return new ReadableStream({
    async pull(controller) {
      if (!started) {
        started = true;
        shopNames = new Map((await listShops(ctx.kv)).map((s) => [s.id, s.name]));
        controller.enqueue(encoder.encode(CSV_COLUMNS.join(",") + "\r\n"));
        return;
      }
      // A pull that enqueues nothing is not called again, so scan windows without a match are skipped here.
      for (;;) {
        const page = await searchPayments(ctx, filter, { limit: 500, cursor, scanLimit: opts.scanLimit });
        const lines = page.payments.map((p) =>
          CSV_COLUMNS.map((c) => {
            // Payments stored before refunds existed have no refundedAmount: nothing refunded.
            const v = c === "refundedAmount"
              ? p.refundedAmount ?? 0
              : c === "shopName"
              ? shopNames.get(p.shopId) ?? ""
              : c === "amountDecimal"
              ? formatDecimal(p.amount, p.currency)
              : p[c];
            return csvCell(
              c === "createdAt" || c === "finalizedAt" ? (v ? new Date(v as number).toISOString() : "") : v,
            );
          }).join(",")
        );
        if (lines.length) controller.enqueue(encoder.encode(lines.join("\r\n") + "\r\n"));
        if (!page.cursor) return controller.close();
        cursor = page.cursor;
        if (lines.length) return;
      }
    },
  });
}

function csvCell(value: unknown): string {
  let s = value === null || value === undefined ? "" : String(value);
  // A leading =, +, - or @ would run as a formula in spreadsheet apps. So would one after a ";" inside a value: a
  // spreadsheet whose list separator is ";" (most of Europe's) splits this comma file there, quotes or not, and the
  // rest of a shop's or buyer's text (a name "x;=cmd|' /C calc'!A0;") becomes a cell of its own.
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
  s = s.replace(/;(?=[=+\-@\t\r])/g, ";'");
  return `"${s.replace(/"/g, '""')}"`;
}
