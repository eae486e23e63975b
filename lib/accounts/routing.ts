import type { NewAuditEntry } from "../db/audit.ts";
import { z } from "zod";
import type { AppContext } from "../context.ts";
import { AppError, ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import { getShopEntry, replaceShop, type Shop } from "../db/shops.ts";
import { currencyRefusal, isCurrency, listCurrencies } from "../money.ts";
import type { PaymentType } from "../payments/types.ts";
import type { AccountAdapter } from "../providers/registry.ts";
import { amountStep } from "../providers/amount_steps.ts";
import { hasIdShape } from "../ids.ts";
import { currencyCode, type CurrencyCodes, parseAllowingStoredCurrencies } from "../validation.ts";
import { DEFAULT_ACCOUNT_ID, PROVIDER_TYPES, type ProviderAccount, type RouteRule, type ShopRouting } from "./types.ts";

/** 422: the account the shop's routes pick cannot take this payment (disabled, or not this currency or type). */
export class NoRouteError extends AppError {
  constructor(currency: string, type: PaymentType, account?: ProviderAccount) {
    // Which it is tells the shop and its operator where to look: a rule to add, or an account to enable.
    const why = account ? accountRefusal(account, currency, type) : null;
    super(422, "no_route", `This shop has no route for ${type} payments in ${currency}${why ? `: ${why}` : ""}.`);
  }
}

export const MAX_ROUTE_RULES = 50;

/** The account id a shop's routes pick: the first matching rule, else its default account, else the platform's. */
export function pickAccountId(routing: ShopRouting | undefined, currency: string, type: PaymentType): string {
  for (const r of routing?.rules ?? []) {
    if ((r.currency === null || r.currency === currency) && (r.type === null || r.type === type)) return r.accountId;
  }
  return routing?.defaultAccountId ?? DEFAULT_ACCOUNT_ID;
}

/** True when the account takes new payments in this currency and of this type. */
export function accountAccepts(account: ProviderAccount, currency: string, type: PaymentType): boolean {
  return accountRefusal(account, currency, type) === null;
}

/** Why the account takes no new payment in this currency and of this type, as the shop is told; null when it does. */
function accountRefusal(account: ProviderAccount, currency: string, type: PaymentType): string | null {
  if (!account.active) return "the account its routes pick is disabled";
  if (!(PROVIDER_TYPES[account.provider] as readonly PaymentType[]).includes(type)) {
    return `the account its routes pick takes no ${type} payments`;
  }
  if (account.currencies.length && !account.currencies.includes(currency)) {
    return `the account its routes pick takes no ${currency}`;
  }
  return null;
}

/**
 * The account a new payment goes to. The routes come with the shop record the
 * API key lookup read, and accounts are cached per isolate: no KV read here
 * once warm. Throws NoRouteError when the picked account cannot take it.
 */
export async function routePayment(
  ctx: AppContext,
  shop: Shop,
  payment: { id: string; amount: number; currency: string; type: PaymentType },
): Promise<AccountAdapter> {
  const found = await ctx.providers.find(pickAccountId(shop.routing, payment.currency, payment.type));
  if (!found || !accountAccepts(found.account, payment.currency, payment.type)) {
    throw new NoRouteError(payment.currency, payment.type, found?.account);
  }
  return ctx.providers.bind(found, { ...payment, shopId: shop.id, accountId: found.account.id });
}

/**
 * What a shop's routes accept: the fiat currencies for which init-payment
 * would find an account that takes them, each with the step its amounts must
 * be a multiple of there (shopFiatSteps). Reads each account the routes name
 * once (cached per isolate).
 */
export async function shopOptions(
  ctx: AppContext,
  shop: Shop,
): Promise<{ fiatCurrencies: string[]; fiatAmountSteps: Record<string, number> }> {
  const steps = await shopFiatSteps(ctx, shop);
  return { fiatCurrencies: [...steps.keys()], fiatAmountSteps: Object.fromEntries(steps) };
}

/**
 * The fiat currencies a shop's routes take (as shopOptions), each with the step its amounts must be a multiple of
 * (minor units) at the provider of the account its payments in it go to: 1 mostly, 100 for MGA at Stripe.
 */
export async function shopFiatSteps(ctx: AppContext, shop: Shop): Promise<Map<string, number>> {
  const routing = shopRouting(shop);
  const ids = new Set([...routing.rules.map((r) => r.accountId), routing.defaultAccountId ?? DEFAULT_ACCOUNT_ID]);
  const accounts = new Map<string, ProviderAccount | null>();
  await Promise.all([...ids].map(async (id) => accounts.set(id, (await ctx.providers.find(id))?.account ?? null)));
  const steps = new Map<string, number>();
  for (const c of listCurrencies()) {
    const account = accounts.get(pickAccountId(routing, c, "fiat"));
    if (account && accountAccepts(account, c, "fiat")) steps.set(c, amountStep(account.provider, c));
  }
  return steps;
}

/** A shop's routes as a change gives them; `codes` "stored" also reads a currency only stored rules may hold. */
function shopRoutingSchema(codes: CurrencyCodes) {
  const rule = z.strictObject({
    accountId: z.string().min(1).max(64),
    currency: currencyCode(codes).nullable().default(null),
    type: z.enum(["fiat", "crypto"]).nullable().default(null),
  });
  return z.strictObject({
    rules: z.array(rule).max(MAX_ROUTE_RULES),
    defaultAccountId: z.string().min(1).max(64).nullable(),
  });
}

export const ShopRoutingSchema = shopRoutingSchema("taken");
export const RouteRuleSchema = ShopRoutingSchema.shape.rules.element;
/** The routes as read when a rule may have been stored in a fund code, taken before: see refuseNewUntakenRules. */
const StoredShopRoutingSchema = shopRoutingSchema("stored");

/** A shop's routes by the shop's id, or NotFoundError. */
export async function getShopRouting(ctx: AppContext, shopId: string): Promise<ShopRouting> {
  return shopRouting((await readShopEntry(ctx, shopId)).value);
}

/**
 * The shop whose routes are read or changed, by an id from a request (the admin API's path, the console's, the CLI's
 * argument): one that cannot be a shop's is not found without a read, as KV refuses an over-long key (a 500 before).
 */
async function readShopEntry(ctx: AppContext, shopId: string): Promise<Deno.KvEntry<Shop>> {
  const entry = hasIdShape("shop", shopId) ? await getShopEntry(ctx.kv, shopId) : null;
  if (!entry?.value) throw new NotFoundError("Unknown shop.");
  return entry as Deno.KvEntry<Shop>;
}

/** A shop's routes as stored (none: every payment goes to the platform default). */
export function shopRouting(shop: Shop): ShopRouting {
  return shop.routing ?? { rules: [], defaultAccountId: null };
}

/**
 * Replaces a shop's routes (checked: every account named exists), audited as
 * `shop.routing` in the same atomic operation; retried if the shop changed.
 * A change made from routes read before (`opts.from`: a rule added to them or
 * taken away) throws ConflictError when the stored routes are no longer those,
 * rather than write over another change made meanwhile.
 */
export async function setShopRouting(
  ctx: AppContext,
  shopId: string,
  input: unknown,
  opts: { actor: string; from?: ShopRouting },
): Promise<ShopRouting> {
  const routing = parseAllowingStoredCurrencies(
    { taken: ShopRoutingSchema, stored: StoredShopRoutingSchema },
    input,
    { what: "routing" },
  );
  // By the field that names it, as every other refusal of the routing: the id itself is what the caller sent.
  const named = [
    ...routing.rules.map((r, i) => [`rules.${i}.accountId`, r.accountId]),
    ["defaultAccountId", routing.defaultAccountId ?? DEFAULT_ACCOUNT_ID],
  ];
  const known = new Map<string, boolean>();
  for (const [, id] of named) if (!known.has(id)) known.set(id, !!(await ctx.providers.find(id)));
  const fields = Object.fromEntries(
    named.filter(([, id]) => !known.get(id)).map(([field]) => [field, "is not an account"]),
  );
  if (Object.keys(fields).length) throw new ValidationError("The routing names unknown accounts.", fields);
  for (;;) {
    const entry = await readShopEntry(ctx, shopId);
    if (opts.from && !sameRouting(shopRouting(entry.value), opts.from)) {
      throw new ConflictError("The shop's routes changed meanwhile; nothing was saved.");
    }
    refuseNewUntakenRules(routing, shopRouting(entry.value));
    const next: Shop = { ...entry.value, routing };
    const audit: NewAuditEntry = {
      at: ctx.now(),
      actor: opts.actor,
      action: "shop.routing",
      target: shopId,
      before: shopRouting(entry.value),
      after: routing,
    };
    if (await replaceShop(ctx.kv, entry, next, audit)) return routing;
  }
}

/**
 * Adds one rule at the end of a shop's rules (addShopRule), or sets its default account when the rule names neither
 * currency nor type (the CLI's `shop route`). The default it has already changes nothing (`changed` false), as a rule
 * it has does.
 */
export async function addShopRoute(
  ctx: AppContext,
  shopId: string,
  rule: NewRouteRule,
  opts: { actor: string },
): Promise<{ routing: ShopRouting; changed: boolean }> {
  if (rule.currency || rule.type) return await addShopRule(ctx, shopId, rule, opts);
  const current = shopRouting((await readShopEntry(ctx, shopId)).value);
  if (current.defaultAccountId === rule.accountId) return { routing: current, changed: false };
  const change = { ...opts, from: current };
  const routing = await setShopRouting(ctx, shopId, { ...current, defaultAccountId: rule.accountId }, change);
  return { routing, changed: true };
}

/** A rule as an operator asks for it (the console's form, the CLI's options): no currency or type matches any. */
export interface NewRouteRule {
  accountId: string;
  currency?: string | null;
  type?: string | null;
}

/**
 * Adds one rule at the end of a shop's rules (the console's Add rule, the CLI's `shop route` with a currency or type).
 * A rule the shop has already (the same account, currency and type) changes nothing (`changed` false), not even the
 * audit log: asked twice (a runbook run again, a form sent twice), the shop is routed as asked, and a second copy of a
 * rule could never match (the first match wins), only confuse a reader.
 */
export async function addShopRule(
  ctx: AppContext,
  shopId: string,
  rule: NewRouteRule,
  opts: { actor: string },
): Promise<{ routing: ShopRouting; changed: boolean }> {
  const current = shopRouting((await readShopEntry(ctx, shopId)).value);
  const added: unknown = { accountId: rule.accountId, currency: rule.currency ?? null, type: rule.type ?? null };
  // Read as a stored rule is (a currency in any case; a fund code a stored rule may hold), to compare like with like;
  // a rule that is not one at all is refused below, by setShopRouting.
  const asRule = StoredShopRoutingSchema.shape.rules.element.safeParse(added);
  if (asRule.success && current.rules.some((r) => ruleIdentity(r) === ruleIdentity(asRule.data))) {
    return { routing: current, changed: false };
  }
  const routing = await setShopRouting(
    ctx,
    shopId,
    { ...current, rules: [...current.rules, added as RouteRule] },
    { ...opts, from: current },
  );
  return { routing, changed: true };
}

/** What a rule does, as a string: two rules with the same send the same payments to the same account. */
const ruleIdentity = (r: RouteRule) => JSON.stringify([r.accountId, r.currency, r.type]);

/** True when two routings send every payment the same way: the same rules in the same order, the same default. */
function sameRouting(a: ShopRouting, b: ShopRouting): boolean {
  return a.defaultAccountId === b.defaultAccountId &&
    JSON.stringify(a.rules.map(ruleIdentity)) === JSON.stringify(b.rules.map(ruleIdentity));
}

/**
 * Refuses the rules of a change in a currency we no longer take (a fund code, taken before), as currencyCode() does,
 * unless the shop's routes hold that very rule already. Every change gives the whole list (the admin API's PUT, and
 * the console's and the CLI's additions and removals made from the stored one): a rule stored in such a code stays
 * while other rules change, instead of blocking every change until it is taken away; changed or new, it is refused.
 */
function refuseNewUntakenRules(next: ShopRouting, stored: ShopRouting): void {
  const kept = new Set(stored.rules.map(ruleIdentity));
  const fields: Record<string, string> = {};
  next.rules.forEach((r, i) => {
    if (r.currency !== null && !isCurrency(r.currency) && !kept.has(ruleIdentity(r))) {
      fields[`rules.${i}.currency`] = currencyRefusal(r.currency);
    }
  });
  if (Object.keys(fields).length) throw new ValidationError("The routing is invalid.", fields);
}
