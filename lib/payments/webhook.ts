import type { AppContext } from "../context.ts";
import { AppError, ConflictError, NotFoundError } from "../errors.ts";
import {
  getWebhookTarget,
  isWebhookEventSeen,
  markWebhookEventSeen,
  recordUnconfirmedWebhook,
} from "../db/payments.ts";
import { log, warnRepeatable } from "../log.ts";
import { type PaymentNotice, type WebhookNotice, WebhookRejectedError } from "../providers/types.ts";
import { canProviderMove } from "./status.ts";
import { movePayment, type MoveResult } from "./transition.ts";
import { addOperationOps, insertOperation } from "../db/operations.ts";
import type { Payment, PaymentEvent } from "./types.ts";
import { handleRefundWebhook } from "../refunds/settle.ts";
import { DEFAULT_ACCOUNT_ID, type ProviderAccount } from "../accounts/types.ts";
import { hasIdShape } from "../ids.ts";
import type { WEBHOOK_OUTCOMES } from "./api_schemas.ts";
import { orphanSighting } from "./orphans.ts";
import { recordPaidOrphanSighting } from "../db/paid_orphans.ts";

export type WebhookOutcome = typeof WEBHOOK_OUTCOMES[number];

/**
 * Handles a provider webhook: verify its signature, ignore duplicates, confirm
 * the status with the provider (the webhook is only a hint), and ask the
 * transition engine to move the payment there. Returning normally means it is
 * committed and the provider may get its 2xx; a claim the provider's status
 * API does not show yet is refused (409) and not marked seen, so the
 * provider's retry applies it.
 */
export async function handleProviderWebhook(
  ctx: AppContext,
  headers: Headers,
  rawBody: string,
  accountId: string = DEFAULT_ACCOUNT_ID,
): Promise<WebhookOutcome> {
  // Each account verifies its own webhooks with its own secret; an id of the wrong shape names no account.
  const account = accountId === DEFAULT_ACCOUNT_ID || hasIdShape("account", accountId)
    ? await ctx.providers.find(accountId)
    : null;
  if (!account) throw new NotFoundError("Unknown account.");
  let notice: WebhookNotice;
  try {
    notice = await account.adapter.verifyWebhook(headers, rawBody, ctx.now());
  } catch (err) {
    if (err instanceof WebhookRejectedError) {
      warnRepeatable(`webhook rejected:${accountId}:${err.message}`, "webhook rejected", {
        accountId,
        reason: err.message,
      });
      throw new AppError(401, "invalid_webhook", `Webhook rejected: ${err.message}.`);
    }
    throw err;
  }
  // Refund news settles a refund (which moves its payment); refunds keep no webhook ids, their status is the guard.
  if (notice.kind === "refund") return await handleRefundWebhook(ctx, notice, accountId);
  if (notice.kind === "ignored") {
    if (notice.warning) log.warn("webhook ignored", { accountId, eventId: notice.eventId, reason: notice.warning });
    return "unchanged";
  }
  // Every payment we make has an id of our shape: another (a Stripe payment link's own client_reference_id) is news
  // of a payment someone else made on the account, as one without an id is.
  if (!hasIdShape("payment", notice.paymentId)) {
    warnRepeatable(`webhook ignored:${accountId}:not our id`, "webhook ignored", {
      accountId,
      eventId: notice.eventId,
      reason: "its payment id is not one we make",
    });
    return "unchanged";
  }
  // One read for both: handled before, and the payment (its version saves the move a read of its own).
  const target = await getWebhookTarget(ctx.kv, accountId, notice.eventId, notice.paymentId);
  if (target.seen) return "duplicate";
  const payment = target.payment.value;
  // Our id, but no payment: its commit failed, or the request was lost, after the provider made it.
  if (!payment) return await orphanNews(ctx, notice, { account: account.account, payment: null });
  // Signed by this account and naming our payment, but about another of the provider's payments made for it.
  if (payment.providerRef && payment.providerRef !== notice.ref) {
    return await orphanNews(ctx, notice, { account: account.account, payment });
  }
  if (payment.providerRef !== notice.ref || (payment.accountId ?? DEFAULT_ACCOUNT_ID) !== accountId) {
    throw referenceMismatch();
  }
  // The status call's log entry is written by the move's commit when there is one (one commit instead of two).
  const { adapter, logged } = await ctx.providers.forPayment(payment);
  logged?.holdEntries();
  const confirmed = await adapter.getStatus(notice.ref);
  const operations = logged?.takeHeld() ?? [];
  const because: PaymentEvent = {
    type: "webhook_received",
    at: ctx.now(),
    data: { eventId: notice.eventId, claimed: notice.claimedStatus, confirmed },
  };
  let moved: MoveResult | null = null;
  try {
    moved = await movePayment(ctx, {
      paymentId: payment.id,
      read: target.payment as Deno.KvEntry<Payment>,
      to: confirmed,
      because,
      webhookEventId: notice.eventId,
      extraOps: (op) => operations.forEach((e) => addOperationOps(op, e)),
    }).catch(async (err) => {
      // A copy of this webhook handled concurrently moved the payment first.
      if (err instanceof ConflictError && await isWebhookEventSeen(ctx.kv, accountId, notice.eventId)) return null;
      throw err;
    });
  } finally {
    // No move stored them: they go to the log on their own.
    if (moved?.outcome !== "applied") { for (const e of operations) insertOperation(ctx.kv, e).catch(() => {}); }
  }
  if (!moved) return "duplicate";
  if (moved.outcome === "applied") return "applied";
  const p = moved.payment;
  if (canProviderMove(p.status, notice.claimedStatus)) {
    // The webhook brings news the provider's status API does not show yet. Marking it seen would
    // drop the provider's retry as a duplicate, so refuse it for now: the retry will find it confirmed.
    // The timeline records the claim once, however often the provider (or a replay) sends it again.
    await recordUnconfirmedWebhook(ctx.kv, accountId, notice.eventId, p, because);
    throw new AppError(
      409,
      "status_not_confirmed",
      "The provider does not confirm this status yet; send the webhook again later.",
      undefined,
      { "retry-after": "30" },
    );
  }
  if (await isWebhookEventSeen(ctx.kv, accountId, notice.eventId)) return "duplicate"; // a copy got here first
  // Old news (a stale "pending", a payment already settled): recorded, and never handled again.
  await markWebhookEventSeen(ctx.kv, accountId, notice.eventId, p, because);
  return "unchanged";
}

