import { z } from "zod";
import type { AppContext } from "../context.ts";
import type { Shop } from "../db/shops.ts";
import { ValidationError } from "../errors.ts";
import { currencyExponent, formatDecimal, parseAmount, typedAmountAbove } from "../money.ts";
import { initPayment } from "../payments/init.ts";
import { payUrl } from "../payments/view.ts";
import { shopFiatSteps, shopOptions } from "../accounts/routing.ts";
import { COIN_CHOICES, type CoinChoice, createFormInvoice, formatCryptoAmount, parseCryptoAmount } from "./crypto.ts";
import { formUrl } from "./mod.ts";
import { MAX_WHOLE_DIGITS } from "../invoices/amounts.ts";
import type { CryptoForm, FiatForm, PaymentForm } from "./types.ts";

/** What the buyer typed, as strings, only ever read for the fields the form leaves open. */
export type BuyerInput = Partial<Record<"email" | "amount" | "currency" | "coin", string>>;

const Email = z.email().max(254);

/** The value of a coin choice on the page: one select names coin and network together. */
export const coinChoiceValue = (c: CoinChoice) => `${c.coin}:${c.network}`;

/** The coins a crypto form offers: those that agree with what the merchant fixed. */
export function coinChoicesFor(form: CryptoForm): CoinChoice[] {
  return COIN_CHOICES.filter((c) =>
    (form.coin === null || c.coin === form.coin) && (form.network === null || c.network === form.network)
  );
}

/** The currencies a fiat form offers when the buyer picks: those the shop's routes take. */
export async function currencyChoicesFor(ctx: AppContext, shop: Shop): Promise<string[]> {
  return (await shopOptions(ctx, shop)).fiatCurrencies;
}

/**
 * Turns a submitted form into a payment (fiat) or an invoice (crypto) and
 * answers where the buyer goes next. Every value the merchant fixed comes from
 * the form record; the buyer's fields are read only where the form left a
 * blank, so extra or edited fields in the post change nothing. `submitName`
 * (from the form token) names the payment: a second click of the same page
 * finds the first one instead of making another. A ConflictError made
 * nothing (a crypto form's invoice found every deposit address on offer taken
 * by others, lib/invoices/pool.ts; a fiat payment's race for its own key is
 * answered here as a double click): the same `submitName` again is safe.
 */
export async function submitForm(
  ctx: AppContext,
  target: { form: PaymentForm; shop: Shop },
  input: BuyerInput,
  opts: { submitName: string },
): Promise<{ redirectTo: string }> {
  const { form, shop } = target;
  const idempotencyKey = `form:${form.id}:${opts.submitName}`;
  const email = Email.safeParse((input.email ?? "").trim());
  const fields: Record<string, string> = Object.create(null);
  if (!email.success) fields.email = "Enter your email address, such as name@example.com.";
  if (form.kind === "fiat") {
    const money = await fiatAmount(ctx, shop, form, input, fields);
    if (Object.keys(fields).length || !money || !email.success) throw invalid(fields);
    const base = ctx.config.publicBaseUrl;
    const { payment } = await initPayment(ctx, formShop(shop, base), {
      // With a default postback URL the submit carries a shop id, so the shop hears about the payment.
      ...(shop.defaultPostbackUrl ? { id: idempotencyKey } : {}),
      email: email.data,
      amount: money.amount,
      currency: money.currency,
      type: "fiat",
      successUrl: `${formUrl(form.id, base)}/thanks`,
      errorUrl: `${formUrl(form.id, base)}/not-paid`,
    }, { idempotencyKey: shop.defaultPostbackUrl ? null : idempotencyKey });
    return { redirectTo: payUrl(payment.id, base) };
  }
  const crypto = cryptoAmount(form, input, fields);
  if (Object.keys(fields).length || !crypto || !email.success) throw invalid(fields);
  // Named like a fiat form's payment, so the shop's postbacks say which form and submit the invoice came from.
  const invoice = await createFormInvoice(ctx, shop, {
    id: idempotencyKey,
    coin: crypto.choice.coin,
    network: crypto.choice.network,
    amount: formatCryptoAmount(crypto.units, crypto.choice.decimals),
    title: form.title,
    ...(form.description ? { description: form.description } : {}),
    email: email.data,
    ...(form.returnUrl ? { returnUrl: form.returnUrl } : {}),
  });
  return { redirectTo: invoice.checkoutUrl };
}

