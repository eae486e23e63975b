import { getShop } from "../db/shops.ts";
import type { AppContext } from "../context.ts";
import { NotFoundError } from "../errors.ts";
import { listDeliveriesByPayment, listDeliveryAttempts } from "../db/deliveries.ts";
import { listInvoiceEvents, listInvoices, listPoolAddresses } from "../db/invoices.ts";
import { type Network, NETWORK_IDS } from "./coins.ts";
import { findInvoice } from "./query.ts";
import type { Invoice, PoolAddress } from "./types.ts";

/**
 * What the console and the portal show of invoices, one query per page, each
 * taking the viewer's shop (null for an operator, who sees all): a portal can
 * never read another shop's invoice or pool.
 */

/** Everything about one invoice: the record, its timeline and every postback attempt. */
export async function describeInvoice(ctx: AppContext, id: string, shopId: string | null) {
  const invoice = await findInvoice(ctx, id);
  if (shopId !== null && invoice.shopId !== shopId) throw new NotFoundError("Unknown invoice.");
  const [events, deliveries, shop] = await Promise.all([
    listInvoiceEvents(ctx.kv, invoice),
    listDeliveriesByPayment(ctx.kv, invoice.id),
    getShop(ctx.kv, invoice.shopId),
  ]);
  return {
    invoice,
    /** Its shop's name; null for a shop gone since. */
    shopName: shop?.name ?? null,
    events,
    deliveries: await Promise.all(deliveries.map(async (d) => ({
      ...d,
      attemptLog: await listDeliveryAttempts(ctx.kv, d.id),
    }))),
  };
}

export type InvoiceInfo = Awaited<ReturnType<typeof describeInvoice>>;

/** Newest invoices, one shop's or everyone's (bounded); `lateMoney`: only those holding late money. */
export function listInvoicesFor(
  ctx: AppContext,
  shopId: string | null,
  opts: { limit: number; lateMoney: boolean },
): Promise<Invoice[]> {
  return listInvoices(ctx.kv, { shopId: shopId ?? undefined, ...opts });
}

export interface PoolNetwork {
  network: Network;
  free: PoolAddress[];
  /** Freed by a closed invoice and not to be taken yet (PoolAddress.readyAt). */
  resting: PoolAddress[];
  inUse: PoolAddress[];
  /** Out of the pool for good: too many transfers at it for the chain's answer (PoolAddress.retiredAt). */
  retired: PoolAddress[];
}

/** A shop's deposit-address pool by network: which addresses are free, resting, or held by an open invoice. */
export async function describePool(ctx: AppContext, shopId: string): Promise<PoolNetwork[]> {
  const addresses = await listPoolAddresses(ctx.kv, shopId);
  const now = ctx.now();
  const released = (a: PoolAddress) => a.heldBy === null && a.retiredAt === undefined;
  const rests = (a: PoolAddress) => released(a) && (a.readyAt ?? 0) > now;
  return NETWORK_IDS.map((network) => {
    const mine = addresses.filter((a) => a.network === network);
    return {
      network,
      free: mine.filter((a) => released(a) && !rests(a)),
      resting: mine.filter(rests),
      inUse: mine.filter((a) => a.heldBy !== null),
      retired: mine.filter((a) => a.heldBy === null && a.retiredAt !== undefined),
    };
  }).filter((p) => p.free.length + p.resting.length + p.inUse.length + p.retired.length > 0);
}
