import { z } from "zod";
import { text } from "../validation.ts";

/** The body of `POST /api/v1/payments/{id}/refunds`. Unknown fields are rejected. */
export const refundRequestSchema = z.strictObject({
  amount: z.number().int().positive().optional().describe(
    "Minor units of the payment's currency; defaults to all that is left to refund.",
  ),
  reason: text(1, 500).optional().describe("Why, for your records and ours; sent back in the refund."),
  id: text(1, 64).optional().describe(
    "Your own refund reference; unique per shop. Retrying with it (and the same body) answers the same refund.",
  ),
});

export type RefundRequest = z.output<typeof refundRequestSchema>;
