import type { AppContext } from "../context.ts";
import { AppError, ConflictError, NotFoundError } from "../errors.ts";
import {
  addPaymentEvent,
  getPayment,
  getPaymentEntry,
  isWebhookEventSeen,
  markWebhookEventSeen,
  updatePayment,
} from "../db/payments.ts";
import { log } from "../log.ts";
import { type ProviderStatus, type WebhookNotice, WebhookRejectedError } from "../providers/types.ts";
import { newMessageId } from "../relay/signing.ts";
import type { Delivery } from "../relay/types.ts";
import { canTransition, isTerminal, postbackEventType } from "./status.ts";
import type { Payment, PaymentEvent } from "./types.ts";
import { postbackBody } from "./view.ts";
import { findPayment } from "./query.ts";

export type WebhookOutcome = "applied" | "duplicate" | "unchanged";

const MAX_CONFLICT_RETRIES = 5;

/**
 * Handles a provider webhook: verify its signature, ignore duplicates, confirm
 * the status with the provider (the webhook is only a hint), and move the
 * payment forward together with its postback job in one atomic operation.
 * Returning normally means it is committed and the provider may get its 2xx.
 */
export async function handleProviderWebhook(
  ctx: AppContext,
  headers: Headers,
  rawBody: string,
): Promise<WebhookOutcome> {
  let notice: WebhookNotice;
  try {
    notice = await ctx.provider.verifyWebhook(headers, rawBody, ctx.now());
  } catch (err) {
    if (err instanceof WebhookRejectedError) {
      log.warn("webhook rejected", { reason: err.message });
      throw new AppError(401, "invalid_webhook", `Webhook rejected: ${err.message}.`);
    }
    throw err;
  }
  const provider = ctx.provider.name;
  if (await isWebhookEventSeen(ctx.kv, provider, notice.eventId)) return "duplicate";

  // A webhook can beat our own commit of a new payment: 404 makes the provider retry, and it will find it.
  const payment = await getPayment(ctx.kv, notice.paymentId);
  if (!payment) throw new NotFoundError("Unknown payment.");
  if (payment.providerRef !== notice.ref) {
    throw new AppError(400, "invalid_webhook", "Webhook reference does not match the payment.");
  }
  const confirmed = await ctx.provider.getStatus(notice.ref);
  return await applyProviderStatus(ctx, notice.paymentId, confirmed, {
    webhookEventId: notice.eventId,
    claimed: notice.claimedStatus,
    event: {
      type: "webhook_received",
      at: ctx.now(),
      data: { eventId: notice.eventId, claimed: notice.claimedStatus, confirmed },
    },
  });
}

/**
 * Moves a payment to the status the provider confirmed, with its events and
 * postback in one atomic operation, re-reading on conflicts. A status the
 * payment cannot move to (stale news, a settled payment) changes nothing; a
 * webhook whose claim is ahead of the provider's own status API is refused
 * (409) so that the provider sends it again.
 */
export async function applyProviderStatus(
  ctx: AppContext,
  paymentId: string,
  confirmed: ProviderStatus,
  source: { event: PaymentEvent; webhookEventId?: string; claimed?: ProviderStatus },
): Promise<WebhookOutcome> {
  const provider = ctx.provider.name;
  for (let i = 0; i < MAX_CONFLICT_RETRIES; i++) {
    const entry = await getPaymentEntry(ctx.kv, paymentId);
    if (!entry.value) throw new NotFoundError("Unknown payment.");
    const p: Payment = entry.value;
    const now = ctx.now();
    if (!canTransition(p.status, confirmed)) {
      if (source.webhookEventId && source.claimed && canTransition(p.status, source.claimed)) {
        // The webhook brings news the provider's status API does not show yet. Marking it seen would
        // drop the provider's retry as a duplicate, so refuse it for now: the retry will find it confirmed.
        await addPaymentEvent(ctx.kv, p, source.event);
        throw new AppError(
          409,
          "status_not_confirmed",
          "The provider does not confirm this status yet; send the webhook again later.",
          undefined,
          { "retry-after": "30" },
        );
      }
      if (source.webhookEventId) {
        await markWebhookEventSeen(ctx.kv, provider, source.webhookEventId, p, source.event);
      } else await addPaymentEvent(ctx.kv, p, source.event);
      return "unchanged";
    }
    const next: Payment = { ...p, status: confirmed, updatedAt: now, finalizedAt: isTerminal(confirmed) ? now : null };
    const delivery = postbackFor(next, now);
    const saved = await updatePayment(ctx.kv, entry as Deno.KvEntry<Payment>, next, {
      events: [source.event, { type: "status_changed", at: now, data: { from: p.status, to: confirmed } }],
      delivery: delivery ?? undefined,
      webhookEventId: source.webhookEventId,
      jobs: { queue: ctx.config.jobsQueue, now },
    });
    if (saved) {
      log.info("payment status changed", { paymentId: p.id, from: p.status, to: confirmed });
      // Send now in this process; the queue message or the sweep is the durable backup (the lease stops doubles).
      if (delivery) ctx.kick({ kind: "postback", id: delivery.id });
      return "applied";
    }
    if (source.webhookEventId && await isWebhookEventSeen(ctx.kv, provider, source.webhookEventId)) return "duplicate";
  }
  throw new ConflictError("The payment is busy; retry.");
}

/** Asks the provider for a payment's status now and applies it (operator "re-check"). */
export async function recheckPaymentStatus(ctx: AppContext, paymentId: string): Promise<WebhookOutcome> {
  const p = await findPayment(ctx.kv, paymentId);
  if (!p) throw new NotFoundError("Unknown payment.");
  if (!p.providerRef) throw new ConflictError("The provider has not answered for this payment yet.");
  const confirmed = await ctx.provider.getStatus(p.providerRef);
  return await applyProviderStatus(ctx, paymentId, confirmed, {
    event: { type: "status_checked", at: ctx.now(), data: { confirmed } },
  });
}

/** The postback a status change causes, when the shop asked for one (it gave its own id). */
function postbackFor(p: Payment, now: number): Delivery | null {
  const type = postbackEventType(p.status);
  if (!type || !p.shopTxId || !p.postbackUrl) return null;
  return {
    id: newMessageId(),
    paymentId: p.id,
    shopId: p.shopId,
    url: p.postbackUrl,
    eventType: type,
    body: postbackBody(p, type, now),
    status: "pending",
    attempts: 0,
    scheduleStep: 0,
    nextAttemptAt: now,
    leaseUntil: 0,
    lastStatusCode: null,
    lastError: null,
    createdAt: now,
    updatedAt: now,
  };
}
