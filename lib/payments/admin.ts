import type { AppContext } from "../context.ts";
import { findAccount } from "../accounts/mod.ts";
import { DEFAULT_ACCOUNT_ID } from "../accounts/types.ts";
import { addAuditOps } from "../db/audit.ts";
import { AppError, ConflictError, NotFoundError, UpstreamError, ValidationError } from "../errors.ts";
import {
  getDeliveryEntry,
  listDeliveriesByPayment,
  listDeliveryAttempts,
  rescheduleDelivery,
} from "../db/deliveries.ts";
import { addPaymentEvent, addPaymentEventOps, listPaymentEvents } from "../db/payments.ts";
import { getShop } from "../db/shops.ts";
import { runDelivery } from "../relay/deliver.ts";
import { replayedNow, resentNow } from "../relay/schedule.ts";
import { hasIdShape } from "../ids.ts";
import { findPayment } from "./query.ts";
import type { Delivery } from "../relay/types.ts";
import { supersederOf } from "../relay/delivery.ts";
import { getRefundReservation, listRefundsByPayment } from "../db/refunds.ts";
import { withRefundEvents } from "../refunds/view.ts";
import { settlement } from "./settlement.ts";
import type { PaymentEvent } from "./types.ts";
import { movePayment } from "./transition.ts";
import type { WebhookOutcome } from "./webhook.ts";

/**
 * Everything an operator needs about one payment: the record, its events, refunds, every postback attempt and the
 * provider account it went through.
 */
export async function describePayment(ctx: AppContext, paymentId: string) {
  const payment = await findPayment(ctx.kv, paymentId);
  if (!payment) throw new NotFoundError("Unknown payment.");
  // Payments older than accounts have no accountId: they went through the default account, and still do.
  const accountId = payment.accountId ?? DEFAULT_ACCOUNT_ID;
  const [deliveries, refunds, reserved, events, shop, account] = await Promise.all([
    listDeliveriesByPayment(ctx.kv, paymentId),
    listRefundsByPayment(ctx.kv, paymentId),
    getRefundReservation(ctx.kv, paymentId),
    listPaymentEvents(ctx.kv, payment),
    getShop(ctx.kv, payment.shopId),
    findAccount(ctx, accountId),
  ]);
  return {
    payment,
    /** Its shop's name; null for a shop gone since. */
    shopName: shop?.name ?? null,
    /** The provider account it went through, with its record (no credentials); null for one that is not there. */
    account: { id: accountId, record: account },
    refunds,
    /** What is left to refund: the amount less pending and succeeded refunds. */
    refundable: Math.max(0, payment.amount - (reserved.value ?? 0)),
    settled: settlement(payment, events),
    events: withRefundEvents(events, refunds),
    deliveries: await Promise.all(deliveries.map(async (d) => ({
      ...d,
      attemptLog: await listDeliveryAttempts(ctx.kv, d.id),
    }))),
  };
}

/**
 * Sends one of a payment's postbacks again now, with the same webhook-id, and
 * makes the first attempt right away so the operator sees its result: the
 * postback `deliveryId` names (a row of a list of postbacks), or else the one
 * the shop most likely misses (see postbackToResend).
 */
export async function resendPostback(
  ctx: AppContext,
  paymentId: string,
  { actor, deliveryId }: { actor: string; deliveryId?: string },
): Promise<Delivery> {
  // Invoice postbacks ride the same relay, keyed by the invoice's id; they have no payment timeline to add to.
  if (!hasIdShape("payment", paymentId) && !hasIdShape("invoice", paymentId)) {
    throw new NotFoundError("Unknown payment.");
  }
  const deliveries = await listDeliveriesByPayment(ctx.kv, paymentId);
  if (deliveries.length === 0) throw new ValidationError("This payment has no postback to resend.");
  const chosen = deliveryId === undefined ? postbackToResend(deliveries) : deliveries.find((d) => d.id === deliveryId);
  if (!chosen) throw new NotFoundError("This payment has no such postback.");
  // Sent now, it would reach the shop after the newer one that says where the payment stands.
  const supersededRefusal = (d: Delivery) =>
    new AppError(
      409,
      "postback_superseded",
      `This postback was superseded by a newer one about the same payment (${d.supersededBy}); resend that one.`,
    );
  if (chosen.status === "superseded") throw supersededRefusal(chosen);
  // Old news that is not marked so yet (delivered before the late success came, or held by an attempt then).
  const superseder = supersederOf(chosen, deliveries);
  if (superseder) throw supersededRefusal({ ...chosen, supersededBy: superseder.id });
  const now = ctx.now();
  // No queue wake-up: we send right here, and a queue worker racing us would leave the operator
  // looking at "pending". If this process dies first, the due index still gets it sent.
  const rescheduled = await rescheduleDelivery(ctx.kv, chosen.id, now, { queue: false, now }, {
    // One still retrying keeps its place in its schedule, as a replay's does (replayedNow says why); a failed or a
    // delivered one (the shop lost it) runs the schedule again. One still waiting for its first attempt has no place
    // to keep: the resend is that attempt, and if it fails the schedule goes on to its next step. Kept at its first,
    // due already, a refused resend was sent again at once by the next sweep, still at the first step.
    putBack: (d, at) => d.status === "pending" && d.attempts > 0 ? replayedNow(d, at) : resentNow(d, at),
    // Superseded since it was read (a late success came meanwhile): never put back.
    onlyIf: (d) => d.status !== "superseded",
    refuseInFlight: true,
    // The payment's timeline (invoices have none) and the audit entry say so in the same commit as the put-back: the
    // resend is recorded exactly when it is decided. The POST to the shop, an outside effect no commit can hold,
    // follows; its result is the delivery's own attempt record, and if this process dies before it the due index
    // still sends it, so an audited resend is always one that is sent.
    extraOps: (op, d, next) => {
      if (hasIdShape("payment", paymentId)) {
        addPaymentEventOps(op, paymentId, d.shopId, { type: "postback_resent", at: now, data: { deliveryId: d.id } });
      }
      addAuditOps(op, {
        at: now,
        actor,
        action: "postback.resend",
        target: paymentId,
        before: { deliveryId: d.id, status: d.status },
        after: { deliveryId: d.id, status: next.status },
      });
    },
  });
  if (rescheduled === null) {
    const current = (await getDeliveryEntry(ctx.kv, chosen.id)).value;
    if (current?.status === "superseded") throw supersededRefusal(current);
  }
  if (rescheduled && "inFlightMs" in rescheduled) {
    throw new ConflictError(
      `This postback is being sent right now (held for ${
        Math.ceil(rescheduled.inFlightMs / 1000)
      } s more); look at its result before resending it.`,
      "postback_in_flight",
    );
  }
  await runDelivery(ctx, chosen.id);
  return (await listDeliveriesByPayment(ctx.kv, paymentId)).find((d) => d.id === chosen.id)!;
}

