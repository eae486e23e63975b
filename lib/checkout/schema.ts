import { z } from "zod";
import { MAX_URL_LENGTH } from "../relay/url_guard.ts";
import { currencyCode, type CurrencyCodes, EVEN_AFTER_OTHER_FAILURES, text, wholeSeconds } from "../validation.ts";
import { MAX_EXPIRES_IN_S, MIN_EXPIRES_IN_S, minorAmount } from "../payments/schema.ts";

/** More lines than any checkout shows; bounds what one request makes us add up and store. */
export const MAX_LINE_ITEMS = 100;
export const MAX_QUANTITY = 10_000;

const schemas = new Map<string, ReturnType<typeof buildSessionSchema>>();

/**
 * The body of POST /api/v1/checkout/sessions (seed 003's names); built once per maximum amount. `codes` "stored" also
 * reads a currency only stored sessions may hold (see currencyCode).
 */
export function checkoutSessionSchema(maxAmount: number, codes: CurrencyCodes = "taken") {
  const key = `${codes} ${maxAmount}`;
  let schema = schemas.get(key);
  if (!schema) schemas.set(key, schema = buildSessionSchema(maxAmount, codes));
  return schema;
}

function buildSessionSchema(maxAmount: number, codes: CurrencyCodes) {
  const amount = minorAmount(maxAmount);
  const lineItem = z.strictObject({
    name: text(1, 200).describe("What the buyer sees on the line."),
    unitAmount: amount.describe("Price of one, in the currency's minor unit."),
    // The bound first: a number past the safe integers would otherwise be told the safe integers' limit.
    quantity: z.number().max(MAX_QUANTITY, `must be at most ${MAX_QUANTITY}`).int().min(1),
  });
  const lineItemList = z.array(lineItem).min(1).max(MAX_LINE_ITEMS);
  return z.strictObject({
    amount: amount.optional().describe(
      "Integer amount in the currency's minor unit. Give it, lineItems, or both (then they must agree).",
    ),
    lineItems: lineItemList.optional().describe(
      "The lines of the order; their unitAmount × quantity add up to the amount.",
    ),
    currency: currencyCode(codes).describe(
      "ISO 4217 code, case-insensitive; no fund, metal or test codes (BOV, XAU, XTS...).",
    ),
    customerEmail: z.email().max(254).describe("The buyer's email."),
    customerName: text(1, 200).optional().describe("The buyer's name."),
    id: text(1, 64).optional().describe(
      "The shop's own order id; unique per shop. Makes the request idempotent and turns postbacks on.",
    ),
    description: text(1, 500).optional().describe("Shown to the buyer above the pay button."),
    postbackUrl: z.string().min(1).max(MAX_URL_LENGTH).meta({ format: "uri" }).optional().describe(
      "Where the signed postback goes; defaults to the shop's, and required with `id` when the shop has no default. " +
        "Only sessions with `id` get postbacks.",
    ),
    expiresIn: wholeSeconds(MIN_EXPIRES_IN_S, MAX_EXPIRES_IN_S).optional().describe(
      "Seconds the session stays open for the buyer (60 to 2592000). Default 86400 (a day).",
    ),
  }).superRefine((b, ctx) => {
    if (b.amount === undefined && b.lineItems === undefined) {
      ctx.addIssue({ code: "custom", path: ["amount"], message: "give amount or lineItems" });
      return;
    }
    // Judged also when another field failed (EVEN_AFTER_OTHER_FAILURES): the sum only of valid lines and amount.
    const { amount: given, lineItems } = b as { amount?: unknown; lineItems?: unknown };
    // Only a list that is valid as a whole (its items, and between 1 and MAX_LINE_ITEMS of them) is added up.
    if (!lineItemList.safeParse(lineItems).success) return;
    // Integer minor units throughout: each product and the running sum stay exact (far below 2^53).
    let sum = 0;
    for (const item of lineItems as z.output<typeof lineItem>[]) {
      sum += item.unitAmount * item.quantity;
      if (sum > maxAmount) {
        ctx.addIssue({ code: "custom", path: ["lineItems"], message: `add up to more than ${maxAmount}` });
        return;
      }
    }
    if (amount.safeParse(given).success && given !== sum) {
      ctx.addIssue({ code: "custom", path: ["amount"], message: `is ${given} but the line items add up to ${sum}` });
    }
  }, EVEN_AFTER_OTHER_FAILURES);
}

export type CheckoutSessionBody = z.output<ReturnType<typeof buildSessionSchema>>;

/** The amount a valid body asks for: its amount, or what its line items add up to. */
export function sessionAmount(b: CheckoutSessionBody): number {
  return b.amount ?? b.lineItems!.reduce((sum, item) => sum + item.unitAmount * item.quantity, 0);
}
