import type { RefundStatus } from "./status.ts";

/** A refund as we store it. `amount` is integer minor units of the payment's currency. */
export interface Refund {
  /** Our public id (re_...): random, or derived from the shop's refund id or Idempotency-Key. */
  id: string;
  /** ULID, orders a payment's refunds by creation time. */
  seq: string;
  paymentId: string;
  shopId: string;
  /** Its payment's provider account (absent on refunds older than accounts: the default account). */
  accountId?: string;
  /** The shop's own refund reference (`id` in the request), if it gave one. */
  shopRefundId: string | null;
  idempotencyKey: string | null;
  /** SHA-256 of the normalized request, to tell a retry from a reused id. */
  requestHash: string;
  amount: number;
  currency: string;
  reason: string | null;
  status: RefundStatus;
  /** The provider's reference, once it answered. */
  providerRef: string | null;
  /** Why it failed, in words for the shop and operators (never provider internals). */
  failureReason: string | null;
  /** "api" for the shop's key, or the operator's email. */
  requestedBy: string;
  /** Provider calls made for it (the first one and every re-check). */
  checks: number;
  /** While pending: when the background job asks the provider again. */
  nextCheckAt: number;
  createdAt: number;
  updatedAt: number;
  /**
   * When a job run last began a provider call for it (absent: only the request's call, at createdAt). How long ago the
   * latest call before the current one began bounds how recent an answer Stripe keeps under the refund's key can be.
   */
  askedAt?: number;
  /**
   * Only on a succeeded refund whose provider can still reverse it: when the `refund_recheck` job asks the provider
   * whether it stands (lib/refunds/recheck.ts); null (or absent) once those checks are through, or never planned.
   */
  recheckAt?: number | null;
  /** When it succeeded or failed (for a refund the provider reversed: when it failed). */
  settledAt: number | null;
  /** Only on a refund the provider reversed after it had succeeded (now failed): when it had succeeded. */
  succeededAt?: number;
  /**
   * Only on a refund an operator settled by hand after checking with the provider (lib/refunds/admin.ts): who, and
   * their note. For operators: the shop's API and postbacks never show it.
   */
  settledBy?: { actor: string; note: string };
  /**
   * Only while it is pending and has its key in the pending index (lib/db/refunds.ts, withPendingIndex), which the
   * pending-refund gauges read: the write that settles it then deletes that key.
   */
  pendingIndexed?: true;
}
