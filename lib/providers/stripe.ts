import Stripe from "stripe";
import {
  AmountNotAcceptedError,
  isRefusalStatus,
  providerReason,
  ProviderRefusedError,
  UpstreamError,
} from "../errors.ts";
import type { StripeCredentials } from "../accounts/types.ts";
import type { RefundStatus } from "../refunds/status.ts";
import {
  intentState,
  refundState,
  sessionState,
  STRIPE_REFUND_EVENTS,
  STRIPE_SESSION_EVENTS,
  stripeIntentToOurs,
  stripeRefundToOurs,
  stripeSessionToOurs,
  toStripeAmount,
} from "./stripe_wire.ts";
import { randomId } from "../ids.ts";
import {
  type CancelResult,
  type InitiateRequest,
  type InitiateResult,
  type PaymentProvider,
  type ProviderEmbedConfig,
  type ProviderStatus,
  type RefundOptions,
  type RefundResult,
  type WebhookNotice,
  WebhookRejectedError,
} from "./types.ts";

export interface StripeOptions extends Omit<StripeCredentials, "provider"> {
  timeoutMs: number;
}

/** Marks a session whose amounts went in Stripe's own minor units (toStripeAmount), in its metadata. */
const STRIPE_UNITS = "stripe";

/** Stripe's default tolerance for a webhook's timestamp, as Bansky's. */
const WEBHOOK_TOLERANCE_S = 300;

const cryptoProvider = Stripe.createSubtleCryptoProvider();

/**
 * Stripe with the official SDK: a Checkout Session (the redirect flow, like
 * Bansky's pay page) on the organisation's connected account (`Stripe-Account`),
 * its status from the session (and its PaymentIntent, for a delayed payment
 * method), refunds of its payment intent, and webhooks
 * verified with the SDK's WebCrypto verifier. Our payment id is the session's
 * `client_reference_id` and the idempotency key of its creation, so a retry
 * gets the same session.
 */
export class StripeProvider implements PaymentProvider {
  readonly name = "stripe";
  /** A refund Stripe reported succeeded fails later when the buyer's bank returns it (a closed card). */
  readonly refundsCanReverse = true;
  private readonly stripe: Stripe;

  constructor(private readonly opts: StripeOptions) {
    const api = opts.apiUrl ? new URL(opts.apiUrl) : null;
    this.stripe = new Stripe(opts.secretKey, {
      // fetch, not node:http: the same client on Deno Deploy as here.
      httpClient: Stripe.createFetchHttpClient(),
      maxNetworkRetries: 0,
      timeout: opts.timeoutMs,
      ...(api
        ? {
          host: api.hostname,
          port: Number(api.port || (api.protocol === "https:" ? 443 : 80)),
          protocol: api.protocol === "https:" ? "https" : "http",
        }
        : {}),
    });
  }

  private get account() {
    return { stripeAccount: this.opts.connectedAccountId };
  }

