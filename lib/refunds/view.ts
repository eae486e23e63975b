import type { Payment, PaymentEvent } from "../payments/types.ts";
import type { RefundPostbackType } from "./status.ts";
import type { Refund } from "./types.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A refund as the shop's API and postbacks show it. */
export function refundView(r: Refund) {
  return {
    id: r.id,
    paymentId: r.paymentId,
    shopRefundId: r.shopRefundId,
    amount: r.amount,
    currency: r.currency,
    status: r.status,
    reason: r.reason,
    failureReason: r.failureReason,
    createdAt: iso(r.createdAt)!,
    settledAt: iso(r.settledAt),
  };
}

/** The postback body of a settled refund: the refund, and where its payment stands now. */
export function refundPostbackBody(r: Refund, p: Payment, type: RefundPostbackType, now: number): string {
  return JSON.stringify({
    type,
    timestamp: new Date(now).toISOString(),
    data: {
      ...refundView(r),
      payment: {
        id: p.id,
        shopTxId: p.shopTxId,
        status: p.status,
        amount: p.amount,
        refundedAmount: p.refundedAmount ?? 0,
      },
    },
  });
}

/**
 * A refund's entries on its payment's timeline: requested, then succeeded or failed (`by` the operator who recorded
 * it, when one settled it by hand), and for a refund the provider reversed both, the failure (`reversed`) after the
 * success. They are made from the refund record, both when the
 * refund is written (for the activity log, hence the export) and when the timeline is shown, so the payment's own
 * event list does not store a copy of them (fewer keys per refund).
 */
export function refundEvents(
  r: Refund,
): { requested: PaymentEvent; settled: PaymentEvent | null; reversed: PaymentEvent | null } {
  const requested: PaymentEvent = {
    type: "refund_requested",
    at: r.createdAt,
    data: { refundId: r.id, amount: r.amount, by: r.requestedBy, reason: r.reason },
  };
  const data = { refundId: r.id, amount: r.amount };
  // Settled by an operator's record (lib/refunds/admin.ts): who recorded it. A reversal after it is the provider's.
  const settledData = r.settledBy ? { ...data, by: r.settledBy.actor } : data;
  const at = r.settledAt ?? r.updatedAt;
  switch (r.status) {
    case "pending":
      return { requested, settled: null, reversed: null };
    case "succeeded":
      return { requested, settled: { type: "refund_succeeded", at, data: settledData }, reversed: null };
    case "failed":
      if (r.succeededAt === undefined) {
        return { requested, settled: { type: "refund_failed", at, data: settledData }, reversed: null };
      }
      return {
        requested,
        settled: { type: "refund_succeeded", at: r.succeededAt, data: settledData },
        reversed: { type: "refund_failed", at, data: { ...data, reversed: true } },
      };
  }
}

/**
 * A payment's stored events with its refunds' entries, in time order. Refunds made before their entries moved
 * out of the event list have them stored already; those are not shown twice.
 */
export function withRefundEvents(stored: PaymentEvent[], refunds: Refund[]): PaymentEvent[] {
  const have = new Set(stored.map((e) => `${e.type}|${e.data?.refundId ?? ""}`));
  const derived = refunds.flatMap((r) => {
    const { requested, settled, reversed } = refundEvents(r);
    return [requested, settled, reversed].filter((e) => e !== null);
  }).filter((e) => !have.has(`${e.type}|${e.data.refundId}`));
  // A stable sort keeps stored events in their written order where times tie.
  return [...stored, ...derived].sort((a, b) => a.at - b.at);
}
