/**
 * Payment statuses and the only moves between them, as data. A payment is
 * stored once the provider has it, so it starts `pending`. Each row says where
 * a payment in that status may go next and what entering it causes (the
 * shop's postback, a stats count); `transition.ts` is the one place that
 * applies a move. A new status is one new row here, and every `switch` over
 * statuses (written without a default arm) fails to compile until it says
 * what the new status means there.
 */
export const PAYMENT_STATUSES = [
  "pending",
  "succeeded",
  "failed",
  "expired",
  "cancelled",
  "partially_refunded",
  "refunded",
] as const;

export type PaymentStatus = typeof PAYMENT_STATUSES[number];

/** The statuses a payment can be in once it left `pending`. */
export type SettledStatus = Exclude<PaymentStatus, "pending">;

interface StatusRule {
  /** Where a payment in this status may move. */
  next: readonly PaymentStatus[];
  /** The postback a shop gets when its payment enters this status (refund states: the refund's own postback). */
  postback: `payment.${string}` | null;
  /** Counted in the daily stats when entered; refunds are counted by their own rows, not by the payment's status. */
  counted: boolean;
}

export const STATUS_RULES = {
  pending: { next: ["succeeded", "failed", "expired", "cancelled"], postback: null, counted: false },
  succeeded: { next: ["partially_refunded", "refunded"], postback: "payment.succeeded", counted: true },
  failed: { next: [], postback: "payment.failed", counted: true },
  // The provider may still confirm money after we gave up on a payment: it is never hidden, so it can succeed late.
  expired: { next: ["succeeded"], postback: "payment.expired", counted: true },
  cancelled: { next: ["succeeded"], postback: "payment.cancelled", counted: true },
  // A refund the provider reverses after it succeeded gives its amount back: the payment moves back down, to
  // partially_refunded or succeeded. Moves within the paid statuses send no payment postback and count nothing
  // (transition.ts): the refund's own postback and counters say it.
  partially_refunded: { next: ["partially_refunded", "refunded", "succeeded"], postback: null, counted: false },
  refunded: { next: ["partially_refunded", "succeeded"], postback: null, counted: false },
} as const satisfies Record<PaymentStatus, StatusRule>;

/** Every postback type a payment's status move can send, derived from the table. */
export type PaymentPostbackType = NonNullable<typeof STATUS_RULES[PaymentStatus]["postback"]>;
export const PAYMENT_POSTBACK_TYPES = [
  ...new Set(PAYMENT_STATUSES.map((s) => STATUS_RULES[s].postback).filter((t) => t !== null)),
] as PaymentPostbackType[];

/**
 * Whether a payment's postback of type `newer` makes one of type `older` old news, by what they say, never by when
 * they were made (clocks of two servers differ): a late success's payment.succeeded after the payment.expired or
 * payment.cancelled it came after, the only move out of a settled status that sends a postback.
 */
export function supersedesPostback(newer: string, older: string): boolean {
  return newer === STATUS_RULES.succeeded.postback &&
    PAYMENT_STATUSES.some((s) => isLateSuccess(s, "succeeded") && STATUS_RULES[s].postback === older);
}

/** The statuses whose entry is counted in the daily stats, derived from the table. */
export const COUNTED_STATUSES = PAYMENT_STATUSES.filter((s) => STATUS_RULES[s].counted) as CountedStatus[];
export type CountedStatus = {
  [S in PaymentStatus]: typeof STATUS_RULES[S]["counted"] extends true ? S : never;
}[PaymentStatus];

/** True when the table allows a payment in `from` to move to `to`. */
export function canTransition(from: PaymentStatus, to: PaymentStatus): boolean {
  return (STATUS_RULES[from].next as readonly PaymentStatus[]).includes(to);
}

/**
 * True when news of the payment itself (its provider's status, by webhook or status check) may move it from `from` to
 * `to`: the table's moves but those within the paid statuses, which only its refunds and their reversals make (their
 * amounts say where it goes). The provider still calls a refunded payment paid: that is no news, and must not move a
 * partially_refunded or refunded payment back to succeeded with its refundedAmount kept.
 */
export function canProviderMove(from: PaymentStatus, to: PaymentStatus): boolean {
  return canTransition(from, to) && !(isPaid(from) && isPaid(to));
}

/** True while the payment waits for the buyer or the provider. */
export function isOpen(status: PaymentStatus): boolean {
  return status === "pending";
}

/** True for a success that comes after we gave up on the payment (expired or cancelled it). */
export function isLateSuccess(from: PaymentStatus, to: PaymentStatus): boolean {
  return to === "succeeded" && (from === "expired" || from === "cancelled");
}

/** True once the payment's money came: it succeeded, and may have been refunded since (refunds start from a success). */
export function isPaid(status: PaymentStatus): boolean {
  switch (status) {
    case "succeeded":
    case "partially_refunded":
    case "refunded":
      return true;
    case "pending":
    case "failed":
    case "expired":
    case "cancelled":
      return false;
  }
}

/** True when the status is one the stats count on entry. */
export function isCounted(status: PaymentStatus): status is CountedStatus {
  return STATUS_RULES[status].counted;
}

/** The postback event type a shop receives when a payment enters this status, if any. */
export function postbackEventType(status: PaymentStatus): PaymentPostbackType | null {
  return STATUS_RULES[status].postback;
}