  async initiate(req: InitiateRequest): Promise<InitiateResult> {
    if (req.type !== "fiat") throw new UpstreamError(false, "Stripe takes fiat payments only");
    const amount = toStripeAmount(req.amount, req.currency);
    // Refused before Stripe is asked, naming the field: nothing is made, and the shop can send another amount.
    if ("problem" in amount) {
      throw new AmountNotAcceptedError(req.currency, amount.step, amount.problem);
    }
    // An embedded checkout session is Stripe's own embedded Checkout, mounted by the shop's page with Stripe.js;
    // it completes in place (never a redirect) and our confirm asks Stripe, as for any session.
    const where = req.embedded
      ? { ui_mode: "embedded" as const, redirect_on_completion: "never" as const }
      : { success_url: req.successUrl, cancel_url: req.errorUrl };
    const params: Stripe.Checkout.SessionCreateParams = {
      ...where,
      mode: "payment",
      client_reference_id: req.paymentId,
      customer_email: req.email,
      line_items: [{
        quantity: 1,
        price_data: {
          currency: req.currency.toLowerCase(),
          unit_amount: amount.amount,
          product_data: { name: `Payment ${req.paymentId}` },
        },
      }],
      // amountUnits: this session's amounts are in Stripe's minor units (toStripeAmount); sessions made before were
      // sent ours, and are refunded on that scale (see refund).
      metadata: { paymentId: req.paymentId, amountUnits: STRIPE_UNITS },
      payment_intent_data: { metadata: { paymentId: req.paymentId } },
    };
    const within = deadline(this.opts.timeoutMs);
    const create = async (idempotencyKey: string) =>
      await this.stripe.checkout.sessions.create(params, {
        ...this.account,
        idempotencyKey,
        ...within("POST /v1/checkout/sessions"),
      });
    // Named by the request, so a retry after an answer we lost (a timeout) gets the session Stripe made. But the key
    // can be spoiled for 24 hours: Stripe answers every retry with a 500 it met under it, and refuses it if the first
    // try sent other parameters (a deploy that changed what a session is made with): the shop's retries of that order
    // would all fail for a day. A session takes no money until a buyer pays on its page, and a page reaches a buyer
    // only from a stored payment: another key is safe then, and a new one each time goes through.
    const session = await this.call(
      "POST /v1/checkout/sessions",
      () =>
        create(`create-${req.requestId}`).catch((err) => {
          if (!spoiledKey(err)) throw err;
          return create(`create-${req.requestId}.${randomId("again")}`);
        }),
    );
    if (req.embedded) {
      if (!session.client_secret) {
        throw new UpstreamError(
          false,
          "POST /v1/checkout/sessions answered an embedded session without a client secret",
        );
      }
      return { ref: session.id, url: null, clientSecret: session.client_secret };
    }
    if (!session.url) throw new UpstreamError(false, "POST /v1/checkout/sessions answered a session without a URL");
    return { ref: session.id, url: session.url };
  }

  /** What the shop's page needs for Stripe.js: the platform's publishable key and the connected account. */
  embedConfig(): ProviderEmbedConfig {
    return { publishableKey: this.opts.publishableKey ?? null, accountId: this.opts.connectedAccountId };
  }

  /**
   * The session's status, and for a complete but unpaid one (a delayed payment method) its PaymentIntent's: the
   * session stays complete and unpaid after the debit failed, so only the intent tells a failure from money on its
   * way. It comes expanded in the same call, so a status check is one request whatever the session's state.
   */
  async getStatus(ref: string, within: Deadline = deadline(this.opts.timeoutMs)): Promise<ProviderStatus> {
    const s = await this.call(
      "GET /v1/checkout/sessions/{id}",
      () =>
        this.stripe.checkout.sessions.retrieve(ref, { expand: ["payment_intent"] }, {
          ...this.account,
          ...within("GET /v1/checkout/sessions/{id}"),
        }),
    );
    const state = sessionState(s);
    if (state !== "complete_unpaid") return stripeSessionToOurs[state];
    // Expanded, it is an object; a bare id (or none) would mean Stripe did not expand it: nothing is known of a failure.
    const intent = typeof s.payment_intent === "object" ? s.payment_intent : null;
    return stripeIntentToOurs[intentState(intent)];
  }

  async cancel(ref: string): Promise<CancelResult> {
    // Its expire and the status read after it share one timeout, as a refund's calls do: a shop's cancel waits at most
    // the configured timeout in all.
    const within = deadline(this.opts.timeoutMs);
    try {
      await this.stripe.checkout.sessions.expire(ref, {}, { ...this.account, ...within("POST .../expire") });
      return { cancelled: true };
    } catch (err) {
      // Only an open session can be expired; otherwise it says what it is instead.
      if (!(err instanceof Stripe.errors.StripeInvalidRequestError)) throw toUpstream("POST .../expire", err);
      return { cancelled: false, status: await this.getStatus(ref, within) };
    }
  }

