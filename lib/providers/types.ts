import type { PaymentStatus } from "../payments/status.ts";
import type { PaymentType } from "../payments/types.ts";
import type { RefundStatus } from "../refunds/status.ts";

/** The statuses a provider can report: ours exactly, so none is lost in translation. */
export type ProviderStatus = PaymentStatus;

export interface InitiateRequest {
  paymentId: string;
  /** What names this request at the provider, which deduplicates on it (request_id.ts: providerRequestId). */
  requestId: string;
  email: string;
  name: string | null;
  amount: number;
  currency: string;
  type: PaymentType;
  /** Our wrappers, never the shop's URLs: the provider only ever talks to us. */
  successUrl: string;
  errorUrl: string;
  webhookUrl: string;
  /**
   * For an embedded checkout session: `frameAncestors` are the origins whose pages will frame the provider's
   * pay page (ours, then the shop's sites; every ancestor must be allowed). A provider with an embeddable
   * checkout of its own (Stripe) makes that instead and answers its client secret. Absent for redirect payments.
   */
  embedded?: { frameAncestors: string[] };
}

export interface InitiateResult {
  ref: string;
  /** The provider's pay page; null for a provider's own embedded checkout, which has none. */
  url: string | null;
  /** The provider's client secret for its own embedded checkout (Stripe's `cs_..._secret_...`). */
  clientSecret?: string;
}

/** What a shop's page needs to mount a provider's own embedded checkout (Stripe.js): public values only. */
export interface ProviderEmbedConfig {
  /** The provider's publishable key, or null when the account has none configured. */
  publishableKey: string | null;
  /** The account at the provider (Stripe's connected account, `acct_...`). */
  accountId: string;
}

/** A verified webhook: authentic, but only a hint about the status until confirmed with getStatus or getRefundStatus. */
export type WebhookNotice = PaymentNotice | RefundNotice | IgnoredNotice;

/** An authentic event we do not act on (a provider that sends every kind of event to one endpoint). */
export interface IgnoredNotice {
  kind: "ignored";
  eventId: string;
  /** Why an event that should have been ours names nothing we know, for the operators' log (absent when it is routine). */
  warning?: string;
}

export interface PaymentNotice {
  kind: "payment";
  eventId: string;
  /**
   * Our payment id, echoed by the provider (Bansky's \`id\`, which its spec uses to identify a postback; Stripe's
   * \`client_reference_id\`). News without it names no payment of ours: the adapter answers \`ignored\` instead.
   */
  paymentId: string;
  ref: string;
  claimedStatus: ProviderStatus;
  /**
   * Whether the news says a buyer paid: the money taken, or on its way (Stripe's session completed while a bank debit
   * is still processing, which it claims as pending). News of a payment still open, failed, expired or cancelled does
   * not. Only the adapter can tell: a claimed \`pending\` is Bansky's open payment but Stripe's money on its way.
   */
  claimsMoney: boolean;
}

/** A provider's news about a refund. */
export interface RefundNotice {
  kind: "refund";
  eventId: string;
  /** Our refund id (re_...), which the provider keeps as the merchant's reference. */
  refundId: string;
  /** The provider's reference of the refund. */
  ref: string;
  claimedStatus: RefundStatus;
}

/** What the provider said to a refund request: its reference and the refund's status now. */
export interface RefundResult {
  ref: string;
  status: RefundStatus;
}

/** How a refund call is made (see PaymentProvider.refund). */
export interface RefundOptions {
  /** An earlier call for this refund may have reached the provider; false for the first call, in the request. */
  retry?: boolean;
  /**
   * How long ago the latest earlier call for this refund began (the request's, or the job run's before this one), by
   * the app's clock: an answer the provider keeps under the refund's key is from that call or an older one.
   */
  lastAskedMsAgo?: number;
}

/** The fixed verbs every upstream implements. Domain code never sees provider JSON. */
export interface PaymentProvider {
  readonly name: string;
  /**
   * Whether a refund this provider reported `succeeded` can still fail later (Stripe: the buyer's bank sends it
   * back). Such refunds are asked about again for a while (lib/refunds/recheck.ts), in case the news is lost.
   */
  readonly refundsCanReverse: boolean;
  initiate(req: InitiateRequest): Promise<InitiateResult>;
  getStatus(ref: string): Promise<ProviderStatus>;
  /** Throws WebhookRejectedError when the signature, timestamp or body is wrong (an adapter may verify synchronously). */
  verifyWebhook(headers: Headers, rawBody: string, now: number): WebhookNotice | Promise<WebhookNotice>;
  /**
   * Refunds `amount` minor units (ISO 4217's, as we store amounts) of the
   * payment `ref` in its `currency`. Idempotent on our `refundId`: asking
   * again answers the same refund with its status now. The provider may
   * settle it at once or later (then with a webhook). `retry`: an earlier
   * call for this refund may have reached the provider (its answer was
   * lost), so an adapter whose provider forgets idempotency keys (Stripe,
   * after 24 hours) looks for the refund before it asks again.
   * Throws ProviderRefusedError when the provider refuses the request itself.
   */
  refund(ref: string, amount: number, refundId: string, currency: string, opts?: RefundOptions): Promise<RefundResult>;
  /** The status of a refund now, by the provider's reference. */
  getRefundStatus(refundRef: string): Promise<RefundStatus>;
  /** Asks the provider to stop taking money for a payment (expiry, the shop's cancel). */
  cancel(ref: string): Promise<CancelResult>;
  /** Providers whose own embedded checkout the shop's page mounts (Stripe): its public keys. */
  embedConfig?(): ProviderEmbedConfig;
}

/**
 * What a cancel came to: the provider cancelled, or it could not and reports
 * the status the payment has instead (paid or failed already, or still
 * `pending` when it cannot stop money on its way, e.g. a crypto deposit).
 */
export type CancelResult = { cancelled: true } | { cancelled: false; status: ProviderStatus };

export class WebhookRejectedError extends Error {}
