import type { AppContext } from "../context.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import { commitInvoiceWrite, getInvoiceEntry, getPoolAddressEntry } from "../db/invoices.ts";
import { log } from "../log.ts";
import { statusMoveAudit } from "../db/audit.ts";
import { newDelivery } from "../relay/delivery.ts";
import { firstAttemptLease } from "../relay/deliver.ts";
import { sendCommitted } from "../relay/pool.ts";
import { canMoveInvoice, invoicePostbackType, type InvoiceStatus, isInvoiceOpen } from "./status.ts";
import type { Invoice, InvoiceEvent } from "./types.ts";
import type { InvoiceStat } from "../db/stats.ts";
import { invoicePostbackBody } from "./view.ts";
import { noteAddressFreed } from "./pool.ts";

/** What a caller wants done to an invoice, decided from the version just read. */
export interface InvoiceChange {
  /** The status to move to; absent or the same status = no move (deposits recorded, say). */
  to?: InvoiceStatus;
  /** Why, for the timeline (deposit_seen, cancel_requested, ...); a status move adds its own entry. */
  events: InvoiceEvent[];
  /** Fields set besides the status (deposits, the next poll). */
  patch?: Partial<Pick<Invoice, "deposits" | "checkAt" | "chainReadAt">>;
  /** An operator's action: audited in the same operation. */
  audit?: { actor: string; action: string };
}

export type InvoiceUpdate =
  | { outcome: "applied" | "unchanged"; invoice: Invoice }
  /** The status table does not allow the move; nothing was written. */
  | { outcome: "refused"; invoice: Invoice };

const MAX_CONFLICT_RETRIES = 8;

/**
 * The one way an invoice changes, whoever asks (a chain notice, the polling
 * job, expiry, the merchant's cancel, an operator). `decide` sees the invoice
 * as read and says what to do (null: nothing); the new version, its timeline,
 * the postback of a status move, the audit entry, the analytics activity, the
 * polling job's due time and, when it closes, its address back in the pool
 * commit in one atomic operation checked against the version read. A
 * concurrent writer makes it read and decide again.
 */
export async function updateInvoice(
  ctx: AppContext,
  invoiceId: string,
  decide: (inv: Invoice, now: number) => InvoiceChange | null,
): Promise<InvoiceUpdate> {
  for (let i = 0; i < MAX_CONFLICT_RETRIES; i++) {
    const entry = await getInvoiceEntry(ctx.kv, invoiceId);
    if (!entry.value) throw new NotFoundError("Unknown invoice.");
    const inv = entry.value;
    const now = ctx.now();
    const change = decide(inv, now);
    if (!change) return { outcome: "unchanged", invoice: inv };
    const to = change.to ?? inv.status;
    const moves = to !== inv.status;
    if (moves && !canMoveInvoice(inv.status, to)) return { outcome: "refused", invoice: inv };
    const closes = moves && isInvoiceOpen(inv.status) && !isInvoiceOpen(to);
    const next: Invoice = {
      ...inv,
      ...change.patch,
      status: to,
      updatedAt: now,
      closedAt: closes ? now : inv.closedAt,
      // A closed invoice holds no address and is polled no more; late deposits still reach it by notice.
      checkAt: isInvoiceOpen(to) ? (change.patch?.checkAt ?? inv.checkAt) : null,
    };
    const events = [...change.events];
    if (moves) events.push({ type: "status_changed", at: now, data: { from: inv.status, to } });
    const type = moves ? invoicePostbackType(to) : null;
    const delivery = type && next.postbackUrl
      ? newDelivery({
        paymentId: next.id,
        shopId: next.shopId,
        url: next.postbackUrl,
        eventType: type,
        body: invoicePostbackBody(next, type, now, ctx.config.publicBaseUrl),
        now,
        // Sent by this process right after the commit (sendCommitted).
        leaseUntil: firstAttemptLease(now),
      })
      : undefined;
    const release = closes ? await getPoolAddressEntry(ctx.kv, inv) : null;
    const stat = moves ? statFor(inv.status, to) : undefined;
    const saved = await commitInvoiceWrite(ctx.kv, entry as Deno.KvEntry<Invoice>, next, {
      events,
      delivery,
      stat,
      release: release?.value ? release as Deno.KvEntry<typeof release.value> : undefined,
      audit: change.audit && statusMoveAudit(change.audit, { at: now, target: inv.id, from: inv.status, to }),
      jobs: { queue: ctx.config.jobsQueue, now },
    });
    if (saved) {
      if (moves) log.info("invoice status changed", { invoiceId: inv.id, from: inv.status, to });
      if (delivery) sendCommitted(ctx, delivery, saved);
      if (release?.value) noteAddressFreed(ctx.kv, next.shopId, next.network);
      return { outcome: "applied", invoice: next };
    }
  }
  throw new ConflictError("The invoice is busy; retry.");
}

/** What a move adds to the stats: a paid invoice once (accepted, or finished without passing accepted), an ending. */
function statFor(from: InvoiceStatus, to: InvoiceStatus): InvoiceStat | undefined {
  switch (to) {
    case "payment_accepted":
      return "invoice_paid";
    case "finished":
      return from === "payment_accepted" ? undefined : "invoice_paid";
    case "expired":
      return "invoice_expired";
    case "cancelled":
      return "invoice_cancelled";
    case "waiting_for_deposit":
    case "payment_confirmation":
    case "partially_paid":
      return undefined;
  }
}