/**
 * The postback a resend without a choice sends: the newest one not delivered (a payment's own postback that
 * failed, say, while its refund's got through), or the newest of all when every one was delivered (the shop lost
 * it and asks again). A superseded one never: a newer one about the payment says more.
 */
function postbackToResend(deliveries: Delivery[]): Delivery | undefined {
  const newestFirst = deliveries.filter((d) => d.status !== "superseded" && !supersederOf(d, deliveries))
    .toSorted((a, b) => b.createdAt - a.createdAt);
  return newestFirst.find((d) => d.status !== "delivered") ?? newestFirst[0];
}

/** Asks the provider for a payment's status now and applies it (an operator's "re-check"). */
export async function recheckPaymentStatus(
  ctx: AppContext,
  paymentId: string,
  { actor }: { actor: string },
): Promise<WebhookOutcome> {
  const p = await findPayment(ctx.kv, paymentId);
  if (!p) throw new NotFoundError("Unknown payment.");
  if (!p.providerRef) throw new ConflictError("The provider has not answered for this payment yet.");
  const confirmed = await (await ctx.providers.forPayment(p)).adapter.getStatus(p.providerRef).catch((err) => {
    throw err instanceof UpstreamError ? recheckRefusal(err) : err;
  });
  const because: PaymentEvent = { type: "status_checked", at: ctx.now(), data: { confirmed, by: actor } };
  const moved = await movePayment(ctx, {
    paymentId,
    to: confirmed,
    because,
    audit: { actor, action: "payment.recheck" },
  });
  if (moved.outcome === "applied") return "applied";
  const status = { status: moved.payment.status };
  await addPaymentEvent(ctx.kv, moved.payment, because, {
    audit: { at: ctx.now(), actor, action: "payment.recheck", target: paymentId, before: status, after: status },
  });
  return "unchanged";
}

/**
 * What the provider said to an operator's re-check, in words for them: what failed, and what to do next (the
 * runbooks' steps, docs/internal/failing-postbacks.md). A 404 is an answer, not an outage: the provider does not know
 * the payment (made with other credentials, a sandbox that restarted), and asking again changes nothing, so it is a
 * refusal (409), said beside the payment with the account to look at. Another answer stays a provider failure (502)
 * that names the status; no answer in time is 504, none at all (unreachable) or one we could not read is 502: an
 * outage often passes, so the next step is to try again, then to look at the account and its calls. The provider's
 * body and our credentials are never part of it (the operation log has the call).
 */
function recheckRefusal(err: UpstreamError): AppError {
  const left = "Our status is left as it is.";
  const retry = "Try again in a few minutes; if it keeps failing, check the payment's account on the Accounts page " +
    "and its calls on the Operations page.";
  if (err.answered === 404) {
    return new AppError(
      409,
      "provider_unknown_payment",
      `The provider does not know this payment (it answered 404 to the status check). ${left} Asking again changes ` +
        "nothing: check the payment's account on the Accounts page (the Operations page names it), and whether the " +
        "payment was made with other credentials or on a sandbox that has restarted since.",
    );
  }
  if (err.timedOut) {
    return new AppError(
      504,
      "provider_timeout",
      `The payment provider did not answer the status check in time. ${left} ${retry}`,
    );
  }
  if (err.answered === null) {
    return new AppError(
      502,
      "provider_error",
      `The payment provider could not be reached, or its answer to the status check could not be read. ${left} ${retry}`,
    );
  }
  return new AppError(
    502,
    "provider_error",
    `The payment provider failed: it answered ${err.answered} to the status check. ${left} ${retry}`,
  );
}
