import { z } from "zod";
import type { AppContext } from "../context.ts";
import { getPayments, iteratePaymentIds } from "../db/payments.ts";
import { derivedPaymentId } from "./derived_id.ts";
import { PAYMENT_STATUSES } from "./status.ts";
import type { Payment } from "./types.ts";
import { parseOrThrow } from "../validation.ts";

/** Console and export filters; every field optional. Dates are UTC days, inclusive. */
export const PaymentFilterSchema = z.object({
  shopId: z.string().max(100).optional(),
  status: z.enum(PAYMENT_STATUSES).optional(),
  currency: z.string().regex(/^[A-Za-z]{3}$/).transform((c) => c.toUpperCase()).optional(),
  email: z.string().max(254).transform((e) => e.toLowerCase()).optional(),
  shopTxId: z.string().max(64).optional(),
  from: z.iso.date().optional(),
  to: z.iso.date().optional(),
});
export type PaymentFilter = z.output<typeof PaymentFilterSchema>;

/** Reads filters from query parameters, ignoring empty ones. */
export function parsePaymentFilter(query: Record<string, string | undefined>): PaymentFilter {
  const present = Object.fromEntries(Object.entries(query).filter(([k, v]) => v && k in PaymentFilterSchema.shape));
  return parseOrThrow(PaymentFilterSchema, present, "filter");
}

/** The scan budget of one page: filters that match rarely stop here and offer "more" rather than run away. */
const SCAN_LIMIT = 20_000;

export interface PaymentPage {
  payments: Payment[];
  cursor: string | null;
}

/**
 * One page of payments, newest first. The shop's own index or the global time
 * index is walked between the ULID bounds of the date range; the remaining
 * filters apply to each record.
 */
export async function searchPayments(
  ctx: Pick<AppContext, "kv" | "paymentIdKey">,
  filter: PaymentFilter,
  opts: { limit: number; cursor?: string },
): Promise<PaymentPage> {
  const kv = ctx.kv;
  if (filter.shopTxId && filter.shopId) {
    const id = derivedPaymentId(ctx.paymentIdKey, filter.shopId, { kind: "shop_ref", value: filter.shopTxId });
    const found = await getPayments(kv, [id]);
    return { payments: found.filter((p) => matches(p, filter)), cursor: null };
  }
  // The cursor is the ULID of the last payment looked at; the next page lists strictly older ones.
  const toBound = filter.to ? ulidBound(Date.parse(filter.to) + 86_400_000) : undefined;
  const iter = iteratePaymentIds(kv, {
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
  for await (const entry of iter) {
    batch.push({ seq: entry.key[entry.key.length - 1] as string, id: entry.value });
    scanned++;
    if (batch.length === 10) await flush();
    if (full || scanned >= SCAN_LIMIT) break;
  }
  if (!full) await flush();
  return { payments: out, cursor: full || scanned >= SCAN_LIMIT ? lastSeq : null };
}

function matches(p: Payment, f: PaymentFilter): boolean {
  return (!f.shopId || p.shopId === f.shopId) &&
    (!f.status || p.status === f.status) &&
    (!f.currency || p.currency === f.currency) &&
    (!f.email || p.email.toLowerCase() === f.email) &&
    (!f.shopTxId || p.shopTxId === f.shopTxId);
}

/** The smallest ULID of a millisecond: its 10-character time part followed by the lowest random part. */
function ulidBound(ms: number): string {
  const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  let t = ms;
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = alphabet[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out + "0".repeat(16);
}

const CSV_COLUMNS = [
  "id",
  "shopId",
  "shopTxId",
  "status",
  "amount",
  "currency",
  "type",
  "email",
  "name",
  "createdAt",
  "finalizedAt",
] as const;

/** Every payment matching the filter as CSV, streamed page by page. Cells are quoted and formula-neutralised. */
export function paymentsCsv(
  ctx: Pick<AppContext, "kv" | "paymentIdKey">,
  filter: PaymentFilter,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let cursor: string | undefined;
  let started = false;
  return new ReadableStream({
    async pull(controller) {
      if (!started) {
        started = true;
        controller.enqueue(encoder.encode(CSV_COLUMNS.join(",") + "\r\n"));
        return;
      }
      const page = await searchPayments(ctx, filter, { limit: 500, cursor });
      const lines = page.payments.map((p) =>
        CSV_COLUMNS.map((c) => {
          const v = p[c];
          return csvCell(c === "createdAt" || c === "finalizedAt" ? (v ? new Date(v as number).toISOString() : "") : v);
        }).join(",")
      );
      if (lines.length) controller.enqueue(encoder.encode(lines.join("\r\n") + "\r\n"));
      if (!page.cursor) controller.close();
      else cursor = page.cursor;
    },
  });
}

function csvCell(value: unknown): string {
  let s = value === null || value === undefined ? "" : String(value);
  // A leading =, +, - or @ would run as a formula in spreadsheet apps.
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
  return `"${s.replace(/"/g, '""')}"`;
}
