import { z } from "zod";
import { MAX_URL_LENGTH } from "../relay/url_guard.ts";
import {
  currencyCode,
  type CurrencyCodes,
  EVEN_AFTER_OTHER_FAILURES,
  notANumber,
  text,
  wholeSeconds,
} from "../validation.ts";

/**
 * The init-payment body, as the original spec names its fields. Amounts are
 * integer minor units. `sussessUrl` is the spec's spelling of `successUrl`;
 * either is accepted, not both. Unknown fields are rejected. `codes` "stored"
 * also reads a currency only stored payments may hold (see currencyCode).
 */
export function initPaymentSchema(maxAmount: number, codes: CurrencyCodes = "taken") {
  // Building a zod schema is far costlier than using one: build once per maximum, not per request.
  const key = `${codes} ${maxAmount}`;
  let schema = schemas.get(key);
  if (!schema) schemas.set(key, schema = buildInitPaymentSchema(maxAmount, codes));
  return schema;
}

export const MIN_EXPIRES_IN_S = 60;
export const MAX_EXPIRES_IN_S = 2_592_000;

const schemas = new Map<string, ReturnType<typeof buildInitPaymentSchema>>();

/**
 * An amount in integer minor units from 1 to `maxAmount`, refused in those words. Without `maxAmount` (a refund,
 * bounded by what is left of its payment) only the safe integers bound it.
 */
export function minorAmount(maxAmount?: number) {
  const unit = "must be a whole number of the currency's minor unit (1000 with EUR is 10.00 EUR)";
  const most = `must be at most ${maxAmount ?? Number.MAX_SAFE_INTEGER} minor units`;
  // A number past the safe integers fails the whole-number check as too big: it is the maximum it breaks.
  const amount = z.number({
    error: (issue) => notANumber(issue.input, { of: "the currency's minor units", example: 1000 }),
  }).int({ error: (issue) => (issue.code === "too_big" ? most : unit) }).positive("must be more than 0");
  return maxAmount === undefined ? amount : amount.max(maxAmount, most);
}

function buildInitPaymentSchema(maxAmount: number, codes: CurrencyCodes) {
  const url = z.string().min(1).max(MAX_URL_LENGTH).meta({ format: "uri" });
  return z.strictObject({
    id: text(1, 64).optional().describe(
      "The shop's own transaction id; unique per shop. Without it no postback is sent.",
    ),
    email: z.email().max(254).describe("The buyer's validated email."),
    name: text(1, 200).optional().describe("The buyer's name."),
    amount: minorAmount(maxAmount).describe("Integer amount in the currency's minor unit: 1000 with EUR is 10.00 EUR."),
    currency: currencyCode(codes).describe(
      "ISO 4217 code, case-insensitive; no fund, metal or test codes (BOV, XAU, XTS...).",
    ),
    // Optional without a schema default: generators mark a field with a default as required in their models.
    type: z.enum(["fiat", "crypto"]).optional().describe("`fiat` (when left out) or `crypto`."),
    successUrl: url.optional().describe("Where the buyer goes after paying."),
    sussessUrl: url.optional().describe("The original spec's spelling of successUrl."),
    errorUrl: url.describe("Where the buyer goes after a failed or cancelled payment."),
    postbackUrl: url.optional().describe(
      "Where the signed postback goes; defaults to the shop's, and required with `id` when the shop has no default. " +
        "Only payments with `id` get postbacks.",
    ),
    expiresIn: wholeSeconds(MIN_EXPIRES_IN_S, MAX_EXPIRES_IN_S).optional().describe(
      "Seconds the payment waits for the buyer (60 to 2592000, 30 days); then it expires. Default 86400 (a day).",
    ),
  }).superRefine((b, ctx) => {
    if (b.successUrl === undefined && b.sussessUrl === undefined) {
      ctx.addIssue({ code: "custom", path: ["successUrl"], message: "is required" });
    }
    if (b.successUrl !== undefined && b.sussessUrl !== undefined) {
      ctx.addIssue({ code: "custom", path: ["sussessUrl"], message: "give successUrl or sussessUrl, not both" });
    }
    // Only whether the two fields were sent: safe to ask whatever else failed.
  }, EVEN_AFTER_OTHER_FAILURES);
}

export type InitPaymentBody = z.output<ReturnType<typeof buildInitPaymentSchema>>;

/** The body a shop sends, normalized: the fields that decide whether a retry is the same request. */
export interface InitPaymentInput {
  shopTxId: string | null;
  email: string;
  name: string | null;
  amount: number;
  currency: string;
  type: "fiat" | "crypto";
  successUrl: string;
  errorUrl: string;
  postbackUrl: string | null;
  /** Only present when the shop sent it, so requests without it keep the fingerprint they always had. */
  expiresIn?: number;
}

export function normalizeInit(b: InitPaymentBody): InitPaymentInput {
  return {
    shopTxId: b.id ?? null,
    email: b.email,
    name: b.name ?? null,
    amount: b.amount,
    currency: b.currency,
    type: b.type ?? "fiat",
    successUrl: (b.successUrl ?? b.sussessUrl)!,
    errorUrl: b.errorUrl,
    postbackUrl: b.postbackUrl ?? null,
    ...(b.expiresIn !== undefined ? { expiresIn: b.expiresIn } : {}),
  };
}
