import type { Payment } from "../payments/types.ts";
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
