/**
 * What we use of Stripe's API (Checkout Sessions on a connected account) and
 * how its statuses map to ours. The SDK brings the full types; these unions
 * are the values we map, so that a new one fails to compile here.
 */
import type { ProviderStatus } from "./types.ts";
import type { RefundStatus } from "../refunds/status.ts";

/** A Checkout Session's `status` and `payment_status`, combined: what the session says about the money. */
export type StripeSessionState =
  | "open"
  | "complete_paid"
  | "complete_unpaid"
  | "complete_no_payment_required"
  | "expired";

export const stripeSessionToOurs = {
  open: "pending",
  complete_paid: "succeeded",
  // Delayed payment methods (bank debits): the buyer finished, the money is still on its way.
  complete_unpaid: "pending",
  complete_no_payment_required: "succeeded",
  expired: "expired",
} as const satisfies Record<StripeSessionState, ProviderStatus>;

export const STRIPE_REFUND_STATUSES = ["pending", "requires_action", "succeeded", "failed", "canceled"] as const;
export type StripeRefundStatus = typeof STRIPE_REFUND_STATUSES[number];

export const stripeRefundToOurs = {
  pending: "pending",
  requires_action: "pending",
  succeeded: "succeeded",
  failed: "failed",
  canceled: "failed",
} as const satisfies Record<StripeRefundStatus, RefundStatus>;

/** The session events that bring news of a payment, and what each claims. */
export const STRIPE_SESSION_EVENTS = {
  "checkout.session.completed": null,
  "checkout.session.async_payment_succeeded": "succeeded",
  "checkout.session.async_payment_failed": "failed",
  "checkout.session.expired": "expired",
} as const satisfies Record<string, ProviderStatus | null>;

/** The refund events we follow (a refund that settles after our call answered). */
export const STRIPE_REFUND_EVENTS = ["refund.created", "refund.updated", "refund.failed"] as const;

export function sessionState(s: { status: string | null; payment_status: string }): StripeSessionState {
  if (s.status === "complete") {
    return s.payment_status === "paid"
      ? "complete_paid"
      : s.payment_status === "no_payment_required"
      ? "complete_no_payment_required"
      : "complete_unpaid";
  }
  return s.status === "expired" ? "expired" : "open";
}

export function refundState(status: string | null): StripeRefundStatus {
  return (STRIPE_REFUND_STATUSES as readonly string[]).includes(status ?? "")
    ? status as StripeRefundStatus
    : "pending";
}
