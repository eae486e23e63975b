import type { AppContext } from "../context.ts";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import { getRefund } from "../db/refunds.ts";
import { hasIdShape } from "../ids.ts";
import { parseAmount } from "../money.ts";
import { findPayment } from "../payments/query.ts";
import type { Payment } from "../payments/types.ts";
import { randomId } from "../ids.ts";
import { refundScope, settleRefund } from "./settle.ts";
import type { Refund } from "./types.ts";
import { createRefund, type CreateRefundResult } from "./create.ts";

/** What an operator's refund form asks for, read for the confirmation page; throws on an amount that is not one. */
export async function previewOperatorRefund(
  ctx: AppContext,
  paymentId: string,
  form: { amount?: string; reason?: string },
): Promise<{ payment: Payment; amount: number; reason: string; token: string }> {
  const payment = await findPayment(ctx.kv, paymentId);
  if (!payment) throw new NotFoundError("Unknown payment.");
  const amount = parseAmount(form.amount ?? "", payment.currency);
  if (amount === null) {
    throw new ValidationError(`Give the amount in ${payment.currency}, e.g. 12.50.`, { amount: "is not an amount" });
  }
  // The confirm button carries this key: a double submit or a reload answers the same refund.
  return { payment, amount, reason: (form.reason ?? "").trim().slice(0, 500), token: randomId("rfk") };
}

/** An operator's confirmed refund, audited under their email; the same token answers the same refund. */
export async function confirmOperatorRefund(
  ctx: AppContext,
  paymentId: string,
  form: { amount?: string; reason?: string; token?: string },
  { actor }: { actor: string },
): Promise<CreateRefundResult> {
  const payment = await findPayment(ctx.kv, paymentId);
  if (!payment) throw new NotFoundError("Unknown payment.");
  const amount = Number(form.amount);
  return await createRefund(
    ctx,
    { paymentId: payment.id, shopId: payment.shopId },
    { amount: Number.isSafeInteger(amount) ? amount : form.amount, ...(form.reason ? { reason: form.reason } : {}) },
    { idempotencyKey: form.token || null, actor },
  );
}

/** What an operator may record of a pending refund, after checking with its provider. */
export const RECORDED_OUTCOMES = ["failed", "succeeded"] as const;
export type RecordedOutcome = typeof RECORDED_OUTCOMES[number];

/** The longest note an operator's record takes: a sentence or two, like a refund's reason. */
const NOTE_MAX = 500;

/** An operator's record of a refund's outcome, as read: the refund, its payment, the outcome and the note. */
export interface RefundSettlement {
  payment: Payment;
  refund: Refund;
  outcome: RecordedOutcome;
  note: string;
}

/**
 * What an operator's "settle by hand" form asks, read and checked for its confirmation: the refund must be one of the
 * payment's and still pending, the outcome one of RECORDED_OUTCOMES and the note given (what the provider said, and
 * when: the audit log keeps it). Throws what is wrong, in words for the operator.
 */
export async function previewRefundSettlement(
  ctx: AppContext,
  paymentId: string,
  refundId: string,
  form: { outcome?: string; note?: string },
): Promise<RefundSettlement> {
  const payment = await findPayment(ctx.kv, paymentId);
  const refund = payment && hasIdShape("refund", refundId) ? await getRefund(ctx.kv, refundId) : null;
  if (!payment || !refund || refund.paymentId !== payment.id) throw new NotFoundError("Unknown refund.");
  if (refund.status !== "pending") throw notPending(refund);
  const outcome = RECORDED_OUTCOMES.find((o) => o === form.outcome);
  const note = (form.note ?? "").trim();
  const fields: Record<string, string> = {};
  if (!outcome) fields.outcome = "choose what the provider did";
  if (!note) fields.note = "is required";
  else if (note.length > NOTE_MAX) fields.note = `is longer than ${NOTE_MAX} characters`;
  if (!outcome || Object.keys(fields).length) {
    throw new ValidationError(
      `Choose what the provider did with the refund, and say in the note how you know (up to ${NOTE_MAX} ` +
        `characters), e.g. "Bansky support confirmed no refund on 2026-11-30".`,
      fields,
    );
  }
  return { payment, refund, outcome, note };
}

/**
 * An operator settles a refund the provider's API leaves pending (a retry it refused that we could not take as final,
 * "pending" for good), with what they learnt at the provider: failed gives its amount back, succeeded moves the
 * payment, and the shop gets refund.failed or refund.succeeded, exactly as when the provider's answer comes
 * (settleRefund), with their audit entry in the same atomic operation. A refund that settled meanwhile (its webhook or
 * its job came first) is left as it is, and the refusal says how it settled.
 */
export async function settleRefundByHand(
  ctx: AppContext,
  paymentId: string,
  refundId: string,
  form: { outcome?: string; note?: string },
  { actor }: { actor: string },
): Promise<Refund> {
  const { refund, outcome, note } = await previewRefundSettlement(ctx, paymentId, refundId, form);
  // A success at a provider that can reverse one (Stripe) is asked about again later, as any: it needs its reference.
  const reversible = outcome === "succeeded" && refund.providerRef !== null &&
    await ctx.providers.forPayment(refundScope(refund)).then((a) => a.adapter.refundsCanReverse, () => false);
  const { refund: after, written } = await settleRefund(ctx, refund.id, {
    ref: refund.providerRef,
    status: outcome,
    reversible,
    recordedBy: { actor, note },
  });
  if (!written) throw notPending(after);
  return after;
}

/** The refusal of a record for a refund that is not pending (any more): how it settled, and that nothing changed. */
function notPending(r: Refund): ConflictError {
  const how = r.settledBy
    ? `recorded by ${r.settledBy.actor} ("${r.settledBy.note}")`
    : r.succeededAt !== undefined
    ? "reversed by the provider after it had succeeded"
    : "by the provider's own answer";
  const when = r.settledAt ? ` at ${new Date(r.settledAt).toISOString().replace("T", " ").slice(0, 19)} UTC` : "";
  return new ConflictError(
    `This refund is not pending any more: it ${r.status}${when}, ${how}. Nothing was recorded or changed.`,
    "refund_not_pending",
  );
}
