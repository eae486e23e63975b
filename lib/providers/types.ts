import type { PaymentStatus } from "../payments/status.ts";
import type { PaymentType } from "../payments/types.ts";

/** The statuses a provider can report: ours exactly, so none is lost in translation. */
export type ProviderStatus = PaymentStatus;

export interface InitiateRequest {
  paymentId: string;
  email: string;
  name: string | null;
  amount: number;
  currency: string;
  type: PaymentType;
  /** Our wrappers, never the shop's URLs: the provider only ever talks to us. */
  successUrl: string;
  errorUrl: string;
  webhookUrl: string;
}

export interface InitiateResult {
  ref: string;
  url: string;
}

/** A verified webhook: authentic, but only a hint about the status until confirmed with getStatus. */
export interface WebhookNotice {
  eventId: string;
  paymentId: string;
  ref: string;
  claimedStatus: ProviderStatus;
}

/** The fixed verbs every upstream implements. Domain code never sees provider JSON. */
export interface PaymentProvider {
  readonly name: string;
  initiate(req: InitiateRequest): Promise<InitiateResult>;
  getStatus(ref: string): Promise<ProviderStatus>;
  /** Throws WebhookRejectedError when the signature, timestamp or body is wrong (an adapter may verify synchronously). */
  verifyWebhook(headers: Headers, rawBody: string, now: number): WebhookNotice | Promise<WebhookNotice>;
  /** Asks the provider to stop taking money for a payment (expiry, the shop's cancel). */
  cancel(ref: string): Promise<CancelResult>;
}

/**
 * What a cancel came to: the provider cancelled, or it could not and reports
 * the status the payment has instead (paid or failed already, or still
 * `pending` when it cannot stop money on its way, e.g. a crypto deposit).
 */
export type CancelResult = { cancelled: true } | { cancelled: false; status: ProviderStatus };

export class WebhookRejectedError extends Error {}