/** The buyer's own fields are wrong (as opposed to anything the payment code refuses): the page marks them. */
export class BuyerInputError extends ValidationError {}

/**
 * An amount as the buyer typed it, with a decimal comma read as a point ("12,50"): many buyers write it so. Only
 * one or two digits after the comma: "1,000" could be a thousand, so it stays as typed (and is refused).
 */
function typedAmount(input: BuyerInput): string {
  const typed = (input.amount ?? "").trim();
  return /^\d+,\d{1,2}$/.test(typed) ? typed.replace(",", ".") : typed;
}

/**
 * "10 or 10.50" (JPY: "10", KWD: "10 or 10.500"): what a valid amount looks like in this currency, with the decimals
 * the shop's provider takes it in (`step`, minor units: amountStepFor): MGA at Stripe (whole ariary) "10", KWD at
 * Stripe (tens of the third decimal) "10 or 10.50".
 */
export function amountExample(currency: string, step = 1): string {
  const decimals = amountDecimals(currency, step);
  return decimals > 0 ? `10 or 10.5${"0".repeat(decimals - 1)}` : "10";
}

/** The decimals an amount in `currency` can have where the shop's provider takes it in steps of `step` minor units. */
export function amountDecimals(currency: string, step = 1): number {
  return Math.max(0, currencyExponent(currency) - Math.round(Math.log10(step)));
}

/** The step (minor units) of the amounts the shop's provider for `currency` takes (1 when its routes take none). */
export async function amountStepFor(ctx: AppContext, shop: Shop, currency: string): Promise<number> {
  return (await shopFiatSteps(ctx, shop)).get(currency) ?? 1;
}

/**
 * How to write an amount with at most `decimals` decimals, for a refused one. It names thousands separators because
 * "1,000" or "1 000" is the usual reason a sensible amount is refused, and the buyer cannot guess it from "such as 10".
 */
export function amountFormat(decimals: number): string {
  return decimals
    ? `Use digits with an optional decimal point (at most ${decimals} decimals), no thousands separators, ` +
      `like 1234.${"50".slice(0, decimals)}.`
    : "Use digits only, no decimal point or thousands separators, like 1234.";
}

/**
 * What is wrong with a refused amount, for the buyer: a comma (a decimal comma to write as a point, or thousands
 * separators), more decimals than `unit` (a currency or coin) has, nothing above zero; else how to write one.
 */
export function amountProblem(typed: string, decimals: number, unit: string): string {
  const fraction = /^\d+[.,](\d+)$/.exec(typed)?.[1];
  const tooPrecise = fraction !== undefined && fraction.length > decimals;
  const most = `at most ${decimals} decimal${decimals === 1 ? "" : "s"}`;
  if (typed.includes(",")) {
    // "0,001" or "12,5" is a decimal comma; "1,000" may as well be a thousand, so both readings are answered.
    const decimalComma = fraction !== undefined && (typed.startsWith("0,") || fraction.length !== 3);
    if (decimalComma && !/[1-9]/.test(typed)) return "Enter an amount above 0.";
    if (decimalComma && !tooPrecise) return `Use a point, not a comma: ${typed.replace(",", ".")}.`;
    if (decimalComma && decimals) return `Use a point, not a comma, and ${most} for ${unit}.`;
    return decimals
      ? `Use a point for decimals and no commas as thousands separators, like 1234.${"50".slice(0, decimals)}.`
      : `Use digits only, no commas or decimal point, like 1234.`;
  }
  if (tooPrecise) {
    return decimals
      ? `${unit} takes ${most}: the smallest amount is 0.${"0".repeat(decimals - 1)}1.`
      : `${unit} takes no decimals: enter a whole number, like 1234.`;
  }
  if (/^-?[\d.]+$/.test(typed) && (typed.startsWith("-") || !/[1-9]/.test(typed))) return "Enter an amount above 0.";
  // A coin's amount is read strictly (a currency's takes them): 012 is refused, and a buyer cannot see why.
  if (/^0\d+(\.\d+)?$/.test(typed)) return `Leave out the zeros in front: ${typed.replace(/^0+(?=\d)/, "")}.`;
  return `Enter an amount above 0. ${amountFormat(decimals)}`;
}

