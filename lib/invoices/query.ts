import type { AppContext } from "../context.ts";
import { NotFoundError } from "../errors.ts";
import { getInvoice } from "../db/invoices.ts";
import type { Shop } from "../db/shops.ts";
import { hasIdShape } from "../ids.ts";
import type { Invoice } from "./types.ts";

/** An invoice by id; an id of the wrong shape is not looked up (it names nothing). */
export async function findInvoice(ctx: AppContext, id: string): Promise<Invoice> {
  const inv = hasIdShape("invoice", id) ? await getInvoice(ctx.kv, id) : null;
  if (!inv) throw new NotFoundError("Unknown invoice.");
  return inv;
}

/** One of the shop's invoices; another shop's is not found (no hint that it exists). */
export async function getShopInvoice(ctx: AppContext, shop: Shop, id: string): Promise<Invoice> {
  const inv = await findInvoice(ctx, id);
  if (inv.shopId !== shop.id) throw new NotFoundError("Unknown invoice.");
  return inv;
}