  async refund(
    ref: string,
    amount: number,
    refundId: string,
    currency: string,
    opts: RefundOptions = {},
  ): Promise<RefundResult> {
    const within = deadline(this.opts.timeoutMs);
    const session = await this.call(
      "GET /v1/checkout/sessions/{id}",
      () =>
        this.stripe.checkout.sessions.retrieve(ref, {}, {
          ...this.account,
          ...within("GET /v1/checkout/sessions/{id}"),
        }),
    );
    // A session made before amounts went in Stripe's units was charged our amount as it was (a 1,000.00 MGA order,
    // stored 100000, was charged 100,000 MGA): it is refunded on that scale, so the buyer gets back what was taken.
    const inStripeUnits = session.metadata?.amountUnits === STRIPE_UNITS
      ? toStripeAmount(amount, currency)
      : { amount };
    // Stripe would refuse it (an MGA refund in part of an ariary): a refusal, never a refund of another amount; no call
    // for it ever reached Stripe.
    if ("problem" in inStripeUnits) {
      throw new ProviderRefusedError(`refund amount ${inStripeUnits.problem}`, 400, true);
    }
    const intent = typeof session.payment_intent === "string" ? session.payment_intent : session.payment_intent?.id;
    if (!intent) throw new UpstreamError(false, "the session has no payment intent to refund");
    // Stripe forgets an Idempotency-Key after 24 hours: past that, the same key makes a second refund. A retry may
    // come later than that (a long outage, a process down), so it first looks for the refund an earlier call made,
    // by our id in its metadata. Retries are rare (the first call's answer was lost): one more call for each.
    const made = opts.retry ? await this.findRefund(intent, refundId, within) : null;
    if (made) return { ref: made.id, status: stripeRefundToOurs[refundState(made.status)] };
    const create = async (idempotencyKey: string) =>
      await this.stripe.refunds.create(
        { payment_intent: intent, amount: inStripeUnits.amount, metadata: { refundId } },
        { ...this.account, idempotencyKey, ...within("POST /v1/refunds") },
      );
    // A key can be spoiled for 24 hours, as a session's (see initiate): Stripe answers a 500 it met under it to every
    // retry, and refuses it if an older deploy sent other parameters, so the buyer would wait a day. Only a retry asks
    // again under a second key: it looked for our refund first, and looks again now that the key's request is over
    // (this call's own 500 may have made it). It asks only when the spoiled answer is an earlier call's
    // (settledSpoil): a 500 leaves the refund's fate to Stripe, which may make it after our look or list it late.
    // The second key is the same for every retry, never a random one: a retry's call under it may outlast our timeout
    // at Stripe (or not be listed yet) when the next retry looks and finds nothing, and two runs may ask at once; under
    // one key Stripe answers those 409 or the refund it made, never a second refund. The first call has not looked; a
    // 409 (the key's request still running) is not spoiled, and waits.
    const r = await create(`refund-${refundId}`).catch(async (err) => {
      if (!opts.retry || !spoiledKey(err)) throw err;
      const found = await this.findRefund(intent, refundId, within);
      if (found) return found;
      if (!settledSpoil(err, opts.lastAskedMsAgo ?? 0)) throw err;
      return await create(`refund-${refundId}.again`);
    }).catch((err) => {
      // The look's own failure is ours already, and says nothing of a refund.
      if (err instanceof UpstreamError) throw err;
      // Asked first, or asked again after looking for the refund an earlier call made and finding none: Stripe
      // refusing a request for it means no refund of ours is there.
      const failed = toUpstream("POST /v1/refunds", err);
      throw failed instanceof ProviderRefusedError
        ? new ProviderRefusedError(failed.detail, failed.answered!, true)
        : failed;
    });
    return { ref: r.id, status: stripeRefundToOurs[refundState(r.status)] };
  }

  /** Our refund of a payment intent, made by an earlier call, by its id in the metadata; null when there is none. */
  private findRefund(intent: string, refundId: string, within: Deadline): Promise<Stripe.Refund | null> {
    return this.call("GET /v1/refunds", async () => {
      // Newest first, page by page: ours is among the newest unless many refunds were made in the Dashboard since.
      // Paged here, not by the SDK's auto-paging, which asks every page with the first page's options: each page gets
      // what is left of the verb's deadline, so a payment with hundreds of refunds cannot hold the verb past it.
      let after: string | undefined;
      for (;;) {
        const page = await this.stripe.refunds.list(
          { payment_intent: intent, limit: 100, ...(after ? { starting_after: after } : {}) },
          { ...this.account, ...within("GET /v1/refunds") },
        );
        const ours = page.data.find((r) => r.metadata?.refundId === refundId);
        if (ours) return ours;
        if (!page.has_more) return null;
        // More said to follow a page with nothing to page from: the list was not read to its end, and "not found"
        // would ask Stripe for the refund again (a second one, once the first key is forgotten).
        if (!page.data.length) {
          throw new UpstreamError(false, "GET /v1/refunds answered an empty page with more to come");
        }
        after = page.data[page.data.length - 1].id;
      }
    });
  }

