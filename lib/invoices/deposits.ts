import type { AppContext } from "../context.ts";
import { AppError, NotFoundError, UpstreamError } from "../errors.ts";
import { getAddressOwner, getInvoice, getPoolAddressEntry } from "../db/invoices.ts";
import { hasIdShape } from "../ids.ts";
import { log, warnRepeatable } from "../log.ts";
import { parseStrictJson } from "../json_body.ts";
import { sumUnits } from "./amounts.ts";
import { confirmationsFinal, confirmationsNeeded } from "./coins.ts";
import { requireChain } from "./chain.ts";
import { type AddressState, CHAIN_SIGNATURE_HEADER, ChainNotice, checkChainSignature } from "./chain_wire.ts";
import { canMoveInvoice, type InvoiceStatus, isInvoiceOpen } from "./status.ts";
import { type InvoiceChange, type InvoiceUpdate, updateInvoice } from "./transition.ts";
import { countsToward, type Invoice, type InvoiceDeposit, type InvoiceEvent, type PoolAddress } from "./types.ts";

/** Deposits listed on one invoice; more (dust spam) are logged and left to operators, keeping the record small. */
export const MAX_DEPOSITS_PER_INVOICE = 100;
/**
 * Past this many, a deposit of less than a hundredth of the invoice's amount (dust: anyone can send it to the address
 * the checkout page shows) is logged and not listed, so dust cannot fill the list before the buyer's payment: what
 * is left of it takes only deposits the shop would want to hear of.
 */
export const DUST_LISTED_UP_TO = 80;

/**
 * Which of the chain's deposits at an address are this invoice's: those the
 * chain saw while the invoice was the address's latest holder (from its
 * creation until the next invoice took the address). An address is reused, so
 * time is what tells two invoices' money apart.
 */
export function claimWindow(inv: Invoice, address: PoolAddress | null): { from: number; until: number | null } | null {
  if (!address || address.lastInvoiceId === inv.id) return { from: inv.createdAt, until: null };
  if (address.previousInvoiceId === inv.id) return { from: inv.createdAt, until: address.lastTakenAt };
  return null;
}

/**
 * The status the deposits call for. Received = confirmed by the network's
 * confirmations; final = twice as deep (finished). Late and dropped deposits
 * never count. Finished also waits for every confirmed deposit to be final
 * (deposits still unconfirmed then become late as it closes, see
 * decideFromChain), so what `invoice.finished` says was paid, overpayment
 * included, never changes after it.
 */
export function statusFromDeposits(inv: Invoice, deposits: InvoiceDeposit[]): InvoiceStatus {
  const needed = confirmationsNeeded(inv.network);
  const final = confirmationsFinal(inv.network);
  const counted = deposits.filter(countsToward);
  const confirmed = counted.filter((d) => d.confirmations >= needed);
  const amount = BigInt(inv.amount);
  if (
    sumUnits(confirmed.filter((d) => d.confirmations >= final).map((d) => d.amount)) >= amount &&
    confirmed.every((d) => d.confirmations >= final)
  ) return "finished";
  if (sumUnits(confirmed.map((d) => d.amount)) >= amount) return "payment_accepted";
  if (counted.some((d) => d.confirmations < needed)) return "payment_confirmation";
  if (counted.length) return "partially_paid";
  return "waiting_for_deposit";
}

/** A read of the invoice's address at the chain, and when it was asked for (our clock). */
export interface ChainRead {
  state: AddressState;
  at: number;
}

/**
 * What the chain's view of the address means for the invoice: deposits new,
 * deeper, dropped or back, the status they call for, expiry when nothing
 * arrived by `expiresAt`, and the next poll. Null when nothing changed and no
 * poll is due, or when the invoice was last decided on a newer read.
 */
