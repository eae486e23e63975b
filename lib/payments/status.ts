/**
 * Payment statuses and the only moves between them. A payment is stored once
 * the provider has it, so it starts `pending`. Terminal
 * states never change, so a late or replayed webhook cannot move a payment
 * backwards. Refunds and crypto statuses slot in as new rows of the table.
 */
export type PaymentStatus = "pending" | "succeeded" | "failed" | "expired";

export const PAYMENT_STATUSES = [
  "pending",
  "succeeded",
  "failed",
  "expired",
] as const satisfies readonly PaymentStatus[];

const TRANSITIONS: Record<PaymentStatus, readonly PaymentStatus[]> = {
  pending: ["succeeded", "failed", "expired"],
  succeeded: [],
  failed: [],
  expired: [],
};

export function canTransition(from: PaymentStatus, to: PaymentStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isTerminal(status: PaymentStatus): boolean {
  switch (status) {
    case "pending":
      return false;
    case "succeeded":
    case "failed":
    case "expired":
      return true;
  }
}

/** The postback event type a shop receives when a payment reaches this status, if any. */
export function postbackEventType(status: PaymentStatus): string | null {
  switch (status) {
    case "pending":
      return null;
    case "succeeded":
    case "failed":
    case "expired":
      return `payment.${status}`;
  }
}
