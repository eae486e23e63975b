import { z } from "zod";
import { text } from "../validation.ts";
import { minorAmount } from "../payments/schema.ts";

/** The body of `POST /api/v1/payments/{id}/refunds`. Unknown fields are rejected. */
export const refundRequestSchema = z.strictObject({
  // Told as init-payment's amount is ("1000" in quotes: a number, not a string); what is left to refund bounds it.
  amount: minorAmount().optional().describe(
    "Minor units of the payment's currency; defaults to all that is left to refund.",
  ),
  reason: text(1, 500).optional().describe("Why, for your records and ours; sent back in the refund."),
  id: text(1, 64).optional().describe(
    "Your own refund reference; unique per shop. Retrying with it (and the same body) answers the same refund.",
  ),
});

export type RefundRequest = z.output<typeof refundRequestSchema>;
