import type { AppContext } from "../context.ts";
import { listRefundsByPayment } from "../db/refunds.ts";
import type { Shop } from "../db/shops.ts";
import { getShopPayment } from "../payments/query.ts";
import type { Refund } from "./types.ts";

/** A shop's payment's refunds, oldest first; another shop's payment is not found. */
export async function listShopRefunds(ctx: AppContext, shop: Shop, paymentId: string): Promise<Refund[]> {
  const p = await getShopPayment(ctx, shop, paymentId);
  return listRefundsByPayment(ctx.kv, p.id);
}
