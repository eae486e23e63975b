import { isLateSuccess, isPaid, type PaymentStatus } from "./status.ts";
import type { Payment, PaymentEvent } from "./types.ts";

/** When a payment settled, as its console page says it; see settlement. */
export interface Settlement {
  /** When it settled as what it is: for a late payment, when the money came. Null while it is open. */
  at: number | null;
  /** A late payment's first settling, when we gave up on it (expired or cancelled); null for any other payment. */
  gaveUp: { as: PaymentStatus; at: number } | null;
}

/**
 * When a payment settled, for the people who look after it. `finalizedAt` keeps the time it first settled, which
 * for a late payment is when it expired or was cancelled (the shop's API promises that); the money came at its
 * move to succeeded, on its timeline. An operator asked "when did the money come?" needs that one, and the other
 * beside it.
 */
export function settlement(p: Payment, events: PaymentEvent[]): Settlement {
  if (!readsTimeline(p)) return { at: p.finalizedAt, gaveUp: null };
  const move = events.find((e) =>
    e.type === "status_changed" && isLateSuccess(e.data.from as PaymentStatus, e.data.to as PaymentStatus)
  );
  // The engine writes that move with every late success; without it (a record mended by hand) the time is unknown,
  // and finalizedAt would be the wrong one.
  if (!move) return { at: null, gaveUp: null };
  return { at: move.at, gaveUp: { as: move.data.from as PaymentStatus, at: p.finalizedAt } };
}

/**
 * True when `settlement` needs the payment's events: only a late payment's time is on its timeline, every other
 * one's is its `finalizedAt`. Lets a reader of many payments (the BigQuery export) list the events of these alone.
 */
export function readsTimeline(p: Payment): p is Payment & { finalizedAt: number } {
  return p.late === true && p.finalizedAt !== null;
}

/**
 * When the payment's money came (BigQuery's `settled_at`): its settlement time when it succeeded, refunded since
 * or not, so a late payment's is the success and not the expiry; null when it never succeeded (open, failed,
 * expired, cancelled): no money came, whenever it settled.
 */
export function moneySettledAt(p: Payment, events: PaymentEvent[]): number | null {
  return isPaid(p.status) ? settlement(p, events).at : null;
}