export function decideFromChain(
  inv: Invoice,
  read: ChainRead,
  window: { from: number; until: number | null },
  now: number,
  pollMs: number,
): InvoiceChange | null {
  // A poll and a notice can cross: applied last, the older read would undo what the newer one saw (a drop, say).
  if (inv.chainReadAt !== undefined && read.at < inv.chainReadAt) return null;
  const needed = confirmationsNeeded(inv.network);
  const open = isInvoiceOpen(inv.status);
  const inWindow = (seenAt: number) => seenAt >= window.from && (window.until === null || seenAt < window.until);
  const byTx = new Map(read.state.deposits.map((d) => [d.txid, d]));
  const events: InvoiceEvent[] = [];
  const deposits = inv.deposits.map((d) => {
    const seen = byTx.get(d.txid);
    if (!seen) {
      // Gone from the chain: replaced, double-spent or evicted before its confirmations, or, rarely, reorganised away
      // after them. Counted, it would hold the invoice open for good and tell the buyer their money is on its way.
      if (d.dropped) return d;
      if (d.confirmations >= needed) {
        warnRepeatable("invoice deposit gone", "a confirmed deposit is gone from the chain (a reorganisation?)", {
          invoiceId: inv.id,
          txid: d.txid,
          confirmations: d.confirmations,
        });
      }
      events.push({ type: "deposit_dropped", at: now, data: { txid: d.txid, amount: d.amount } });
      return { ...d, dropped: true };
    }
    if (d.dropped) {
      // Shown again (rebroadcast, or a reorganisation undone). It is this invoice's only if the chain saw it while
      // the address was this invoice's (otherwise the invoice holding the address now counts it), and money back
      // after the invoice closed is late.
      if (!inWindow(seen.seenAt)) return d;
      const late = d.late || !open;
      events.push({
        type: late ? "late_deposit" : "deposit_seen",
        at: now,
        data: { txid: d.txid, amount: d.amount, confirmations: seen.confirmations },
      });
      return { ...d, dropped: false, late, confirmations: seen.confirmations };
    }
    if (seen.confirmations === d.confirmations) return d;
    if (!d.late && d.confirmations < needed && seen.confirmations >= needed) {
      events.push({ type: "deposit_confirmed", at: now, data: { txid: d.txid, confirmations: seen.confirmations } });
    }
    return { ...d, confirmations: seen.confirmations };
  });
  const known = new Set(inv.deposits.map((d) => d.txid));
  const fresh = read.state.deposits.filter((d) => !known.has(d.txid) && inWindow(d.seenAt));
  // Nothing arrived before expiresAt: the invoice expired then, whenever the sweep comes by, so money seen since is
  // late. Decided only once our own clock says it expired (the chain's may run ahead), in the step that expires it.
  const expiredUnpaid = inv.status === "waiting_for_deposit" && now >= inv.expiresAt &&
    !fresh.some((d) => d.seenAt < inv.expiresAt);
  const dust = BigInt(inv.amount) / 100n;
  let dustLeft = 0;
  for (const d of fresh) {
    if (deposits.length >= MAX_DEPOSITS_PER_INVOICE) {
      warnRepeatable("invoice full", "invoice holds too many deposits; more are not listed", { invoiceId: inv.id });
      break;
    }
    if (deposits.length >= DUST_LISTED_UP_TO && BigInt(d.amount) < dust) {
      dustLeft++;
      continue;
    }
    const late = !open || (expiredUnpaid && d.seenAt >= inv.expiresAt);
    const deposit: InvoiceDeposit = { ...d, late };
    deposits.push(deposit);
    events.push({
      type: late ? "late_deposit" : "deposit_seen",
      at: now,
      data: { txid: d.txid, amount: d.amount, confirmations: d.confirmations },
    });
  }
  // Unlisted, the same dust is found again at every poll: a line a minute says it.
  if (dustLeft) {
    warnRepeatable("invoice dust", "dust deposits not listed on a full invoice", {
      invoiceId: inv.id,
      deposits: dustLeft,
    });
  }
  const changed = events.length > 0 || deposits.some((d, i) => d !== inv.deposits[i]);
  const pollDue = open && inv.checkAt !== null && inv.checkAt <= now;
  if (!changed && !pollDue) return null;
  if (!open) return { events, patch: { deposits, chainReadAt: read.at } };
  let to = statusFromDeposits(inv, deposits);
  // Statuses move only along the table; the deposits decide among the moves it allows.
  if (to !== inv.status && !canMoveInvoice(inv.status, to)) to = inv.status;
  if (to === "waiting_for_deposit" && now >= inv.expiresAt) to = "expired";
  // Finishing closes the invoice: a deposit not confirmed by then is late money (shown, never counted), so it can
  // neither hold the invoice and its address open (a stranger's dust with too low a fee) nor change what
  // invoice.finished said was paid.
  const closing = to === "finished" && inv.status !== "finished";
  const settled = closing
    ? deposits.map((d) => {
      if (!countsToward(d) || d.confirmations >= needed) return d;
      events.push({
        type: "late_deposit",
        at: now,
        data: { txid: d.txid, amount: d.amount, unconfirmedAtFinish: true },
      });
      return { ...d, late: true };
    })
    : deposits;
  const checkAt = to === "waiting_for_deposit" ? Math.min(inv.expiresAt, now + pollMs) : now + pollMs;
  return { to, events, patch: { deposits: settled, checkAt, chainReadAt: read.at } };
}

