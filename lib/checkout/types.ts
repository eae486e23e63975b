/** One line of a checkout: amounts in integer minor units of the session's currency. */
export interface LineItem {
  name: string;
  unitAmount: number;
  quantity: number;
}

/**
 * An embedded checkout session: what the shop's server asked for, bound to the one payment made for it.
 * Its status is never stored here: it follows from the payment's (see sessionStatus).
 */
export interface CheckoutSession {
  /** `cs_` and 22 characters; derived from the shop's id or Idempotency-Key when it gave one. */
  id: string;
  shopId: string;
  paymentId: string;
  /** The provider of its payment's account: "stripe" sessions are mounted with Stripe.js, the others with checkout.js. */
  provider: string;
  /** SHA-256 of the client secret; the secret itself is only ever in the shop's hands. */
  secretHash: string;
  /** SHA-256 of what the shop sent, to tell a retry from a reused id. */
  requestHash: string;
  amount: number;
  currency: string;
  lineItems: LineItem[] | null;
  description: string | null;
  createdAt: number;
  expiresAt: number;
  /**
   * The provider's own client secret when the session is its embedded checkout (Stripe's `cs_..._secret_...`,
   * which the shop's page mounts with Stripe.js). Kept so a retry answers it again; it opens only that
   * provider session, like a hosted pay page's URL. `secretHash` is then its hash.
   */
  providerClientSecret?: string;
}

/** What the shop (and the embedding page) is told about a session. */
export type SessionStatus = "open" | "complete" | "expired";
