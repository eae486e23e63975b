import { z } from "zod";
import { REFUND_POSTBACK_TYPES, REFUND_STATUSES, type RefundPostbackType } from "./status.ts";
import { PaymentStatusSchema } from "../payments/api_schemas.ts";

/**
 * The shapes of the refund API's answers and postbacks, for the OpenAPI
 * document (lib/docs/openapi.ts); tests/refunds_test.ts checks real answers
 * and postbacks against them. The request is `refundRequestSchema` (schema.ts).
 */

const isoTime = z.iso.datetime().describe("ISO 8601 time in UTC.");

export const RefundStatusSchema = z.enum(REFUND_STATUSES).describe(
  "pending: asked, not settled yet (its amount counts as spent); succeeded: the money went back; failed: it did " +
    "not (the provider declined or refused it, or reversed it after it succeeded), and the amount can be refunded " +
    "again.",
);

export const RefundView = z.object({
  id: z.string().describe("Our refund id (re_...)."),
  paymentId: z.string().describe("Our payment id (pay_...)."),
  shopRefundId: z.string().nullable().describe("Your `id` from the refund request, or null."),
  amount: z.int().positive().describe("Minor units of `currency`."),
  currency: z.string().length(3).describe("The payment's currency."),
  status: RefundStatusSchema,
  reason: z.string().nullable().describe("Your `reason`, or null."),
  failureReason: z.string().nullable().describe("Why it failed, for people; null unless failed."),
  createdAt: isoTime,
  settledAt: isoTime.nullable().describe("When it succeeded or failed; null while pending."),
});

export const RefundResponse = z.object({ status: z.literal("success"), refund: RefundView });

export const RefundListResponse = z.object({
  status: z.literal("success"),
  refunds: z.array(RefundView).describe("Oldest first."),
});

/** The body of a refund postback (Standard Webhooks payload: type, timestamp, data). */
export const RefundPostbackBody = z.object({
  type: z.enum(REFUND_POSTBACK_TYPES as [RefundPostbackType, ...RefundPostbackType[]]),
  timestamp: isoTime.describe("When the postback was created; the same on every retry."),
  data: RefundView.extend({
    payment: z.object({
      id: z.string(),
      shopTxId: z.string().describe("Your `id` from init-payment (postbacks are sent only for payments with one)."),
      status: PaymentStatusSchema,
      amount: z.int().positive(),
      refundedAmount: z.int().nonnegative().describe(
        "The sum of the payment's succeeded refunds: this one included when it succeeded, taken out again when the " +
          "provider reversed it.",
      ),
    }).describe("Where the payment stands after this refund."),
  }),
});
