import type { AppContext } from "../context.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { parseAmount } from "../money.ts";
import { findPayment } from "../payments/query.ts";
import type { Payment } from "../payments/types.ts";
import { randomId } from "../ids.ts";
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
