import type { AppContext } from "../context.ts";
import { AppError, UpstreamError } from "../errors.ts";
import { log } from "../log.ts";
import { syncInvoice } from "./deposits.ts";
import { sumUnits } from "./amounts.ts";
import type { Shop } from "../db/shops.ts";
import { INVOICE_STATUS_RULES } from "./status.ts";
import { updateInvoice } from "./transition.ts";
import { getShopInvoice } from "./query.ts";
import { countsToward, type Invoice } from "./types.ts";

/**
 * Cancels an invoice that is still open and not paid in full (deposits still confirming count); its address goes
 * back to the pool in the same operation, to rest before reuse. A deposit that arrives afterwards is recorded as
 * late, never hidden. `actor` (an operator's email) is audited.
 */
export async function cancelInvoice(
  ctx: AppContext,
  invoiceId: string,
  opts: { actor?: string } = {},
): Promise<Invoice> {
  // Read the chain first: money already confirmed there (its notice still on the way) must not be cancelled away.
  await readChainFirst(ctx, invoiceId);
  const result = await updateInvoice(ctx, invoiceId, (inv, now) => {
    if (inv.status === "cancelled") return null;
    if (!INVOICE_STATUS_RULES[inv.status].cancellable) {
      const article = /^[aeiou]/.test(inv.status) ? "An" : "A";
      throw new AppError(409, "invoice_not_cancellable", `${article} ${inv.status} invoice cannot be cancelled.`);
    }
    // Paid in full, the confirmations still to come: cancelled, that money would sit in a closed invoice unsaid.
    // Deposits the chain dropped do not count (the read above marked them; when the chain could not be read, the
    // invoice as we last saw it decides).
    if (sumUnits(inv.deposits.filter(countsToward).map((d) => d.amount)) >= BigInt(inv.amount)) {
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

/** Brings the invoice up to date with the chain; when it cannot be read, the cancel goes on what we know. */
async function readChainFirst(ctx: AppContext, invoiceId: string): Promise<void> {
  try {
    await syncInvoice(ctx, invoiceId);
  } catch (err) {
    if (!(err instanceof UpstreamError)) throw err;
    log.warn("chain read before a cancel failed; cancelling on what we know", { invoiceId, detail: err.detail });
  }
}

/** The shop API's cancel: only of the shop's own invoices (another shop's is not found). */
export async function cancelShopInvoice(ctx: AppContext, shop: Shop, invoiceId: string): Promise<Invoice> {
  const inv = await getShopInvoice(ctx, shop, invoiceId);
  return await cancelInvoice(ctx, inv.id);
}