  async getRefundStatus(refundRef: string): Promise<RefundStatus> {
    const r = await this.call("GET /v1/refunds/{id}", () => this.stripe.refunds.retrieve(refundRef, {}, this.account));
    return stripeRefundToOurs[refundState(r.status)];
  }

  async verifyWebhook(headers: Headers, rawBody: string, now: number): Promise<WebhookNotice> {
    const signature = headers.get("stripe-signature");
    if (!signature) throw new WebhookRejectedError("missing signature");
    let event: Stripe.Event;
    try {
      event = await this.stripe.webhooks.constructEventAsync(
        rawBody,
        signature,
        this.opts.webhookSecret,
        WEBHOOK_TOLERANCE_S,
        cryptoProvider,
        // In milliseconds: the SDK divides by 1000 itself.
        now,
      );
    } catch (err) {
      const message = err instanceof Error ? err.message : "";
      throw new WebhookRejectedError(/timestamp/i.test(message) ? "stale timestamp" : "signature mismatch");
    }
    // A Connect endpoint hears every connected account: only this account's own events count here. Another's is
    // acknowledged, not refused: its own endpoint gets it too, and Stripe retries a refused event for days and may
    // disable an endpoint that keeps refusing, which with two of our accounts on one platform would be every endpoint.
    if (event.account && event.account !== this.opts.connectedAccountId) return { kind: "ignored", eventId: event.id };
    if (event.type in STRIPE_SESSION_EVENTS) {
      const s = event.data.object as Stripe.Checkout.Session;
      // Ours carry our payment id; a session without one was made by someone else on the account (a payment link).
      if (!s.client_reference_id) return { kind: "ignored", eventId: event.id };
      const claimed = STRIPE_SESSION_EVENTS[event.type as keyof typeof STRIPE_SESSION_EVENTS] ??
        stripeSessionToOurs[sessionState(s)];
      return {
        kind: "payment",
        eventId: event.id,
        paymentId: s.client_reference_id,
        ref: s.id,
        claimedStatus: claimed,
        // A completed session (paid, or pending: a bank debit's money on its way) or a delayed payment that succeeded.
        claimsMoney: claimed === "succeeded" || claimed === "pending",
      };
    }
    if ((STRIPE_REFUND_EVENTS as readonly string[]).includes(event.type)) {
      const r = event.data.object as Stripe.Refund;
      const refundId = r.metadata?.refundId;
      if (!refundId) return { kind: "ignored", eventId: event.id };
      return {
        kind: "refund",
        eventId: event.id,
        refundId,
        ref: r.id,
        claimedStatus: stripeRefundToOurs[refundState(r.status)],
      };
    }
    return { kind: "ignored", eventId: event.id };
  }

