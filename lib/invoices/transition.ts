import type { AppContext } from "../context.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import { commitInvoiceWrite, getInvoiceEntry, getPoolAddressEntry } from "../db/invoices.ts";
import { log } from "../log.ts";
import { type AuditAction, statusMoveAudit } from "../db/audit.ts";
import { newDelivery } from "../relay/delivery.ts";
import { firstAttemptLease, sendCommitted } from "../relay/pool.ts";
import {
  canMoveInvoice,
  type InvoicePostbackType,
  invoicePostbackType,
  type InvoiceStatus,
  isInvoiceOpen,
  LATE_PAYMENT_POSTBACK,
} from "./status.ts";
import {
  countsToward,
  type Invoice,
  type InvoiceDeposit,
  type InvoiceEvent,
  isLateMoney,
  otherCoinDepositsOf,
} from "./types.ts";
import { confirmationsFinal, confirmationsNeeded } from "./coins.ts";
import type { InvoiceStat } from "../db/stats.ts";
import { invoicePostbackBody, showsTheSame } from "./view.ts";
import { noteAddressFreed } from "./pool.ts";

/** What a caller wants done to an invoice, decided from the version just read. */
export interface InvoiceChange {
  /** The status to move to; absent or the same status = no move (deposits recorded, say). */
  to?: InvoiceStatus;
  /** Why, for the timeline (deposit_seen, cancel_requested, ...); a status move adds its own entry. */
  events: InvoiceEvent[];
  /** Fields set besides the status (deposits, other coins' transfers, the next poll). */
  patch?: Partial<Pick<Invoice, "deposits" | "otherCoinDeposits" | "checkAt" | "addressWorn" | "depositsGivenUp">>;
  /** An operator's action: audited in the same operation. */
  audit?: { actor: string; action: AuditAction };
  /** Transactions to the invoice's address it lists for the first time: claimed for it in the same operation. */
  claims?: string[];
}

