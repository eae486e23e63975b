import { z } from "zod";
import { ValidationError } from "../errors.ts";
import { currencyCode, heading, text } from "../validation.ts";
import { FORM_KINDS } from "./types.ts";
import { MAX_URL_LENGTH } from "../relay/url_guard.ts";
import { type CoinChoice, findCoinChoice, parseCryptoAmount } from "./crypto.ts";

export const MAX_TITLE_LENGTH = 120;
export const MAX_DESCRIPTION_LENGTH = 1000;

const Currency = currencyCode();

/**
 * The body of `POST /api/v1/forms` (the console and the portal build the same
 * object from their HTML fields). Every value given is fixed for the buyer;
 * every one left out is the buyer's to fill. The rules that tie fields
 * together (a fixed amount needs its currency or coin) are in `formRuleProblems`.
 */
export function formRequestSchema(maxAmount: number) {
  let schema = schemas.get(maxAmount);
  if (!schema) schemas.set(maxAmount, schema = buildFormRequestSchema(maxAmount));
  return schema;
}

const schemas = new Map<number, ReturnType<typeof buildFormRequestSchema>>();

function buildFormRequestSchema(maxAmount: number) {
  return z.strictObject({
    kind: z.enum(FORM_KINDS).describe("`fiat`: the buyer pays by card through the provider. `crypto`: an invoice."),
    title: heading(MAX_TITLE_LENGTH).describe('What the buyer reads as the heading, e.g. "Support our shelter".'),
    description: text(1, MAX_DESCRIPTION_LENGTH).optional().describe("A paragraph under the title."),
    amount: z.union([
      z.int().positive().max(maxAmount),
      z.string().min(1).max(40),
    ], {
      error: `must be whole minor units from 1 to ${maxAmount} (fiat) or a decimal string such as "12.50" (crypto)`,
    }).optional().describe(
      "Fixed amount. Fiat: integer minor units of `currency` (1000 with EUR is 10.00 EUR). Crypto: a decimal " +
        'string with at most the coin\'s decimals ("12.50"). Leave it out and the buyer types it (a donation).',
    ),
    currency: Currency.optional().describe(
      "Fiat only: ISO 4217 code. Leave it out and the buyer picks one of your shop's currencies.",
    ),
    coin: z.string().min(1).max(16).optional().describe("Crypto only: e.g. `USDT` (see GET /api/v1/options)."),
    network: z.string().min(1).max(32).optional().describe("Crypto only: e.g. `tron` (see GET /api/v1/options)."),
    returnUrl: z.string().max(MAX_URL_LENGTH).optional().describe(
      "Your page the buyer goes back to after the form: its thank-you and try-again pages, and a crypto form's " +
        "invoice page, link to it (named after your shop). https, on your allowed hosts. Without it they have no " +
        "way back.",
    ),
  });
}

export type FormRequest = z.output<ReturnType<typeof buildFormRequestSchema>>;

/** A checked request, with a crypto amount in base units (the return URL is judged with the shop, in mod.ts). */
export type CheckedFormRequest =
  & { title: string; description: string | null; returnUrl: string | null }
  & (
    | { kind: "fiat"; amount: number | null; currency: string | null }
    | { kind: "crypto"; coin: string | null; network: string | null; amount: string | null }
  );

/**
 * The rules between a form's fields, by field: none when they hold. `b` may be a body the schema refused (its values
 * anything); `refused` names the fields it refused, whose rules are not judged on what was sent, only on whether it
 * was sent. Without a valid kind there is nothing to judge: every rule depends on it.
 */
export function formRuleProblems(
  b: { [K in keyof FormRequest]?: unknown },
  refused: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const fields: Record<string, string> = Object.create(null);
  const valid = (field: keyof FormRequest) => b[field] !== undefined && !(field in refused);
  if (b.kind === "fiat" && !("kind" in refused)) {
    if (b.coin !== undefined) fields.coin = "is only for crypto forms";
    if (b.network !== undefined) fields.network = "is only for crypto forms";
    if (valid("amount") && typeof b.amount === "string") {
      // "1000" in quotes: told it must be a number, as init-payment's amount is.
      fields.amount = "must be a number for a fiat form (a JSON number of minor units of currency, such as 1000), " +
        "not a string";
    } else if (b.amount !== undefined && b.currency === undefined) {
      fields.currency = "is required with a fixed amount (the amount is in minor units of this currency)";
    }
    return fields;
  }
  if (b.kind !== "crypto" || "kind" in refused) return fields;
  if (b.currency !== undefined) fields.currency = "is only for fiat forms; a crypto form has a coin and a network";
  const coin = valid("coin") ? (b.coin as string).toUpperCase() : undefined;
  const network = valid("network") ? (b.network as string).toLowerCase() : undefined;
  let choice: CoinChoice | undefined;
  if (coin !== undefined && !findCoinChoice(coin)) fields.coin = "is not a coin we take (see GET /api/v1/options)";
  if (network !== undefined && !findCoinChoice(undefined, network)) {
    fields.network = "is not a network we take (see GET /api/v1/options)";
  }
  if (coin !== undefined && network !== undefined && !fields.coin && !fields.network) {
    choice = findCoinChoice(coin, network);
    if (!choice) fields.network = `${coin} is not taken on ${network}`;
  }
  if (valid("amount")) {
    // What is missing for a fixed amount: a coin given but refused is named already, and is not missing.
    const missing = [b.coin === undefined && "a coin", b.network === undefined && "a network"].filter(Boolean);
    if (typeof b.amount !== "string") fields.amount = 'must be a decimal string for a crypto form, e.g. "12.50"';
    else if (missing.length) {
      fields.amount = `needs ${missing.join(" and ")}: a fixed amount is in a fixed coin on a fixed network`;
    } else if (choice) {
      const units = parseCryptoAmount(b.amount, choice.decimals);
      if (units === null) {
        fields.amount = `must be a decimal above 0 with at most ${choice.decimals} decimals, e.g. "12.50"`;
      }
    }
  }
  return fields;
}

/**
 * A request the schema took, checked by the rules between its fields (formRuleProblems); throws one ValidationError
 * naming each bad field, with `others` (the problems of its return URL, judged with the shop).
 */
export function checkFormRequest(b: FormRequest, others: Record<string, string> = {}): CheckedFormRequest {
  const fields = { ...formRuleProblems(b), ...others };
  if (Object.keys(fields).length) throw new ValidationError("The request is invalid.", fields);
  const common = { title: b.title, description: b.description ?? null, returnUrl: b.returnUrl ?? null };
  if (b.kind === "fiat") {
    return { ...common, kind: "fiat", amount: (b.amount as number | undefined) ?? null, currency: b.currency ?? null };
  }
  const coin = b.coin?.toUpperCase() ?? null;
  const network = b.network?.toLowerCase() ?? null;
  const choice = coin !== null && network !== null ? findCoinChoice(coin, network) : undefined;
  const amount = typeof b.amount === "string" && choice ? parseCryptoAmount(b.amount, choice.decimals) : null;
  return { ...common, kind: "crypto", coin, network, amount };
}
