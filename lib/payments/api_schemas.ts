import { z } from "zod";
import {
  PAYMENT_POSTBACK_TYPES,
  PAYMENT_STATUSES,
  type PaymentPostbackType,
  type PaymentStatus,
  postbackEventType,
} from "./status.ts";

/**
 * The shapes of what the API answers, as zod schemas, so the OpenAPI document
 * (lib/docs/openapi.ts) is generated rather than written by hand. The request
 * side is `initPaymentSchema` in ./schema.ts, the one the handler validates
 * with. tests/docs_test.ts checks real answers against these schemas, so they
 * cannot drift from the handlers silently.
 */

const isoTime = z.iso.datetime().describe("ISO 8601 time in UTC.");

export const PaymentStatusSchema = z.enum(PAYMENT_STATUSES).describe(
  "pending: waiting for the buyer; succeeded, failed: settled; expired, cancelled: we stopped waiting, but money " +
    "the provider confirms later still makes them succeeded (with late: true); partially_refunded, refunded: " +
    "some or all of a succeeded payment was given back (see refundedAmount).",
);

export const InitPaymentResponse = z.object({
  status: z.literal("success"),
  id: z.string().describe("Our payment id (pay_...)."),
  url: z.url().describe("Our wrapper URL: send the buyer here."),
});

export const PaymentView = z.object({
  id: z.string().describe("Our payment id (pay_...)."),
  shopTxId: z.string().nullable().describe("Your `id` from init-payment, or null."),
  status: PaymentStatusSchema,
  amount: z.int().positive().describe("Minor units of `currency`."),
  currency: z.string().length(3).describe("ISO 4217 code, upper case."),
  type: z.enum(["fiat", "crypto"]),
  email: z.string(),
  name: z.string().nullable(),
  url: z.url().describe("Our wrapper URL for the buyer."),
  successUrl: z.string().meta({ format: "uri" }),
  errorUrl: z.string().meta({ format: "uri" }),
  postbackUrl: z.string().meta({ format: "uri" }).nullable().describe(
    "Where this payment's postbacks go; null when none are sent: a payment created without `id` gets no postback.",
  ),
  createdAt: isoTime,
  updatedAt: isoTime,
  finalizedAt: isoTime.nullable().describe("When the payment settled; null while it is open."),
  refundedAmount: z.int().nonnegative().describe("The sum of its succeeded refunds, in minor units (0 if none)."),
  expiresAt: isoTime.nullable().describe(
    "When a pending payment expires (init-payment's expiresIn); null for payments made before expiry existed.",
  ),
  late: z.boolean().describe(
    "True when the payment succeeded after it had expired or been cancelled: ship the order or refund it.",
  ),
});

export const PaymentResponse = z.object({
  status: z.literal("success"),
  payment: PaymentView,
});