export type InvoiceUpdate =
  | { outcome: "applied" | "unchanged"; invoice: Invoice }
  /** The status table does not allow the move; nothing was written. */
  | { outcome: "refused"; invoice: Invoice }
  /** The invoice changed since the version the decision was to be based on (`basedOn`); nothing was written. */
  | { outcome: "stale"; invoice: Invoice };

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
  opts: { basedOn?: string } = {},
): Promise<InvoiceUpdate> {
  for (let i = 0; i < MAX_CONFLICT_RETRIES; i++) {
    const entry = await getInvoiceEntry(ctx.kv, invoiceId);
    if (!entry.value) throw new NotFoundError("Unknown invoice.");
    const inv = entry.value;
    // Decided on something read beside this version (the chain): changed since, that reading may be older than
    // what changed it, so the caller reads again.
    if (opts.basedOn !== undefined && entry.versionstamp !== opts.basedOn) return { outcome: "stale", invoice: inv };
    const now = ctx.now();
    const change = decide(inv, now);
    if (!change) return { outcome: "unchanged", invoice: inv };
    const to = change.to ?? inv.status;
    const moves = to !== inv.status;
    if (moves && !canMoveInvoice(inv.status, to)) return { outcome: "refused", invoice: inv };
    const closes = moves && isInvoiceOpen(inv.status) && !isInvoiceOpen(to);
    const events = [...change.events];
    const deposits = closes
      ? lateAtClose(change.patch?.deposits ?? inv.deposits, inv, now, events)
      : change.patch?.deposits;
    const next: Invoice = {
      ...inv,
      ...change.patch,
      ...(deposits ? { deposits } : {}),
      status: to,
      // Shops order an invoice's postbacks by their timestamp, which is this (invoices.md): after the last change's,
      // also when this server's clock is behind the one that made that.
      updatedAt: Math.max(now, inv.updatedAt + 1),
      closedAt: closes ? now : inv.closedAt,
    };
    // updatedAt is when what the shop sees changed (the API's view, which postbacks carry, so a postback's data has
    // its timestamp), not when we last wrote: most writes of an open invoice only schedule its next poll, and a time
    // that moved every 30 seconds would tell the shop nothing. A move always shows.
    if (!moves && showsTheSame(inv, next)) next.updatedAt = inv.updatedAt;
    // A patch may set checkAt to null (stop polling); only one without it keeps what was.
    const asked = change.patch?.checkAt;
    const wanted = asked === undefined ? (closes ? now + ctx.config.chainPollMs : inv.checkAt) : asked;
    next.checkAt = nextCheck(next, wanted, now, ctx.config.addressRestMs);
    if (moves) events.push({ type: "status_changed", at: now, data: { from: inv.status, to } });
    const lateConfirmed = newlyConfirmedLate(inv, next);
    for (const d of lateConfirmed) {
      events.push({ type: "late_deposit_confirmed", at: now, data: { txid: d.txid, amount: d.amount } });
    }
    const types: InvoicePostbackType[] = [
      ...(moves ? [invoicePostbackType(to)].filter((t) => t !== null) : []),
      ...(lateConfirmed.length ? [LATE_PAYMENT_POSTBACK] : []),
    ];
    const postbackUrl = next.postbackUrl;
    const deliveries = postbackUrl
      ? types.map((type) =>
        newDelivery({
          paymentId: next.id,
          shopId: next.shopId,
          url: postbackUrl,
          eventType: type,
          body: invoicePostbackBody(next, type, next.updatedAt, ctx.config.publicBaseUrl),
          now,
          // Sent by this process right after the commit (sendCommitted).
          leaseUntil: firstAttemptLease(ctx, now),
        })
      )
      : [];
    const release = closes ? await getPoolAddressEntry(ctx.kv, inv) : null;
    // Worn as found by a read after it closed (its address freed already): the address leaves the pool now, else the
    // next invoice would take an address nearer the chain answer's bound than ADDRESS_RETIRES_AT allows for.
    const wornAfterClose = !closes && !isInvoiceOpen(next.status) && next.addressWorn === true && !inv.addressWorn;
    const retireFreed = wornAfterClose ? await getPoolAddressEntry(ctx.kv, inv) : null;
    const stat = moves ? statFor(inv.status, to) : undefined;
    const saved = await commitInvoiceWrite(ctx.kv, entry as Deno.KvEntry<Invoice>, next, {
      events,
      deliveries,
      stat,
      // Without a rest (INVOICE_ADDRESS_REST_S=0) free at once, whatever the clock says then.
      release: release?.value
        ? {
          entry: release as Deno.KvEntry<typeof release.value>,
          readyAt: restedAt(now, ctx.config.addressRestMs),
          retire: next.addressWorn === true,
        }
        : undefined,
      audit: change.audit && statusMoveAudit(change.audit, { at: now, target: inv.id, from: inv.status, to }),
      retireFreed: retireFreed?.value ? retireFreed as Deno.KvEntry<typeof retireFreed.value> : undefined,
      claims: change.claims,
      jobs: { queue: ctx.config.jobsQueue, now },
    });
    if (saved) {
      if (moves) log.info("invoice status changed", { invoiceId: inv.id, from: inv.status, to });
      for (const delivery of deliveries) sendCommitted(ctx, delivery, saved);
      if (release?.value && !next.addressWorn) noteAddressFreed(ctx.kv, next.shopId, next.network);
      return { outcome: "applied", invoice: next };
    }
    // Decided on something read beside the invoice (the chain, the deposits' claims): what failed the write may
    // be one of those, which deciding again on the same reading would not see.
    if (opts.basedOn !== undefined) return { outcome: "stale", invoice: inv };
  }
  throw new ConflictError("The invoice is busy; retry.");
}

/**
 * Late money that got its confirmations with this change (confirming on a closed invoice, or listed already
 * confirmed, or made late as the invoice closed): the shop hears of it (LATE_PAYMENT_POSTBACK) once it is real.
 * Money still confirming is not announced: the chain may drop it.
 */
function newlyConfirmedLate(before: Invoice, after: Invoice): InvoiceDeposit[] {
  const needed = confirmationsNeeded(after.network);
  const real = (d: InvoiceDeposit) => isLateMoney(d) && d.confirmations >= needed;
  const known = new Set(before.deposits.filter(real).map((d) => d.txid));
  return after.deposits.filter((d) => real(d) && !known.has(d.txid));
}

