import type { AppContext } from "../context.ts";
import { AppError, ConflictError, NotFoundError } from "../errors.ts";
import { getPaymentEntry, isWebhookEventSeen, markWebhookEventSeen, updatePayment } from "../db/payments.ts";
import { log } from "../log.ts";
import { type WebhookNotice, WebhookRejectedError } from "../providers/types.ts";
import { newMessageId } from "../relay/signing.ts";
import type { Delivery } from "../relay/types.ts";
import { canTransition, isTerminal, postbackEventType } from "./status.ts";
import type { Payment, PaymentEvent } from "./types.ts";
import { postbackBody } from "./view.ts";

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

  let entry = await getPaymentEntry(ctx.kv, notice.paymentId);
  if (!entry.value) throw new NotFoundError("Unknown payment.");
  if (entry.value.providerRef !== null && entry.value.providerRef !== notice.ref) {
    throw new AppError(400, "invalid_webhook", "Webhook reference does not match the payment.");
  }
  if (entry.value.status === "initiating") {
    // We have not stored the provider's answer yet; the provider retries and will find it.
    throw new ConflictError("The payment is still being created.");
  }
  const confirmed = await ctx.provider.getStatus(notice.ref);

  for (let i = 0; i < MAX_CONFLICT_RETRIES; i++) {
    const p: Payment = entry.value!;
    const now = ctx.now();
    const received: PaymentEvent = {
      type: "webhook_received",
      at: now,
      data: { eventId: notice.eventId, claimed: notice.claimedStatus, confirmed },
    };
    if (!canTransition(p.status, confirmed)) {
      await markWebhookEventSeen(ctx.kv, provider, notice.eventId, p.id, received);
      return "unchanged";
    }
    const next: Payment = { ...p, status: confirmed, updatedAt: now, finalizedAt: isTerminal(confirmed) ? now : null };
    const delivery = postbackFor(next, now);
    const saved = await updatePayment(ctx.kv, entry as Deno.KvEntry<Payment>, next, {
      events: [received, { type: "status_changed", at: now, data: { from: p.status, to: confirmed } }],
      delivery: delivery ?? undefined,
      webhookEventId: notice.eventId,
      jobs: { queue: ctx.config.jobsQueue, now },
    });
    if (saved) {
      log.info("payment status changed", { paymentId: p.id, from: p.status, to: confirmed });
      if (delivery && !ctx.config.jobsQueue) ctx.kick({ kind: "postback", id: delivery.id });
      return "applied";
    }
    if (await isWebhookEventSeen(ctx.kv, provider, notice.eventId)) return "duplicate";
    entry = await getPaymentEntry(ctx.kv, notice.paymentId);
  }
  throw new ConflictError("The payment is busy; retry the webhook.");
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
