import type { AppContext } from "../context.ts";
import { NotFoundError } from "../errors.ts";
import { getInvoice } from "../db/invoices.ts";
import { getShop, type Shop } from "../db/shops.ts";
import { hasIdShape } from "../ids.ts";
import type { Invoice } from "./types.ts";

/** An invoice by id; an id of the wrong shape is not looked up (it names nothing). */
export async function findInvoice(ctx: AppContext, id: string): Promise<Invoice> {
  const inv = hasIdShape("invoice", id) ? await getInvoice(ctx.kv, id) : null;
  if (!inv) throw new NotFoundError("Unknown invoice.");
  return inv;
}

/**
 * An invoice for its buyer's page, with the name of the shop it pays (the buyer is told whom they pay, as a form's
 * and a checkout's pages do); null for a shop gone since.
 */
export async function findBuyerInvoice(
  ctx: AppContext,
  id: string,
): Promise<{ invoice: Invoice; shopName: string | null }> {
  const invoice = await findInvoice(ctx, id);
  const shop = await getShop(ctx.kv, invoice.shopId);
  return { invoice, shopName: shop?.name ?? null };
}

/** One of the shop's invoices; another shop's is not found (no hint that it exists). */
export async function getShopInvoice(ctx: AppContext, shop: Shop, id: string): Promise<Invoice> {
  const inv = await findInvoice(ctx, id);
  if (inv.shopId !== shop.id) throw new NotFoundError("Unknown invoice.");
  return inv;
}
