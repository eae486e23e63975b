import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import type { Shop } from "../db/shops.ts";
import { movePayment } from "./transition.ts";
import { LATE_CHECK_MS } from "./janitor.ts";
import { getShopPayment } from "./query.ts";
import type { Payment } from "./types.ts";

/** 409 for a payment that is not pending; the message names the status it has. */
export class PaymentNotCancellableError extends AppError {
  constructor(status: string) {
    super(409, "payment_not_cancellable", `Only a pending payment can be cancelled; this one is ${status}.`);
  }
}

/**
 * The shop cancels a pending payment: the provider is told first, so it stops
 * taking money, then the engine moves the payment to `cancelled` (postback
 * `payment.cancelled`). If the buyer paid before the cancel arrived, the
 * payment takes the provider's status and the cancel is refused. A provider
 * that cannot cancel (money already on its way) does not stop ours: money it
 * confirms later still succeeds, marked late, by its webhook or one of the
 * late checks the payment keeps (janitor.ts, LATE_CHECK_MS). A provider that
 * cannot be reached changes nothing (502/504): the shop tries again.
 */
export async function cancelPayment(ctx: AppContext, shop: Shop, paymentId: string): Promise<Payment> {
  const p = await getShopPayment(ctx, shop, paymentId);
  if (p.status !== "pending" || !p.providerRef) throw new PaymentNotCancellableError(p.status);
  const result = await (await ctx.providers.forPayment(p)).adapter.cancel(p.providerRef);
  const now = ctx.now();
  if (!result.cancelled && result.status !== "pending") {
    const moved = await movePayment(ctx, {
      paymentId: p.id,
      to: result.status,
      because: { type: "status_checked", at: now, data: { confirmed: result.status, by: "cancel" } },
    });
    throw new PaymentNotCancellableError(moved.payment.status);
  }
  const moved = await movePayment(ctx, {
    paymentId: p.id,
    to: "cancelled",
    because: { type: "cancel_requested", at: now, data: { by: "shop", providerCancelled: result.cancelled } },
    checkAfterMs: result.cancelled ? undefined : LATE_CHECK_MS[0],
  });
  if (moved.outcome === "refused") throw new PaymentNotCancellableError(moved.payment.status);
  return moved.payment;
}