/** Every error code the API and the provider webhook answer with, its HTTP status and when it happens. */
export const API_ERRORS = [
  { code: "invalid_request", status: 400, when: "Bad JSON or fields; `fields` names each problem." },
  { code: "unauthorized", status: 401, when: "Missing, unknown or revoked API key." },
  { code: "shop_disabled", status: 403, when: "The shop is disabled." },
  {
    code: "publishable_key_not_allowed",
    status: 403,
    when: "A publishable key (apay_pk_) on a route other than the checkout config and mounting a session.",
  },
  { code: "not_found", status: 404, when: "Unknown payment (or another shop's) or unknown endpoint." },
  { code: "body_unreadable", status: 400, when: "The connection broke while the body was being sent." },
  { code: "method_not_allowed", status: 405, when: "A method no route serves (TRACE, TRACK, ...)." },
  { code: "request_timeout", status: 408, when: "The body did not arrive within 10 seconds." },
  { code: "body_too_large", status: 413, when: "Body over 16 KiB (64 KiB for provider webhooks)." },
  { code: "unsupported_media_type", status: 415, when: "Body not `application/json`." },
  {
    code: "payment_not_cancellable",
    status: 409,
    when: "Cancel: the payment is not pending (it succeeded, failed, expired or was cancelled already).",
  },
  {
    code: "payment_not_refundable",
    status: 409,
    when: "Refund: the payment is not succeeded or partially_refunded (still pending, failed, or refunded in full).",
  },
  {
    code: "invoice_not_cancellable",
    status: 409,
    when: "Invoice cancel: it is paid in full (payment_accepted) or already finished or expired.",
  },
  { code: "idempotency_mismatch", status: 422, when: "`id` or `Idempotency-Key` reused with another body." },
  {
    code: "no_route",
    status: 422,
    when: "Init: the shop's routes have no account that takes this currency and type (see GET /api/v1/options).",
  },
  {
    code: "amount_not_accepted",
    status: 422,
    when: "Init: the provider the payment goes to cannot take this amount exactly in its currency " +
      "(Stripe: MGA in whole ariary, BHD, JOD, KWD, OMR and TND in steps of 10 minor units); `fields.amount` says so.",
  },
  {
    code: "refund_exceeds_payment",
    status: 422,
    when: "Refund: more than is left of the payment (pending refunds count as spent).",
  },
  { code: "rate_limited", status: 429, when: "Too many requests; see `Retry-After`." },
  {
    code: "invoices_unavailable",
    status: 503,
    when: "Invoices: this server has no chain service set up (CHAIN_* settings next to a real provider).",
  },
  {
    code: "dns_timeout",
    status: 503,
    when:
      "Init, checkout sessions, invoices: the lookup of the postbackUrl's host got no answer within 5 s; retry after Retry-After.",
  },
  { code: "internal_error", status: 500, when: "Our fault; logged with the `requestId` in the answer." },
  { code: "provider_error", status: 502, when: "The provider failed." },
  { code: "provider_timeout", status: 504, when: "The provider did not answer in time." },
  { code: "invalid_webhook", status: 401, when: "Provider webhook: bad or stale signature, or malformed body." },
  {
    code: "invalid_webhook",
    status: 400,
    when:
      "Provider webhook: its reference or account is not the payment's (news that another payment the provider made for it took no money, still open, expired or failed, is answered 200).",
  },
  {
    code: "conflict",
    status: 409,
    when: "The payment is busy (refunds: with other refunds; provider webhook: being created); retry.",
  },
  {
    code: "status_not_confirmed",
    status: 409,
    when: "Provider webhook: the provider's status API does not show the claimed status yet; the provider retries.",
  },
  {
    code: "overloaded",
    status: 503,
    when: "Provider webhook: too many at once (WEBHOOKS_IN_FLIGHT_MAX); the provider retries after Retry-After.",
  },
] as const;

export type ApiErrorCode = typeof API_ERRORS[number]["code"];

const ERROR_CODES = [...new Set(API_ERRORS.map((e) => e.code))] as [ApiErrorCode, ...ApiErrorCode[]];

export const ErrorResponse = z.object({
  status: z.literal("error"),
  error: z.object({
    code: z.enum(ERROR_CODES),
    message: z.string().describe("For people; may change. Match on `code`."),
    fields: z.record(z.string(), z.string()).optional().describe("Per-field problems, for invalid_request."),
    requestId: z.string().optional().describe("On internal_error: quote it when you contact us."),
  }),
});

/** Every postback type, derived from the status table (lib/payments/status.ts). */
export const POSTBACK_EVENT_TYPES = PAYMENT_POSTBACK_TYPES as [PaymentPostbackType, ...PaymentPostbackType[]];
/** The statuses a payment postback can report: those whose entry sends one. */
const POSTBACK_STATUSES = PAYMENT_STATUSES.filter((s) => postbackEventType(s) !== null) as [
  PaymentStatus,
  ...PaymentStatus[],
];

/** The body of a postback to the shop (Standard Webhooks payload: type, timestamp, data). */
export const PostbackBody = z.object({
  type: z.enum(POSTBACK_EVENT_TYPES),
  timestamp: isoTime.describe(
    "When the postback was created (the status change); the same on every retry. Postbacks are not ordered: apply " +
      "one only if its timestamp is later than the last one you applied for the same payment.",
  ),
  data: z.object({
    id: z.string().describe("Your `id` from init-payment (postbacks are sent only for payments with one)."),
    paymentId: z.string(),
    status: z.enum(POSTBACK_STATUSES),
    amount: z.int().positive(),
    currency: z.string().length(3),
    type: z.enum(["fiat", "crypto"]),
    email: z.string(),
    createdAt: isoTime,
    finalizedAt: isoTime,
    late: z.boolean().describe(
      "True on `payment.succeeded` when the money came after the payment expired or was cancelled: ship or refund.",
    ),
    checkoutSessionId: z.string().nullable().describe(
      "The embedded checkout session (cs_...) the payment was made for; null for a redirect payment.",
    ),
  }),
});

/** What a provider's webhook did, as its 200 says (lib/payments/webhook.ts answers one of these). */
export const WEBHOOK_OUTCOMES = ["applied", "duplicate", "unchanged", "orphan_handled"] as const;

export const ProviderWebhookResponse = z.object({
  status: z.literal("success"),
  outcome: z.enum(WEBHOOK_OUTCOMES).describe(
    "applied: the status changed; duplicate: this event was handled before; unchanged: nothing new; orphan_handled: " +
      "news of money on a payment no stored payment names, which an operator has marked handled.",
  ),
});