const referenceMismatch = () => new AppError(400, "invalid_webhook", "Webhook reference does not match the payment.");

/**
 * News of an orphan: a payment at the provider made for one of ours that no stored payment names. Either the payment
 * is stored and names another (a creation asked again under a new key after a 500 or an idempotency refusal, an order
 * sent again with another body or after its routes moved), or none was stored (`payment` null: our commit failed, or
 * the shop's request was lost, after the provider made it). Its page never reached a buyer, so its news is that it is
 * still open, expired or failed: acknowledged, so the provider stops retrying it for days, and it changes nothing.
 * News that it took money (or that a buyer finished on it, money on its way) cannot come from a page we handed out:
 * it is refused, so the provider keeps it and retries, recorded as a paid orphan (the console's list, the gauge the
 * operators' alert reads), logged as an error and counted: they refund it at the provider (or the shop takes the
 * order by hand), find how its page got out, and mark it handled. From then on its news is acknowledged
 * (`orphan_handled`) and changes nothing, so the provider stops retrying. Refused with 404 when none is stored: a
 * webhook that beat our own commit of a new payment (its page not handed out yet, so never paid news in practice)
 * finds it on the provider's retry.
 */
async function orphanNews(
  ctx: AppContext,
  notice: PaymentNotice,
  { account, payment }: { account: ProviderAccount; payment: Payment | null },
): Promise<WebhookOutcome> {
  const fields = {
    accountId: account.id,
    paymentId: notice.paymentId,
    ref: notice.ref,
    paymentStored: payment !== null,
    storedRef: payment?.providerRef ?? null,
    eventId: notice.eventId,
    claimed: notice.claimedStatus,
  };
  if (notice.claimsMoney) {
    // The record keeps what the log line says (orphanSighting caps it), and the provider besides.
    const seen = orphanSighting({ ...fields, provider: account.provider }, fields, notice.eventId);
    const orphan = await recordPaidOrphanSighting(ctx.kv, seen, ctx.now());
    if (orphan.handled) {
      log.info("webhook about a paid orphan an operator marked handled: acknowledged, nothing changed", {
        ...fields,
        handledBy: orphan.handled.by,
      });
      return "orphan_handled";
    }
    ctx.metrics?.countPaidOrphan(account.provider, account.id);
    log.error("money at the provider on a payment of ours that no stored payment names", fields);
    throw payment ? referenceMismatch() : new NotFoundError("Unknown payment.");
  }
  log.info(
    "webhook about a payment at the provider that no stored payment names: acknowledged, nothing changed",
    fields,
  );
  return "unchanged";
}
