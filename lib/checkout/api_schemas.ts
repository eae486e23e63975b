import { z } from "zod";
import { PaymentStatusSchema } from "../payments/api_schemas.ts";

/** What the checkout routes answer (routes/api/v1/checkout.ts), for the OpenAPI document and the tests. */
const isoTime = z.iso.datetime().describe("ISO 8601 time in UTC.");

const LineItemView = z.object({
  name: z.string(),
  unitAmount: z.int().positive(),
  quantity: z.int().positive(),
});

export const SessionStatusSchema = z.enum(["open", "complete", "expired"]).describe(
  "open: not paid yet, and the money can still come (past expiresAt too, until the payment has expired at the " +
    "provider); complete: paid (refunds later do not change it); expired: expired, cancelled or declined.",
);

export const CheckoutConfigResponse = z.object({
  status: z.literal("success"),
  provider: z.enum(["bansky", "stripe"]).describe("The provider of the shop's default account."),
  providerName: z.string(),
  publishableKey: z.string().nullable().describe(
    "The publishable key the call was made with, or the shop's newest live one; null when it has none.",
  ),
  supportedCurrencies: z.array(z.string().length(3)),
  providerPublishableKey: z.string().nullable().optional().describe(
    "Stripe accounts only: the publishable key (pk_...) for Stripe.js; null when the account has none configured.",
  ),
  accountId: z.string().optional().describe("Stripe accounts only: the connected account (acct_...) for Stripe.js."),
});

export const CheckoutSessionCreatedResponse = z.object({
  status: z.literal("success"),
  sessionId: z.string().describe("cs_..."),
  clientSecret: z.string().describe(
    "Opens this session's checkout and nothing else; hand it only to the page that shows it. For a Stripe account it is Stripe's own (cs_..._secret_...), mounted with Stripe.js.",
  ),
  provider: z.enum(["bansky", "stripe"]).describe(
    "Who takes the payment: `stripe` sessions are mounted with Stripe.js, the others with our checkout.js.",
  ),
  amount: z.int().positive(),
  currency: z.string().length(3),
  expiresAt: isoTime,
});

export const CheckoutSessionView = z.object({
  id: z.string(),
  status: SessionStatusSchema,
  paymentId: z.string(),
  paymentStatus: PaymentStatusSchema,
  amount: z.int().positive(),
  currency: z.string().length(3),
  lineItems: z.array(LineItemView).nullable(),
  expiresAt: isoTime,
});

export const CheckoutConfirmResponse = z.object({ status: z.literal("success"), session: CheckoutSessionView });

export const CheckoutMountResponse = z.object({
  status: z.literal("success"),
  session: z.object({
    id: z.string(),
    status: SessionStatusSchema,
    amount: z.int().positive(),
    currency: z.string().length(3),
    lineItems: z.array(LineItemView).nullable(),
    description: z.string().nullable(),
    expiresAt: isoTime,
  }),
});

export const CheckoutConfirmRequest = z.strictObject({ sessionId: z.string().describe("The session's id (cs_...).") });
export const CheckoutMountRequest = z.strictObject({
  clientSecret: z.string().describe("The client secret your server was given for the session."),
});
