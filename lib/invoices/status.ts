/**
 * Invoice statuses and the only moves between them, as data (like
 * lib/payments/status.ts for payments). Each row says where an invoice in that
 * status may go next, the postback entering it sends, and whether it still
 * holds its deposit address; `transition.ts` is the one place that applies a
 * move. Money is never hidden: a deposit after an invoice closed is recorded
 * on it (`late`) without a status change, and one the chain dropped stays on
 * record (`dropped`).
 */
export const INVOICE_STATUSES = [
  "waiting_for_deposit",
  "payment_confirmation",
  "partially_paid",
  "payment_accepted",
  "finished",
  "expired",
  "cancelled",
] as const;

export type InvoiceStatus = typeof INVOICE_STATUSES[number];

interface InvoiceStatusRule {
  /** Where an invoice in this status may move. */
  next: readonly InvoiceStatus[];
  /** The postback a shop gets when its invoice moves into this status. */
  postback: `invoice.${string}` | null;
  /** True while the invoice holds its deposit address (the pool gives it to nobody else). */
  open: boolean;
  /** True when a merchant's cancel is allowed from here. */
  cancellable: boolean;
}

export const INVOICE_STATUS_RULES = {
  // A poll may find a deposit already confirmed (a lost webhook), so every forward step is one move. The
  // postback is for coming back here (the first entry is the shop's own request, answered in full).
  waiting_for_deposit: {
    next: ["payment_confirmation", "partially_paid", "payment_accepted", "finished", "expired", "cancelled"],
    postback: "invoice.waiting_for_deposit",
    open: true,
    cancellable: true,
  },
  // Back to waiting when every deposit on its way was dropped from the chain (replaced, double-spent, evicted): the
  // buyer is asked to pay again, and the invoice expires at expiresAt (at once when that has passed).
  payment_confirmation: {
    next: ["waiting_for_deposit", "partially_paid", "payment_accepted", "finished", "expired", "cancelled"],
    postback: "invoice.payment_confirmation",
    open: true,
    cancellable: true,
  },
  // A further deposit seen on a partly paid invoice waits for its confirmations again. Back to waiting (or expired)
  // only if the chain no longer shows what it received (a reorganisation).
  partially_paid: {
    next: ["waiting_for_deposit", "payment_confirmation", "payment_accepted", "finished", "expired", "cancelled"],
    postback: "invoice.partially_paid",
    open: true,
    cancellable: true,
  },
  // Paid in full and confirmed: only finality is left, so a cancel is refused.
  payment_accepted: { next: ["finished"], postback: "invoice.payment_accepted", open: true, cancellable: false },
  finished: { next: [], postback: "invoice.finished", open: false, cancellable: false },
  expired: { next: [], postback: "invoice.expired", open: false, cancellable: false },
  cancelled: { next: [], postback: "invoice.cancelled", open: false, cancellable: false },
} as const satisfies Record<InvoiceStatus, InvoiceStatusRule>;

/**
 * The one postback that is no status move: late money on a closed invoice got its confirmations (transition.ts).
 * Money is never hidden, and the shop is told of it once it is real, not only when it reads the invoice again.
 */
export const LATE_PAYMENT_POSTBACK = "invoice.late_payment" as const;

export type InvoicePostbackType =
  | NonNullable<typeof INVOICE_STATUS_RULES[InvoiceStatus]["postback"]>
  | typeof LATE_PAYMENT_POSTBACK;
export const INVOICE_POSTBACK_TYPES = [
  ...INVOICE_STATUSES.map((s) => INVOICE_STATUS_RULES[s].postback).filter((t) => t !== null),
  LATE_PAYMENT_POSTBACK,
] as InvoicePostbackType[];

/** True when the table allows an invoice in `from` to move to `to`. */
export function canMoveInvoice(from: InvoiceStatus, to: InvoiceStatus): boolean {
  return (INVOICE_STATUS_RULES[from].next as readonly InvoiceStatus[]).includes(to);
}

/** True while the invoice holds its address and its deposits are watched. */
export function isInvoiceOpen(status: InvoiceStatus): boolean {
  return INVOICE_STATUS_RULES[status].open;
}

export function invoicePostbackType(status: InvoiceStatus): InvoicePostbackType | null {
  return INVOICE_STATUS_RULES[status].postback;
}

/** What the buyer reads for each status on the invoice page. */
export const INVOICE_STATUS_TEXT = {
  waiting_for_deposit: "Waiting for your payment",
  payment_confirmation: "Payment seen, waiting for confirmations",
  partially_paid: "Partly paid: please send the rest",
  payment_accepted: "Payment received",
  finished: "Paid. Thank you!",
  expired: "This invoice expired",
  cancelled: "This invoice was cancelled",
} as const satisfies Record<InvoiceStatus, string>;

/**
 * What the buyer reads once an invoice that expires is past `expiresAt` but not yet recorded as expired (the sweep
 * comes by within a minute or so): money sent from then on is late and pays nothing, so the page stops asking for it.
 */
export const INVOICE_TIME_UP_TEXT = "Time is up";

/** Under the status of an invoice that takes no more money (expired, cancelled, or its time up). */
export const INVOICE_CLOSED_HINT =
  "Do not send anything for this invoice now: it would not pay for your order. To pay, ask the shop for a new invoice.";