/** Reads the invoice's address at the chain and applies what it shows (the notice handler, the job and a cancel). */
export async function syncInvoice(ctx: AppContext, invoiceId: string, given?: ChainRead): Promise<InvoiceUpdate> {
  const inv = await getInvoice(ctx.kv, invoiceId);
  if (!inv) throw new NotFoundError("Unknown invoice.");
  const read = given ?? await readAddress(ctx, inv);
  const address = (await getPoolAddressEntry(ctx.kv, inv)).value;
  const window = claimWindow(inv, address);
  if (!window) return { outcome: "unchanged", invoice: inv };
  return await updateInvoice(
    ctx,
    invoiceId,
    (current, now) => decideFromChain(current, read, window, now, ctx.config.chainPollMs),
  );
}

/** The chain's view of an address, stamped with when we asked (a read that crosses a newer one is then let go). */
async function readAddress(ctx: AppContext, at: Pick<Invoice, "network" | "address">): Promise<ChainRead> {
  const asked = ctx.now();
  return { state: await requireChain(ctx).getAddress(at.network, at.address), at: asked };
}

/**
 * The `invoice_check` job: polls an open invoice's address, so a lost notice
 * changes nothing, and expires it at `expiresAt` when no money came. Safe to
 * run any number of times; a chain that does not answer is asked again at the
 * next poll (nothing expires while we cannot see the chain).
 */
export async function runInvoiceCheck(ctx: AppContext, id: string): Promise<void> {
  const inv = await getInvoice(ctx.kv, id);
  if (!inv || !isInvoiceOpen(inv.status) || inv.checkAt === null || inv.checkAt > ctx.now()) return;
  try {
    await syncInvoice(ctx, id);
  } catch (err) {
    // A chain that does not answer, or none configured any more: nothing is decided without it.
    const detail = err instanceof UpstreamError
      ? err.detail
      : err instanceof AppError && err.code === "invoices_unavailable"
      ? "no chain service configured"
      : null;
    if (detail === null) throw err;
    log.warn("chain read failed; will poll again", { invoiceId: id, detail });
    await updateInvoice(
      ctx,
      id,
      (current, now) =>
        isInvoiceOpen(current.status) && current.checkAt !== null && current.checkAt <= now
          ? { events: [], patch: { checkAt: now + ctx.config.chainPollMs } }
          : null,
    );
  }
}

export type ChainNoticeOutcome = "applied" | "unchanged";

/**
 * A notice from the chain service: verified by its signature, then taken as a
 * hint only. The address is read again at the chain, and the invoice it
 * concerns (the open one holding it, or the one it last served, for a late
 * deposit) is brought up to date. A notice about an address that is not ours
 * is refused (404) so it is counted against the sender.
 */
export async function handleChainNotice(ctx: AppContext, headers: Headers, rawBody: string) {
  const problem = checkChainSignature(
    requireChain(ctx).settings.webhookSecret,
    headers.get(CHAIN_SIGNATURE_HEADER),
    rawBody,
    Math.floor(ctx.now() / 1000),
  );
  if (problem) {
    warnRepeatable(`chain notice rejected:${problem}`, "chain notice rejected", { reason: problem });
    throw new AppError(401, "invalid_webhook", `Notice rejected: ${problem}.`);
  }
  const parsed = ChainNotice.safeParse(parseStrictJson(rawBody));
  if (!parsed.success) throw new AppError(400, "invalid_webhook", "Notice rejected: unexpected body.");
  const notice = parsed.data;
  const shopId = await getAddressOwner(ctx.kv, notice.network, notice.address);
  if (!shopId) throw new NotFoundError("Unknown address.");
  const address = (await getPoolAddressEntry(ctx.kv, { shopId, network: notice.network, address: notice.address }))
    .value;
  const read = await readAddress(ctx, notice);
  const deposit = read.state.deposits.find((d) => d.txid === notice.txid);
  // A transaction the chain no longer shows was dropped, from whichever invoice listed it: the address's two latest
  // (the one holding it, or the one before, for late money) are brought up to date. Otherwise the one whose time
  // the chain saw it in.
  const candidates = !deposit
    ? [address?.lastInvoiceId, address?.previousInvoiceId]
    : [deposit.seenAt >= (address?.lastTakenAt ?? 0) ? address?.lastInvoiceId : address?.previousInvoiceId];
  let outcome: ChainNoticeOutcome = "unchanged";
  for (const invoiceId of candidates) {
    if (!invoiceId || !hasIdShape("invoice", invoiceId)) continue;
    if ((await syncInvoice(ctx, invoiceId, read)).outcome === "applied") outcome = "applied";
  }
  return outcome;
}
