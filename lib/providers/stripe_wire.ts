/**
 * What we use of Stripe's API (Checkout Sessions on a connected account) and
 * how its statuses map to ours. The SDK brings the full types; these unions
 * are the values we map, so that a new one fails to compile here.
 */
import type { ProviderStatus } from "./types.ts";
import type { RefundStatus } from "../refunds/status.ts";
import { currencyExponent } from "../money.ts";

/**
 * Stripe's decimals for a currency, where they are not ISO 4217's (https://docs.stripe.com/currencies): Stripe's API
 * keeps ISK with two decimals (an amount of 100 is 1 króna, and it must be whole krónur) and takes MGA with none.
 * Sent as ISO's minor units, a 1,000 ISK order charged 10 ISK, and a 1,000.00 MGA one 100,000 MGA.
 */
const STRIPE_DECIMALS: Readonly<Record<string, number>> = { ISK: 2, MGA: 0 };

/**
 * The step, in ISO 4217 minor units (ours), of the amounts Stripe takes in a currency: 1, or 10 ** n where Stripe has n
 * decimals fewer than ISO (MGA: 100, whole ariary), or 10 for a three-decimal currency, whose last digit Stripe wants 0
 * ("to ensure compatibility with Stripe's payments partners"). The one rule: toStripeAmount checks amounts with it, and
 * what shops and buyers are offered and shown (forms' currencies, amount hints) is derived from it.
 */
export function stripeAmountStep(currency: string): number {
  const iso = currencyExponent(currency);
  const stripe = STRIPE_DECIMALS[currency] ?? iso;
  if (stripe < iso) return 10 ** (iso - stripe);
  return iso === 3 ? 10 : 1;
}

/**
 * An amount in ISO 4217 minor units (ours) as Stripe's API takes it, or why Stripe cannot take it exactly (it is not a
 * multiple of stripeAmountStep): fewer decimals at Stripe than in ISO (MGA), or a three-decimal currency's amount whose
 * last digit is not 0.
 */
export function toStripeAmount(
  minor: number,
  currency: string,
): { amount: number } | { problem: string; step: number } {
  const iso = currencyExponent(currency);
  const stripe = STRIPE_DECIMALS[currency] ?? iso;
  const step = stripeAmountStep(currency);
  if (minor % step !== 0) {
    return {
      problem: iso === 3 && stripe === iso
        ? `must be a multiple of 10 for ${currency} with this payment's provider (Stripe)`
        : `must be in whole ${currency} (a multiple of ${step}) with this payment's provider (Stripe)`,
      step,
    };
  }
  return { amount: stripe >= iso ? minor * 10 ** (stripe - iso) : minor / step };
}

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
  // Delayed payment methods (bank debits): the buyer finished and the money is on its way, or it failed: the session
  // cannot tell (its payment_status has no "failed", and it stays complete and unpaid after a failure). Its payment
  // intent can (stripeIntentToOurs), so the adapter reads that for this state.
  complete_unpaid: "pending",
  complete_no_payment_required: "succeeded",
  expired: "expired",
} as const satisfies Record<StripeSessionState, ProviderStatus>;

/**
 * A complete but unpaid session's PaymentIntent, as far as the money goes: still on its way (`processing`, or any
 * status that can still lead to a charge), failed (the debit came back: the intent is back in
 * `requires_payment_method`, with the reason in `last_payment_error`), or canceled (by the merchant, or by Stripe once
 * it gave up on it). Checkout does not let the buyer try again on a complete session, so a failure is final.
 */
export type StripeIntentState = "in_flight" | "failed" | "canceled";

export const stripeIntentToOurs = {
  in_flight: "pending",
  failed: "failed",
  canceled: "failed",
} as const satisfies Record<StripeIntentState, ProviderStatus>;

export function intentState(pi: { status: string; last_payment_error?: unknown } | null): StripeIntentState {
  if (pi?.status === "canceled") return "canceled";
  // requires_payment_method without an error is an intent no one tried to pay yet: not a failure.
  if (pi?.status === "requires_payment_method" && pi.last_payment_error) return "failed";
  return "in_flight";
}

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
