import type { PaymentStatus } from "./status.ts";

export type PaymentType = "fiat" | "crypto";

/** A payment as we store it. Amounts are integer minor units of `currency`. */
export interface Payment {
  id: string;
  /** ULID, orders the per-shop listing by creation time. */
  seq: string;
  shopId: string;
  /** The shop's own transaction id; without it no postback is sent. */
  shopTxId: string | null;
  idempotencyKey: string | null;
  /** SHA-256 of the normalized request, to tell a retry from a reused id. */
  requestHash: string;
  email: string;
  name: string | null;
  amount: number;
  currency: string;
  type: PaymentType;
  successUrl: string;
  errorUrl: string;
  postbackUrl: string | null;
  status: PaymentStatus;
  provider: string;
  /** The provider account it was created on; absent on payments older than accounts (the default account). */
  accountId?: string;
  providerRef: string | null;
  providerUrl: string | null;
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
  finalizedAt: number | null;
  /** When the buyer first passed through our pay wrapper (absent on older records). */
  firstRedirectAt?: number | null;
  /** When we give up waiting for the buyer: the janitor expires the payment if the provider still has it pending. */
  expiresAt?: number;
  /**
   * The due time of the payment's next status check at the provider (its payment_check job); null once settled, except
   * for a few late checks after an expiry or cancel the provider did not confirm (janitor.ts, LATE_CHECK_MS).
   */
  checkAt?: number | null;
  /** Succeeded after we had expired or cancelled it: the shop may have to refund it. */
  late?: boolean;
  /** The sum of its succeeded refunds in minor units (absent until the first one). */
  refundedAmount?: number;
  /**
   * The embedded checkout session it belongs to (absent for redirect payments): the buyer comes back to our
   * checkout page inside the shop's frame, never to a shop URL.
   */
  checkoutSessionId?: string;
}

export interface PaymentEvent {
  type:
    | "created"
    | "webhook_received"
    | "status_checked"
    | "status_changed"
    | "postback_resent"
    | "buyer_redirected"
    | "cancel_requested"
    | "expiry_reached"
    | "refund_requested"
    | "refund_succeeded"
    | "refund_failed";
  at: number;
  data: Record<string, string | number | boolean | null>;
}
