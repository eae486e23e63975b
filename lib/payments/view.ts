import type { Payment } from "./types.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A payment as the shop's API shows it: the shop's own fields and ours, nothing internal. */
export function paymentView(p: Payment, publicBaseUrl: string) {
  return {
    id: p.id,
    shopTxId: p.shopTxId,
    status: p.status,
    amount: p.amount,
    currency: p.currency,
    type: p.type,
    email: p.email,
    name: p.name,
    url: payUrl(p.id, publicBaseUrl),
    successUrl: p.successUrl,
    errorUrl: p.errorUrl,
    // Postbacks go only to payments with the shop's id; without one nothing is sent, so no URL is shown.
    postbackUrl: p.shopTxId ? p.postbackUrl : null,
    createdAt: iso(p.createdAt),
    updatedAt: iso(p.updatedAt),
    finalizedAt: iso(p.finalizedAt),
    expiresAt: iso(p.expiresAt ?? null),
    late: p.late === true,
    refundedAmount: p.refundedAmount ?? 0,
  };
}

/** Our wrapper URL that sends the buyer on to the provider. */
export function payUrl(paymentId: string, publicBaseUrl: string): string {
  return `${publicBaseUrl}/integration/pay?id=${encodeURIComponent(paymentId)}`;
}

/** The postback body (Standard Webhooks payload shape: type, timestamp, data). */
export function postbackBody(p: Payment, type: string, now: number): string {
  return JSON.stringify({
    type,
    timestamp: new Date(now).toISOString(),
    data: {
      id: p.shopTxId,
      paymentId: p.id,
      status: p.status,
      amount: p.amount,
      currency: p.currency,
      type: p.type,
      email: p.email,
      createdAt: iso(p.createdAt),
      finalizedAt: iso(p.finalizedAt),
      // Money after we expired or cancelled the payment: the shop decides whether to ship or refund.
      late: p.late === true,
      // An embedded checkout's payment names its session, so the shop can match it to what it created.
      checkoutSessionId: p.checkoutSessionId ?? null,
    },
  });
}