/** When an address freed at `now` may be taken again; 0 (at once) without a rest. */
function restedAt(now: number, restMs: number): number {
  return restMs > 0 ? now + restMs : 0;
}

/**
 * Closing ends what the invoice counts: a deposit not confirmed by then is late money (shown, never counted), so
 * neither a stranger's dust with too low a fee nor a payment still confirming can change, after the shop was told
 * the invoice finished, expired or was cancelled, what it says was paid.
 */
function lateAtClose(deposits: InvoiceDeposit[], inv: Invoice, now: number, events: InvoiceEvent[]): InvoiceDeposit[] {
  const needed = confirmationsNeeded(inv.network);
  return deposits.map((d) => {
    if (!countsToward(d) || d.confirmations >= needed) return d;
    events.push({ type: "late_deposit", at: now, data: { txid: d.txid, amount: d.amount, unconfirmedAtClose: true } });
    return { ...d, late: true };
  });
}

/** Open with nothing seen, it is read less often as it ages (a tenth of its age), up to every 5 minutes. */
const IDLE_INTERVAL_MAX_MS = 5 * 60_000;

/**
 * An open invoice's next read: `wanted`, but while no deposit was ever seen at its address, no sooner than a tenth of
 * its age from now (at most 5 minutes), and never past its expiry. The chain's notices bring a payment at once; the
 * polls stand in for lost notices, and most invoices nobody pays (abandoned, or made in bulk through a public form:
 * 60 a minute from one address) were read every 30 seconds for their hour, 120 reads each; now about 35.
 */
function thinnedWhileNothingSeen(inv: Invoice, wanted: number | null, now: number): number | null {
  if (inv.deposits.length || wanted === null || wanted <= now || inv.expiresAt <= wanted) return wanted;
  const idle = Math.min(IDLE_INTERVAL_MAX_MS, Math.floor((now - inv.createdAt) / WATCH_INTERVAL_SHARE));
  return Math.min(Math.max(wanted, now + idle), inv.expiresAt);
}

/** How long after closing an invoice's address is still read for its deposits' news (late money, drops). */
const WATCH_AFTER_CLOSE_MS = 7 * 24 * 3_600_000;
/** Closed, it is read less often as time passes (a tenth of the time since it closed), up to once an hour. */
const WATCH_INTERVAL_SHARE = 10;
const WATCH_INTERVAL_MAX_MS = 3_600_000;

/**
 * When the polling job reads the invoice's address next: `wanted` while it is open, and after it closed while a
 * deposit it lists is not final (dropped ones included: the sender may rebroadcast it, and it is still this
 * invoice's money), for a week at most: closed, it is not the address's latest holder for long, and a drop, a
 * rebroadcast or a late deposit's confirmations would otherwise reach it only if a notice did. Notices still bring
 * news at once; the polls that stand in for lost ones thin out, so a stranger's dust left unconfirmed at an address
 * costs a few hundred reads over the week, not one every 30 seconds.
 *
 * With nothing of its own to watch, it is still read once as its address's rest (`restMs`) ends: money its buyer sends
 * meanwhile is its late money, which only a notice would bring otherwise, and once another invoice takes the address
 * nobody reads that money again (it is not the next invoice's). One read then finds all of it.
 */
function nextCheck(inv: Invoice, wanted: number | null, now: number, restMs: number): number | null {
  if (isInvoiceOpen(inv.status)) return thinnedWhileNothingSeen(inv, wanted, now);
  const final = confirmationsFinal(inv.network);
  // Other coins' transfers too: the shop waits for their confirmations (or sees their drop) before it returns them.
  const unsettled = [...inv.deposits, ...otherCoinDepositsOf(inv)].some((d) => d.confirmations < final);
  const closedAt = inv.closedAt ?? now;
  if (!unsettled) return now < closedAt + restMs ? closedAt + restMs : null;
  if (now >= closedAt + WATCH_AFTER_CLOSE_MS) return null;
  // At once stays at once: a read left deposits to list.
  if (wanted === null || wanted <= now) return wanted;
  return Math.max(wanted, now + Math.min(WATCH_INTERVAL_MAX_MS, Math.floor((now - closedAt) / WATCH_INTERVAL_SHARE)));
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
