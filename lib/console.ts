import type { AppContext } from "./context.ts";
import { dashboardEmbedUrl } from "./analytics/metabase.ts";
import { type AttentionCounts, countAttentionDeliveries, listAttentionDeliveries } from "./db/deliveries.ts";
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
import { createShopForm, disableForm, formsOutOfOrder, listForms } from "./forms/mod.ts";
import { amountDecimals, amountExample, amountStepFor } from "./forms/submit.ts";
import type { PaymentForm } from "./forms/types.ts";
import { getShop } from "./db/shops.ts";
import { currencyRefusal, formatDecimal, isCurrency, parseAmount, typedAmountAbove } from "./money.ts";
import { NotFoundError, ValidationError } from "./errors.ts";
import { hasIdShape } from "./ids.ts";
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

/**
 * An operator's list narrowed to a shop that is not among the shops: NotFoundError, as for a malformed id. Its empty
 * list under "All shops" would read as "nothing here" for a shop that is not there.
 */
export function requireKnownShop(shops: Shop[], shopId: string | null | undefined): void {
  if (shopId && !shops.some((s) => s.id === shopId)) throw new NotFoundError("Unknown shop.");
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
  if (shops) requireKnownShop(shops, filter.shopId);
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
  { embedUrl: string } | { points: DailyPoint[]; postbacks: AttentionCounts }
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

/**
 * Postbacks needing attention within the scope; an operator may narrow to one shop. A shop id that names no shop is
 * NotFoundError: its empty list would read as "nothing is failing" for a shop that is not there.
 */
export async function listScopedDeliveries(
  ctx: AppContext,
  scope: Scope,
  opts: { shopId?: string } = {},
): Promise<Delivery[]> {
  const shopId = shopOf(scope) ?? opts.shopId;
  // An id that cannot be a shop's names none, and must not reach KV (which refuses over-long keys).
  if (scope === "operator" && shopId !== undefined) {
    if (!hasIdShape("shop", shopId) || !(await getShop(ctx.kv, shopId))) throw new NotFoundError("Unknown shop.");
  }
  return await listAttentionDeliveries(ctx.kv, { shopId, limit: 200 });
}

/** The forms within the scope, newest first, and why those out of order are (formsOutOfOrder). */
export async function listScopedForms(
  ctx: AppContext,
  scope: Scope,
): Promise<{ forms: PaymentForm[]; outOfOrder: Map<string, string> }> {
  const forms = await listForms(ctx, shopOf(scope));
  return { forms, outOfOrder: await formsOutOfOrder(ctx, forms) };
}

/**
 * Creates a form from the console's or the portal's fields: the shop is the
 * portal's own (an operator picks one), and an amount typed in major units
 * becomes the API's minor units, so both pages share the API's validation.
 */
export async function createScopedForm(
  ctx: AppContext,
  scope: Scope,
  fields: Record<string, string>,
  opts: { actor: string },
): Promise<PaymentForm> {
  const shopId = shopOf(scope) ?? fields.shopId ?? "";
  // A shop picked by hand (a post not from the page) that cannot be one is none: KV refuses an over-long key.
  const shop = hasIdShape("shop", shopId) ? await getShop(ctx.kv, shopId) : null;
  if (!shop) throw new ValidationError("The form is invalid.", { shopId: "pick a shop" });
  // A refused amount is told with the decimals the provider the shop's routes pick for the currency takes it in.
  const amountStep = await amountStepFor(ctx, shop, (fields.currency ?? "").trim().toUpperCase());
  return await createShopForm(ctx, shop, formRequestFromFields(fields, ctx.config.maxAmount, { amountStep }), opts);
}

/** Disables a form within the scope; a portal naming another shop's form finds nothing. */
export function disableScopedForm(ctx: AppContext, scope: Scope, formId: string, opts: { actor: string }) {
  return disableForm(ctx, formId, { actor: opts.actor, shopId: shopOf(scope) });
}

/**
 * The HTML create form's fields as the API's body: empty fields are left out (the buyer fills them). An amount over
 * `maxAmount` minor units is told so here, in the currency's units the person typed, not as the API's minor units; one
 * that is no amount is given an example with the decimals of `amountStep` (amountStepFor: the shop's provider's), as
 * the buyer's page hints.
 */
export function formRequestFromFields(
  f: Record<string, string>,
  maxAmount: number,
  opts: { amountStep?: number } = {},
): Record<string, unknown> {
  const given = (name: string) => (f[name] ?? "").trim() || undefined;
  const body: Record<string, unknown> = { kind: given("kind") ?? "fiat", title: given("title") ?? "" };
  const description = given("description");
  if (description) body.description = description;
  const returnUrl = given("returnUrl");
  if (returnUrl) body.returnUrl = returnUrl;
  const amount = given("amount");
  if (body.kind === "crypto") {
    for (const name of ["coin", "network"] as const) if (given(name)) body[name] = given(name);
    if (amount) body.amount = amount;
    return body;
  }
  const currency = given("currency")?.toUpperCase();
  if (currency) body.currency = currency;
  if (amount) {
    // The API takes minor units; people type major ones, so the currency decides the conversion.
    if (!currency || !isCurrency(currency)) {
      throw new ValidationError("The form is invalid.", {
        currency: currency ? currencyRefusal(currency) : "is required with a fixed amount",
      });
    }
    const minor = parseAmount(amount, currency);
    if (minor === null ? typedAmountAbove(amount, currency, maxAmount) : minor > maxAmount) {
      throw new ValidationError("The form is invalid.", {
        // As the field takes it, without thousands separators (see lib/forms/submit.ts).
        amount: `is too large: the most is ${formatDecimal(maxAmount, currency)} ${currency}`,
      });
    }
    if (minor === null) {
      throw new ValidationError("The form is invalid.", {
        amount: amountRefusal(currency, opts.amountStep),
      });
    }
    body.amount = minor;
  }
  return body;
}

/** Why a typed amount is no amount, with an example in the decimals the shop's provider takes `currency` in. */
function amountRefusal(currency: string, step = 1): string {
  const decimals = amountDecimals(currency, step);
  if (!decimals) return `must be a whole amount of ${currency} above 0, such as ${amountExample(currency, step)}`;
  return `must be an amount above 0 such as ${amountExample(currency, step)}, with at most ${decimals} ` +
    `decimal${decimals === 1 ? "" : "s"} for ${currency}`;
}

/**
 * The invoices page: newest invoices in the scope (`late=1`: only those holding late money) and, for one shop, its
 * address pool by network.
 */
export async function listScopedInvoices(
  ctx: AppContext,
  scope: Scope,
  query: Record<string, string | undefined>,
  opts: { limit: number },
) {
  // An operator may narrow to a shop (the pool is per shop); a portal is always its own shop.
  const asked = query.shopId?.slice(0, 64) || undefined;
  const shopId = shopOf(scope) ?? asked ?? null;
  const lateMoney = query.late === "1";
  const [invoices, pool, shops] = await Promise.all([
    listInvoicesFor(ctx, shopId, { limit: opts.limit, lateMoney }),
    shopId ? describePool(ctx, shopId) : undefined,
    scope === "operator" ? listShops(ctx.kv) : undefined,
  ]);
  if (shops) requireKnownShop(shops, shopId);
  return { invoices, pool, shops, shopId: scope === "operator" ? shopId : null, lateMoney };
}

/** One invoice with its timeline and postbacks; another shop's is not found from a portal. */
export function describeScopedInvoice(ctx: AppContext, scope: Scope, id: string) {
  return describeInvoice(ctx, id, shopOf(scope) ?? null);
}