/**
 * What a buyer is told when the shop's provider takes their currency in coarser steps than its minor unit (Stripe
 * takes MGA in whole ariary): a whole amount, or a multiple of `step` minor units. The provider is not named: it is
 * the shop's set-up, and the buyer only needs the amount to type.
 */
export function amountStepProblem(currency: string, step: number): string {
  if (step === 10 ** currencyExponent(currency)) return `Enter a whole amount of ${currency}, such as 10.`;
  return `Round the amount to a multiple of ${formatDecimal(step, currency)} ${currency}, such as ` +
    `${formatDecimal(step * 1000, currency)}.`;
}

/** Above a page whose fields are marked wrong. */
export const INVALID_FIELDS_MESSAGE = "Please check the fields marked below.";

function invalid(fields: Record<string, string>) {
  return new BuyerInputError(INVALID_FIELDS_MESSAGE, fields);
}

/**
 * The shop as init-payment judges a form's return URLs: our own result pages
 * are always a permitted destination, whatever hosts the shop limits its own
 * URLs to.
 */
function formShop(shop: Shop, publicBaseUrl: string): Shop {
  if (shop.allowedHosts.length === 0) return shop;
  return { ...shop, allowedHosts: [...shop.allowedHosts, new URL(publicBaseUrl).hostname] };
}

async function fiatAmount(
  ctx: AppContext,
  shop: Shop,
  form: FiatForm,
  input: BuyerInput,
  fields: Record<string, string>,
): Promise<{ amount: number; currency: string } | null> {
  let currency = form.currency;
  if (currency === null) {
    const picked = (input.currency ?? "").trim().toUpperCase();
    if (!(await currencyChoicesFor(ctx, shop)).includes(picked)) {
      fields.currency = "Pick a currency from the list.";
      if (form.amount === null && !(input.amount ?? "").trim()) fields.amount = "Enter an amount.";
      return null;
    }
    currency = picked;
  }
  if (form.amount !== null) return { amount: form.amount, currency };
  const typed = typedAmount(input);
  const amount = typed ? parseAmount(typed, currency) : null;
  const max = ctx.config.maxAmount;
  // Too large whether or not it parses: past 15 digits (or as 1e30) it does not, and is no less too large.
  if (amount === null ? typedAmountAbove(typed, currency, max) : amount > max) {
    // Written as the field takes it (no thousands separators): "1,000,000.00" would be refused if typed back.
    fields.amount = `That is too large: the most this form takes is ${formatDecimal(max, currency)} ${currency}.`;
    return null;
  }
  if (amount === null) {
    fields.amount = typed ? amountProblem(typed, currencyExponent(currency), currency) : "Enter an amount.";
    return null;
  }
  return { amount, currency };
}

/** More whole digits (zeros in front aside) than an invoice reads: too large for any coin. */
const TOO_MANY_WHOLE_DIGITS = new RegExp(`^0*[1-9]\\d{${MAX_WHOLE_DIGITS},}(\\.\\d*)?$`);

function cryptoAmount(
  form: CryptoForm,
  input: BuyerInput,
  fields: Record<string, string>,
): { choice: CoinChoice; units: string } | null {
  const offered = coinChoicesFor(form);
  const choice = form.coin !== null && form.network !== null
    ? offered[0]
    : offered.find((c) => coinChoiceValue(c) === (input.coin ?? "").trim());
  if (!choice) {
    fields.coin = "Pick a coin from the list.";
    if (form.amount === null && !(input.amount ?? "").trim()) fields.amount = "Enter an amount.";
    return null;
  }
  if (form.amount !== null) return { choice, units: form.amount };
  const typed = typedAmount(input);
  const units = typed ? parseCryptoAmount(typed, choice.decimals) : null;
  if (units === null) {
    // A coin has no largest amount but the digits an invoice reads; more is too large, not "no amount".
    fields.amount = TOO_MANY_WHOLE_DIGITS.test(typed)
      ? `That is too large: an amount of ${choice.coin} has at most ${MAX_WHOLE_DIGITS} digits before the point.`
      : typed
      ? amountProblem(typed, choice.decimals, choice.coin)
      : "Enter an amount.";
    return null;
  }
  return { choice, units };
}
