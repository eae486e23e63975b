import type { PaymentStatus } from "../payments/status.ts";

/**
 * Refund statuses and the moves between them, as data (like
 * lib/payments/status.ts for payments). A refund is stored `pending` with its
 * amount reserved on the payment before the provider is asked; it settles once,
 * unless the provider reverses a success.
 */
export const REFUND_STATUSES = ["pending", "succeeded", "failed"] as const;

export type RefundStatus = typeof REFUND_STATUSES[number];

interface RefundStatusRule {
  /** Where a refund in this status may move. */
  next: readonly RefundStatus[];
  /** The postback a shop gets when its refund enters this status. */
  postback: `refund.${string}` | null;
  /** True when the refund's amount stays reserved (spent) on the payment. */
  holdsAmount: boolean;
}

export const REFUND_STATUS_RULES = {
  pending: { next: ["succeeded", "failed"], postback: null, holdsAmount: true },
  // The provider may reverse a refund that succeeded (Stripe: the buyer's card was closed, so the money went back to
  // the merchant's balance): the buyer never got it, so it fails, and its amount is given back to the payment.
  succeeded: { next: ["failed"], postback: "refund.succeeded", holdsAmount: true },
  // A failed refund gives its amount back to what is left to refund.
  failed: { next: [], postback: "refund.failed", holdsAmount: false },
} as const satisfies Record<RefundStatus, RefundStatusRule>;

export type RefundPostbackType = NonNullable<typeof REFUND_STATUS_RULES[RefundStatus]["postback"]>;
export const REFUND_POSTBACK_TYPES = [
  ...new Set(REFUND_STATUSES.map((s) => REFUND_STATUS_RULES[s].postback).filter((t) => t !== null)),
] as RefundPostbackType[];

/** True when the table allows a refund in `from` to move to `to`. */
export function canMoveRefund(from: RefundStatus, to: RefundStatus): boolean {
  return (REFUND_STATUS_RULES[from].next as readonly RefundStatus[]).includes(to);
}

/** The postback a shop receives when a refund enters this status, if any. */
export function refundPostbackType(status: RefundStatus): RefundPostbackType | null {
  return REFUND_STATUS_RULES[status].postback;
}

/** True when money of a payment in this status can be given back. */
export function isRefundable(status: PaymentStatus): boolean {
  switch (status) {
    case "succeeded":
    case "partially_refunded":
      return true;
    case "pending":
    case "failed":
    case "expired":
    case "cancelled":
    case "refunded":
      return false;
  }
}