  /** One API call; Stripe's errors become ours, without the provider's message or our key. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toUpstream(what, err);
    }
  }
}

/** What is left of a verb's deadline for its next call, as the SDK's per-request option; see deadline. */
type Deadline = (what: string) => { timeout: number };

/**
 * One provider timeout for all the calls of a verb (a session asked again under a new key; a refund's session read,
 * its search for an earlier refund and its request, maybe twice; a cancel's expire and the status read after a refusal):
 * each call gets what is left, so a shop's init-payment, refund or cancel waits at most the configured timeout, as
 * documented, and a refund job's run ends well within its lease
 * (with new keys, two runs at once could each make a refund).
 */
function deadline(timeoutMs: number): Deadline {
  const end = Date.now() + timeoutMs;
  return (what) => {
    const left = end - Date.now();
    // The SDK takes a whole number above 0 (0 would be its own default): with nothing left, the verb has timed out.
    if (left < 1) throw new UpstreamError(true, `${what} timed out`);
    return { timeout: left };
  };
}

/** Whether Stripe's answer to a request is tied to its idempotency key for 24 hours: a 500 it met, or the key's reuse. */
function spoiledKey(err: unknown): boolean {
  if (!(err instanceof Stripe.errors.StripeError)) return false;
  return (err.statusCode ?? 0) >= 500 || isIdempotencyRefusal(err);
}

/**
 * How long after the latest earlier call for a refund a spoiled answer to its key is taken as settled: the request that
 * met it (that call or an older one), and whatever Stripe does about a 500 it answered (the refund made late, or listed
 * late), are over. Minutes, where a request at Stripe takes seconds; the job's checks are 10 minutes apart by then, so
 * the refund is made at the check 10 minutes after the one before (about 13 minutes after the request), not a day later.
 */
const SPOILED_KEY_SETTLE_MS = 10 * 60_000;

/**
 * Whether a spoiled key's answer (spoiledKey) is an earlier call's, and old enough that its request's outcome shows in
 * Stripe's list by now: Stripe replayed it (`Idempotent-Replayed`) or refused the key as used with other parameters,
 * and the latest earlier call for the refund began at least SPOILED_KEY_SETTLE_MS ago. Not since the refund was asked
 * for: the request's call may never have reached Stripe (a 500 in front of it, a timeout, a crash before it), so the
 * answer kept under the key can be a later call's, a minute old. A 500 this call met itself is not either: its request
 * just ended, and what it did may not show yet.
 */
function settledSpoil(err: unknown, lastAskedMsAgo: number): boolean {
  if (!(err instanceof Stripe.errors.StripeError) || lastAskedMsAgo < SPOILED_KEY_SETTLE_MS) return false;
  return err.headers?.["idempotent-replayed"] === "true" || isIdempotencyRefusal(err);
}

/** Stripe's refusal of a key used before with other parameters (not a 409: that is one still in flight). */
function isIdempotencyRefusal(err: InstanceType<typeof Stripe.errors.StripeError>): boolean {
  return err.statusCode !== 409 &&
    (err instanceof Stripe.errors.StripeIdempotencyError || err.rawType === "idempotency_error");
}

/**
 * Whether Stripe refused the request itself (ProviderRefusedError): an invalid request or a declined card. Not an
 * idempotency conflict: a 409 is another request with the same key still in flight (it passes), and a key reused
 * with other parameters says nothing about the refund.
 */
function isStripeRefusal(err: InstanceType<typeof Stripe.errors.StripeError>, status: number): boolean {
  if (status === 409 || isIdempotencyRefusal(err)) return false;
  return isRefusalStatus(status) && !(err instanceof Stripe.errors.StripeRateLimitError);
}

function toUpstream(what: string, err: unknown): UpstreamError {
  if (err instanceof Stripe.errors.StripeConnectionError) {
    const timedOut = /timed? ?out|timeout/i.test(err.message);
    return new UpstreamError(timedOut, timedOut ? `${what} timed out` : `${what} unreachable`);
  }
  if (err instanceof Stripe.errors.StripeError) {
    // Stripe's code tells answers of one status apart in the operation log (a 409 idempotency_key_in_use from another).
    const code = machineCode(err.code);
    const detail = `${what} answered ${err.statusCode ?? "an error"} (${err.type}${code ? `, ${code}` : ""})`;
    if (err.statusCode && isStripeRefusal(err, err.statusCode)) {
      // Stripe's message says why (e.g. "Refund exceeds the charge"), for the operators' log only.
      const reason = providerReason(err.message ?? "");
      return new ProviderRefusedError(reason ? `${detail}: ${reason}` : detail, err.statusCode);
    }
    return new UpstreamError(false, detail, err.statusCode ?? null);
  }
  if (err instanceof UpstreamError) return err;
  return new UpstreamError(false, `${what} failed`);
}

/**
 * Stripe's error code (`idempotency_key_in_use`, `resource_missing`) when it is one: a short lowercase word, never text
 * that could carry a parameter, a key or a secret (those go through providerReason, and only from a refusal's message).
 */
function machineCode(code: unknown): string | null {
  if (typeof code !== "string" || !/^[a-z][a-z0-9_]{0,63}$/.test(code)) return null;
  // A key or secret has this shape too, if lowercase: what providerReason would hide is not a code.
  return providerReason(code) === code ? code : null;
}
