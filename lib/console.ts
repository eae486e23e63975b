import type { AppContext } from "./context.ts";
import { dashboardEmbedUrl } from "./analytics/metabase.ts";
import { countAttentionDeliveries, listAttentionDeliveries } from "./db/deliveries.ts";
import { listShops, type Shop } from "./db/shops.ts";
import {
  parsePaymentFilter,
  type PaymentFilter,
  type PaymentPage,
  paymentsCsv,
  searchPayments,
} from "./payments/search.ts";
import { type DailyPoint, dailySeries } from "./stats.ts";
import type { Delivery } from "./relay/types.ts";
import { describeInvoice, describePool, listInvoicesFor } from "./invoices/admin.ts";

/**
 * Who is looking: an operator sees every shop, a shop's portal only its own.
 * The console and the portal run the same queries below with their scope, so
 * a shop can never widen its view through a query parameter.
 */
export type Scope = "operator" | { shopId: string };

const shopOf = (scope: Scope): string | undefined => (scope === "operator" ? undefined : scope.shopId);

/** The URL's filters, with the shop forced to the scope's own (whatever the query says) for a portal. */
export function scopedFilter(scope: Scope, query: Record<string, string | undefined>): PaymentFilter {
  const filter = parsePaymentFilter(query);
  return scope === "operator" ? filter : { ...filter, shopId: scope.shopId };
}

/** One page of the payments list: the filter to show, the page, its query string, and the shops an operator picks from. */
export async function listScopedPayments(
  ctx: AppContext,
  scope: Scope,
  query: Record<string, string | undefined>,
  opts: { limit: number },
): Promise<{ filter: PaymentFilter; page: PaymentPage; query: URLSearchParams; shops?: Shop[] }> {
  const filter = scopedFilter(scope, query);
  const cursor = query.cursor?.slice(0, 40) || undefined;
  const [page, shops] = await Promise.all([
    searchPayments(ctx, filter, { limit: opts.limit, cursor }),
    scope === "operator" ? listShops(ctx.kv) : undefined,
  ]);
  // A portal's links never carry its shop: the session decides it.
  const { shopId: _shopId, ...rest } = filter;
  const shown = scope === "operator" ? filter : rest;
  const qs = new URLSearchParams(Object.entries(shown).filter(([, v]) => v) as [string, string][]);
  return { filter: shown, page, query: qs, shops };
}

/** The filtered payments as CSV, within the scope. */
export function scopedPaymentsCsv(ctx: AppContext, scope: Scope, query: Record<string, string | undefined>) {
  return paymentsCsv(ctx, scopedFilter(scope, query));
}

/** The stats page: the Metabase dashboard for the scope when configured, otherwise the built-in series. */
export async function loadScopedStats(
  ctx: AppContext,
  scope: Scope,
): Promise<
  { embedUrl: string } | { points: DailyPoint[]; postbacks: { failing: number; failed: number } }
> {
  const shopId = shopOf(scope);
  const mb = ctx.config.metabase;
  if (mb) {
    const view = shopId ? { kind: "shop" as const, shopId } : { kind: "operator" as const };
    return { embedUrl: await dashboardEmbedUrl(mb, view, ctx.now()) };
  }
  const [points, postbacks] = await Promise.all([
    dailySeries(ctx.kv, ctx.now(), 30, shopId),
    countAttentionDeliveries(ctx.kv, shopId),
  ]);
  return { points, postbacks };
}

/** Postbacks needing attention within the scope; an operator may narrow to one shop. */
export function listScopedDeliveries(
  ctx: AppContext,
  scope: Scope,
  opts: { shopId?: string } = {},
): Promise<Delivery[]> {
  return listAttentionDeliveries(ctx.kv, { shopId: shopOf(scope) ?? opts.shopId, limit: 200 });
}

/** The invoices page: newest invoices in the scope and, for one shop, its address pool by network. */
export async function listScopedInvoices(
  ctx: AppContext,
  scope: Scope,
  query: Record<string, string | undefined>,
  opts: { limit: number },
) {
  // An operator may narrow to a shop (the pool is per shop); a portal is always its own shop.
  const asked = query.shopId?.slice(0, 64) || undefined;
  const shopId = shopOf(scope) ?? asked ?? null;
  const [invoices, pool, shops] = await Promise.all([
    listInvoicesFor(ctx, shopId, opts.limit),
    shopId ? describePool(ctx, shopId) : undefined,
    scope === "operator" ? listShops(ctx.kv) : undefined,
  ]);
  return { invoices, pool, shops, shopId: scope === "operator" ? shopId : null };
}

/** One invoice with its timeline and postbacks; another shop's is not found from a portal. */
export function describeScopedInvoice(ctx: AppContext, scope: Scope, id: string) {
  return describeInvoice(ctx, id, shopOf(scope) ?? null);
}
