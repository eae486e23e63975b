import type { AppContext } from "../context.ts";
import { AppError, UpstreamError } from "../errors.ts";
import { log } from "../log.ts";
import { syncInvoice } from "./deposits.ts";
import { sumUnits } from "./amounts.ts";
import type { Shop } from "../db/shops.ts";
import { INVOICE_STATUS_RULES } from "./status.ts";
import { updateInvoice } from "./transition.ts";
import { getShopInvoice } from "./query.ts";
import type { Invoice } from "./types.ts";

/**
 * Cancels an invoice that is still open and not paid in full (deposits still confirming count); its address goes
 * back to the pool in the same operation. A deposit that arrives afterwards is
 * recorded as late, never hidden. `actor` (an operator's email) is audited.
 */
export async function cancelInvoice(
  ctx: AppContext,
  invoiceId: string,
  opts: { actor?: string } = {},
): Promise<Invoice> {
  // Read the chain first: money already confirmed there (its notice still on the way) must not be cancelled away.
  const read = await readChainFirst(ctx, invoiceId);
  const result = await updateInvoice(ctx, invoiceId, (inv, now) => {
    if (inv.status === "cancelled") return null;
    if (!INVOICE_STATUS_RULES[inv.status].cancellable) {
      const article = /^[aeiou]/.test(inv.status) ? "An" : "A";
      throw new AppError(409, "invoice_not_cancellable", `${article} ${inv.status} invoice cannot be cancelled.`);
    }
    // Paid in full, the confirmations still to come: cancelled, that money would sit in a closed invoice unsaid.
    // Only deposits the chain still shows count (one dropped from it would hold the invoice open for good); when
    // the chain could not be read, those on record do.
    const onChain = inv.deposits.filter((d) => !d.late && (!read.shown || read.shown.has(d.txid)));
    if (sumUnits(onChain.map((d) => d.amount)) >= BigInt(inv.amount)) {
      throw new AppError(
        409,
        "invoice_not_cancellable",
        "Deposits covering the whole amount are waiting for their confirmations: the invoice cannot be cancelled.",
      );
    }
    return {
      to: "cancelled",
      events: [{ type: "cancel_requested", at: now, data: { by: opts.actor ?? "api" } }],
      audit: opts.actor ? { actor: opts.actor, action: "invoice.cancel" } : undefined,
    };
  });
  return result.invoice;
}

/**
 * Brings the invoice up to date with the chain; answers the transactions the chain shows at its address, or null
 * when it could not be read (the cancel then goes on what we know).
 */
async function readChainFirst(ctx: AppContext, invoiceId: string): Promise<{ shown: Set<string> | null }> {
  try {
    const { chain } = await syncInvoice(ctx, invoiceId);
    return { shown: new Set(chain.deposits.map((d) => d.txid)) };
  } catch (err) {
    if (!(err instanceof UpstreamError)) throw err;
    log.warn("chain read before a cancel failed; cancelling on what we know", { invoiceId, detail: err.detail });
    return { shown: null };
  }
}

/** The shop API's cancel: only of the shop's own invoices (another shop's is not found). */
export async function cancelShopInvoice(ctx: AppContext, shop: Shop, invoiceId: string): Promise<Invoice> {
  const inv = await getShopInvoice(ctx, shop, invoiceId);
  return await cancelInvoice(ctx, inv.id);
}
