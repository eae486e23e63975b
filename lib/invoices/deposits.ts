import type { AppContext } from "../context.ts";
import { AppError, NotFoundError, UpstreamError } from "../errors.ts";
import { getAddressOwner, getDepositClaims, getInvoice, getInvoiceEntry, getPoolAddressEntry } from "../db/invoices.ts";
import { hasIdShape } from "../ids.ts";
import { log, warnRepeatable } from "../log.ts";
import { parseStrictJson } from "../json_body.ts";
import { sumUnits } from "./amounts.ts";
import { coinDecimals, confirmationsFinal, confirmationsNeeded } from "./coins.ts";
import { requireChain } from "./chain.ts";
import {
  type AddressState,
  CHAIN_SIGNATURE_HEADER,
  type ChainDeposit,
  ChainNotice,
  checkChainSignature,
  MAX_DEPOSITS_SHOWN,
} from "./chain_wire.ts";
import { canMoveInvoice, type InvoiceStatus, isInvoiceOpen } from "./status.ts";
import { type InvoiceChange, type InvoiceUpdate, updateInvoice } from "./transition.ts";
import {
  countsToward,
  type Invoice,
  type InvoiceDeposit,
  type InvoiceEvent,
  type OtherCoinDeposit,
  otherCoinDepositsOf,
  type PoolAddress,
} from "./types.ts";
import { arrivedInTime, heldOpenPastExpiry, isDust } from "./expiry.ts";

/**
 * Deposits listed on one invoice, dropped ones aside; more (dust spam) are logged and left to operators, keeping the
 * record small.
 */
export const MAX_DEPOSITS_PER_INVOICE = 100;
/**
 * Deposits listed on one invoice, dropped ones and other coins' transfers included (an entry of those is no larger
 * than a deposit's): a bound on the record's size (KV takes 64 KiB a value).
 */
export const MAX_LISTED_WITH_DROPPED = 150;
/**
 * Past this many, a deposit of less than a hundredth of the invoice's amount (dust: anyone can send it to the address
 * the checkout page shows) is logged and not listed, so dust cannot fill the list before the buyer's payment: what
 * is left of it takes only deposits the shop would want to hear of.
 */
export const DUST_LISTED_UP_TO = 80;
/**
 * Other coins' transfers listed on one invoice, dropped ones included: enough for a buyer's mistakes; more are logged
 * for operators. They also take places of MAX_LISTED_WITH_DROPPED, after the deposits.
 */
export const MAX_OTHER_COIN_DEPOSITS = 20;
/**
 * Of those, the most that may be of coins we know nothing of (neither the network's own coin nor one we take). Anyone
 * can make a token and send it to every address a chain shows (airdrop spam, common on Tron): without this, twenty
 * such transfers would fill the list before a buyer's real mistake (TRX or ETH sent instead of USDT), which the shop
 * would then never see.
 */
export const MAX_UNKNOWN_COIN_DEPOSITS = MAX_OTHER_COIN_DEPOSITS / 2;

/**
 * Transfers at an address (of every coin, every invoice's that held it) from which it leaves the pool once its invoice
 * closes (Invoice.addressWorn). An address is reused for good and only ever gains transfers, a shop's buyers' and
 * strangers' dust alike; past MAX_DEPOSITS_SHOWN the chain's answer about it is refused, and an invoice holding it
 * could then never be read: never paid, never expired, its buyer's money unseen. Half of that leaves room for the
 * invoice holding it when it gets there.
 */
export const ADDRESS_RETIRES_AT = MAX_DEPOSITS_SHOWN / 2;

/**
 * When the chain saw the deposits that may be this invoice's: while it was the
 * address's latest holder (from its creation until the next invoice took the
 * address). An address is reused, so time is what tells two invoices' money
 * apart, until an invoice lists a transaction: from then on it is that
 * invoice's, whatever time the chain shows it with later (see Attribution).
 */
export function claimWindow(inv: Invoice, address: PoolAddress | null): ClaimWindow | null {
  if (!address || address.lastInvoiceId === inv.id) return { from: inv.createdAt, until: null };
  if (address.previousInvoiceId === inv.id) return { from: inv.createdAt, until: address.lastTakenAt };
  return null;
}

/** When the chain saw the deposits that may be an invoice's (claimWindow). */
export type ClaimWindow = { from: number; until: number | null };

/**
 * Whose the transactions the chain shows at an invoice's address are. One an invoice has listed is claimed by it
 * for good (getDepositClaims): the chain may show it again with a time in a later invoice's window (rebroadcast
 * after a drop, re-mined after a reorganisation), and the later invoice must not count the earlier buyer's money as
 * paid by its own buyer. One no invoice has listed is the invoice's whose window the chain saw it in. Deposits listed
 * before claims existed are claimed by the next write of their invoice that finds them in its window.
 */
export interface Attribution {
  /** Null once the invoice is neither the address's holder nor the one before: only its claims are its news. */
  window: ClaimWindow | null;
  /** The claims of the transactions the read shows, as read beside it (see readClaims); unclaimed ones absent. */
  claimedBy: ReadonlyMap<string, string>;
  /**
   * New transactions whose claims were not read (readClaims stopped once it had enough): listed by a later read. A
   * claim is the transaction's, whatever its coins, so one read for a deposit serves its other coins too.
   */
  unread?: ReadonlySet<string>;
}

/** Most transactions one write claims: each is a check, and an atomic operation takes 100 (the write has 3 more). */
export const MAX_CLAIMS_PER_WRITE = 90;
/** New transactions whose claims are read at once (trips of 10 to the store). */
const CLAIM_READ_BATCH = 40;

/**
 * The read's transactions new to the invoice that may be its (seen in its window; a claim may make one another's),
 * in the order they are listed: money over the dust line first, so a stranger's dust cannot push a payment to a
 * later read (by then past expiresAt, it would be late), then as the chain saw them.
 */
function newCandidates(inv: Invoice, read: ChainRead, window: ClaimWindow | null): ChainDeposit[] {
  if (!window) return [];
  const taken = new Set(inv.deposits.map((d) => d.txid));
  const over = (d: ChainDeposit) => (isDust(inv, d.amount) ? 0 : 1);
  return shownFor(inv, read)
    .filter((d) => inWindowOf(window, d.seenAt) && !taken.has(d.txid) && taken.add(d.txid))
    .sort((a, b) => over(b) - over(a) || a.seenAt - b.seenAt);
}

/**
 * The claims a decision on this read needs: those of the transactions the invoice lists, and of new ones in the
 * order they are listed, until more than one write can take are free to list (then the rest are `unread`) or none
 * are left; the same for other coins' new transfers, until the places left for them are filled. Those other invoices
 * claimed do not count toward that: rebroadcasts of their money must not keep this invoice from listing its own,
 * read after read. At most the chain's answer (1,000 deposits).
 */
export async function readClaims(
  kv: Deno.Kv,
  inv: Invoice,
  read: ChainRead,
  window: ClaimWindow | null,
): Promise<Pick<Attribution, "claimedBy" | "unread">> {
  // Every listed one, shown or not: one listed before claims existed is claimed by its invoice's next write.
  const claimedBy = await getDepositClaims(kv, inv, inv.deposits.map((d) => d.txid));
  const known = new Set<string>();
  /** Reads the claims of `batch` not read yet; answers how many of it are free to list (unclaimed, or its own). */
  const readBatch = async (batch: ChainDeposit[], listable: (d: ChainDeposit) => boolean) => {
    const txids = [...new Set(batch.map((d) => d.txid).filter((txid) => !known.has(txid)))];
    const claims = await getDepositClaims(kv, inv, txids);
    for (const txid of txids) {
      known.add(txid);
      const claimant = claims.get(txid);
      if (claimant !== undefined) claimedBy.set(txid, claimant);
    }
    return batch.filter((d) => (claimedBy.get(d.txid) ?? inv.id) === inv.id && listable(d)).length;
  };
  const candidates = newCandidates(inv, read, window);
  const dustListed = inv.deposits.length >= DUST_LISTED_UP_TO;
  let free = 0;
  let next = 0;
  while (next < candidates.length && free <= MAX_CLAIMS_PER_WRITE) {
    // Free to list: unclaimed (or its own), and not dust past the dust line (never listed).
    free += await readBatch(
      candidates.slice(next, next += CLAIM_READ_BATCH),
      (d) => !dustListed || !isDust(inv, d.amount),
    );
  }
  // Those it gave up, shown past its window: each claim is read, since only its own are listed (at most the answer).
  const reclaimable = [
    ...reclaimedShown(inv, read, window),
    ...reclaimedShown(inv, read, window, { otherCoins: true }),
  ];
  for (let at = 0; at < reclaimable.length; at += CLAIM_READ_BATCH) {
    await readBatch(reclaimable.slice(at, at + CLAIM_READ_BATCH), () => true);
  }
  const others = newOtherCoinCandidates(inv, read, window);
  const places = MAX_OTHER_COIN_DEPOSITS - otherCoinDepositsOf(inv).length;
  let freeOthers = 0;
  let nextOther = 0;
  while (nextOther < others.length && freeOthers < places) {
    freeOthers += await readBatch(others.slice(nextOther, nextOther += CLAIM_READ_BATCH), () => true);
  }
  const unread = [...candidates, ...others].map((d) => d.txid).filter((txid) => !known.has(txid));
  return { claimedBy, unread: new Set(unread) };
}

/**
 * What the read shows of the invoice's own coin. An address takes every coin of its network, and another coin's
 * amount in the invoice's base units would be nonsense: a little ETH read as USDT base units is a fortune. Other
 * coins are listed apart, for the shop to return (otherCoinsFromChain).
 */
function shownFor(inv: Invoice, read: ChainRead): ChainDeposit[] {
  return read.state.deposits.filter((d) => d.coin === inv.coin);
}

/**
 * What the read shows of other coins than the invoice's, transfers of nothing aside (token contracts log transfers
 * of zero, the stuff of address-poisoning spam: nothing to return).
 */
function otherCoinsShown(inv: Invoice, read: ChainRead): ChainDeposit[] {
  return read.state.deposits.filter((d) => d.coin !== inv.coin && BigInt(d.amount) > 0n);
}

/** One transfer of another coin: a transaction may move several coins (a contract call), each listed apart. */
const otherCoinKey = (d: Pick<ChainDeposit, "coin" | "txid">) => `${d.coin}\n${d.txid}`;

/** Other coins' transfers new to the invoice that may be its (seen in its window), as the chain saw them. */
function newOtherCoinCandidates(inv: Invoice, read: ChainRead, window: ClaimWindow | null): ChainDeposit[] {
  if (!window) return [];
  const taken = new Set(otherCoinDepositsOf(inv).map(otherCoinKey));
  return otherCoinsShown(inv, read)
    .filter((d) => inWindowOf(window, d.seenAt) && !taken.has(otherCoinKey(d)) && taken.add(otherCoinKey(d)))
    .sort((a, b) => a.seenAt - b.seenAt);
}

/**
 * Deposits (or, `otherCoins`, other coins' transfers) it gave the entry of up (Invoice.depositsGivenUp), as far as the
 * read shows them outside its window: shown again after the next invoice took the address, no window makes them a
 * candidate, and the next invoice must not list them (they are claimed), so only their claim brings them back
 * (`claimedBy`; without it, all that may be).
 */
function reclaimedShown(
  inv: Invoice,
  read: ChainRead,
  window: ClaimWindow | null,
  { claimedBy, otherCoins = false }: { claimedBy?: ReadonlyMap<string, string>; otherCoins?: boolean } = {},
): ChainDeposit[] {
  if (!inv.depositsGivenUp) return [];
  const keyOf = (d: Pick<ChainDeposit, "txid"> & { coin?: string }) =>
    otherCoins ? otherCoinKey({ coin: d.coin ?? "", txid: d.txid }) : d.txid;
  const listed: { txid: string; coin?: string }[] = otherCoins ? otherCoinDepositsOf(inv) : inv.deposits;
  const taken = new Set(listed.map(keyOf));
  return (otherCoins ? otherCoinsShown(inv, read) : shownFor(inv, read)).filter((d) =>
    !(window && inWindowOf(window, d.seenAt)) && !taken.has(keyOf(d)) && taken.add(keyOf(d)) &&
    (claimedBy === undefined || claimedBy.get(d.txid) === inv.id)
  );
}

function inWindowOf(window: ClaimWindow, seenAt: number): boolean {
  return seenAt >= window.from && (window.until === null || seenAt < window.until);
}

/**
 * How long a deposit must be missing from the chain's reads before it counts as dropped: one read without it may
 * come from a node of the chain service that lags, or a reorganisation undone a block later.
 */
export const DROP_GRACE_MS = 2 * 60_000;

/**
 * The status the deposits call for. Received = confirmed by the network's
 * confirmations; final = twice as deep (finished). Late and dropped deposits
 * never count. Finished also waits for every confirmed deposit to be final,
 * unless the chain has not shown it for the grace (a reorganisation), so what
 * `invoice.finished` says was paid, overpayment included, does not change
 * after it (deposits still unconfirmed then become late as it closes:
 * updateInvoice).
 */
export function statusFromDeposits(inv: Invoice, deposits: InvoiceDeposit[], readAt: number): InvoiceStatus {
  const needed = confirmationsNeeded(inv.network);
  const final = confirmationsFinal(inv.network);
  const counted = deposits.filter(countsToward);
  const confirmed = counted.filter((d) => d.confirmations >= needed);
  const amount = BigInt(inv.amount);
  // A confirmed deposit the chain has not shown for the grace was reorganised away deeper than the network's
  // confirmations, which we take as settled (operators are told): waiting for it to be final would hold the
  // invoice and its address for good.
  const settled = confirmed.filter((d) => d.confirmations >= final || goneSince(d, readAt));
  if (sumUnits(settled.map((d) => d.amount)) >= amount && settled.length === confirmed.length) return "finished";
  if (sumUnits(confirmed.map((d) => d.amount)) >= amount) return "payment_accepted";
  if (counted.some((d) => d.confirmations < needed)) return "payment_confirmation";
  if (counted.length) return "partially_paid";
  return "waiting_for_deposit";
}

/** True when the deposit has been missing from the chain's reads for the grace, as of a read asked for at `readAt`. */
function goneSince(d: InvoiceDeposit, readAt: number): boolean {
  return d.missingSince !== undefined && readAt - d.missingSince >= DROP_GRACE_MS;
}

/** A read of the invoice's address at the chain, when it was asked for and when it was answered (our clock). */
export interface ChainRead {
  state: AddressState;
  at: number;
  /** When the answer came back; absent: at once. */
  answeredAt?: number;
}

/**
 * What the chain's view of the address means for the invoice: deposits new,
 * deeper, missing, dropped or back, the status they call for, expiry, and the
 * next poll. Null when nothing changed and no poll is due.
 */
export function decideFromChain(
  inv: Invoice,
  read: ChainRead,
  { window, claimedBy, unread }: Attribution,
  now: number,
  pollMs: number,
): InvoiceChange | null {
  const needed = confirmationsNeeded(inv.network);
  const open = isInvoiceOpen(inv.status);
  // Money arrived in time when the chain saw it before expiresAt, or when this read came back before our expiresAt.
  const seenInTime = (seenAt: number) => seenAt < inv.expiresAt || (read.answeredAt ?? read.at) < inv.expiresAt;
  // Whether a listed transaction is still this invoice's: its claim says; unclaimed (listed before claims), the
  // window, and without one (two holders back) it stays the invoice's that listed it.
  const ours = (txid: string, seenAt: number) => {
    const claimant = claimedBy.get(txid);
    return claimant !== undefined ? claimant === inv.id : window ? inWindowOf(window, seenAt) : true;
  };
  // Listed before claims existed, and the invoice's by its window (a dropped one by when the chain saw it then):
  // claimed with this write, if there is one.
  const unclaimed: string[] = [];
  const byTx = new Map(shownFor(inv, read).map((d) => [d.txid, d]));
  const events: InvoiceEvent[] = [];
  const deposits = inv.deposits.map((d) => {
    const seen = byTx.get(d.txid);
    const mine = ours(d.txid, (seen ?? d).seenAt);
    if (mine && !claimedBy.has(d.txid)) unclaimed.push(d.txid);
    if (!seen) return missing(d);
    if (mine && d.confirmations < needed && BigInt(seen.amount) !== BigInt(d.amount)) return otherAmount(d, seen);
    if (d.dropped) {
      // Shown again (rebroadcast, or a reorganisation undone): money back after the invoice closed is late.
      if (!mine) return d;
      const late = d.late || !open;
      events.push({
        type: late ? "late_deposit" : "deposit_seen",
        at: now,
        data: { txid: d.txid, amount: d.amount, confirmations: seen.confirmations },
      });
      return { ...d, dropped: false, late, confirmations: seen.confirmations };
    }
    // Another invoice's (listed before claims, and shown now with a time in that one's window): gone from this
    // invoice's view of the chain.
    if (!mine) return missing(d);
    // Confirmations only grow here: a node a block behind must not move the status back and forth. A reorganisation
    // that sends a confirmed deposit back to the mempool keeps its count too: confirmed money is taken as settled,
    // as when it disappears (missing()); operators see it on the chain.
    const confirmations = Math.max(d.confirmations, seen.confirmations);
    if (confirmations === d.confirmations && d.missingSince === undefined) return d;
    if (!d.late && d.confirmations < needed && confirmations >= needed) {
      events.push({ type: "deposit_confirmed", at: now, data: { txid: d.txid, confirmations } });
    }
    const { missingSince: _shownAgain, ...shown } = d;
    return { ...shown, confirmations };
  });

  /**
   * A listed deposit, not confirmed yet, that the chain now shows under its txid with another amount. A transaction
   * cannot change what it sent, so this is other money under the same name (re-executed after a reorganisation, or
   * a sender that names its txid, as the sandbox's may), or a chain service whose first sighting of a pending
   * transfer was short of what was mined. It is taken as the chain shows it and judged as money arriving now, as a
   * new transaction would be: counted at the amount the chain shows (never at an earlier read's, so a payment seen in
   * full, dropped and sent again with one base unit pays one base unit), in time only by the chain's time of it or
   * this read's (so money first shown small before expiresAt cannot grow into a payment at the old price), late once
   * the invoice closed or late already. Made late for good instead, a genuine payment whose first sighting was short
   * would never count.
   */
  function otherAmount(d: InvoiceDeposit, seen: ChainDeposit): InvoiceDeposit {
    const amount = BigInt(seen.amount).toString();
    const late = d.late || !open;
    const inTime = seenInTime(seen.seenAt);
    events.push({
      type: late ? "late_deposit" : "deposit_seen",
      at: now,
      data: { txid: d.txid, amount, confirmations: seen.confirmations, amountChanged: true },
    });
    const { missingSince: _shownAgain, dropped: _back, ...rest } = d;
    return { ...rest, amount, confirmations: seen.confirmations, seenAt: seen.seenAt, late, inTime };
  }

  /**
   * A listed deposit the read lacks. Unconfirmed, and missing for DROP_GRACE_MS, it was replaced, double-spent or
   * evicted: dropped, counted nowhere (counted, it would hold the invoice open and tell the buyer their money is on
   * its way). Confirmed, it was reorganised away deeper than the network's confirmations, which we take as settled:
   * it stays counted and an operator is told.
   */
  function missing(d: InvoiceDeposit): InvoiceDeposit {
    if (d.dropped) return d;
    if (d.missingSince === undefined) return { ...d, missingSince: read.at };
    if (d.confirmations >= needed) {
      warnRepeatable("invoice deposit gone", "a confirmed deposit is gone from the chain (a reorganisation?)", {
        invoiceId: inv.id,
        txid: d.txid,
        confirmations: d.confirmations,
      });
      return d;
    }
    if (!goneSince(d, read.at)) return d;
    events.push({ type: "deposit_dropped", at: now, data: { txid: d.txid, amount: d.amount } });
    const { missingSince: _gone, ...rest } = d;
    return { ...rest, dropped: true };
  }

  const fresh: InvoiceDeposit[] = [];
  const live = deposits.filter((d) => !d.dropped).length;
  // Every listed entry takes room in the record, other coins' transfers too.
  const listedBefore = deposits.length + otherCoinDepositsOf(inv).length;
  // Dropped deposits, oldest first, give their places up to new ones once the record is full (below), so deposits
  // sent and taken back cannot keep a payment off it. Their claims stay: shown again, one is listed again. One listed
  // before claims existed waits for its claim, which this write makes only if it has room (MAX_CLAIMS_PER_WRITE, new
  // deposits first): unlisted and unclaimed, its money shown again would be the next invoice's.
  const claimPending = new Set(unclaimed);
  const givable = deposits.filter((d) => d.dropped && !claimPending.has(d.txid)).map((d) => d.txid);
  const awaitingClaims = deposits.some((d) => d.dropped && claimPending.has(d.txid));
  const given = new Set<string>();
  let dustLeft = 0;
  // New deposits this write cannot take (more than it may claim, or claims not read): listed by the next poll,
  // which comes at once.
  let more = false;
  // Deposits it gave up and claimed, shown again past its window, come after those its window brings.
  for (const d of [...newCandidates(inv, read, window), ...reclaimedShown(inv, read, window, { claimedBy })]) {
    const claimant = claimedBy.get(d.txid);
    if (claimant !== undefined && claimant !== inv.id) continue;
    if (deposits.length + fresh.length >= DUST_LISTED_UP_TO && isDust(inv, d.amount)) {
      dustLeft++;
      continue;
    }
    if (fresh.length >= MAX_CLAIMS_PER_WRITE || unread?.has(d.txid)) {
      more = true;
      break;
    }
    // Dropped deposits count for nothing, so they take none of the places: deposits sent and taken back must not
    // crowd out a payment. They stay listed (shown again, they count again), within a bound on the record's size.
    const full = listedBefore - given.size + fresh.length >= MAX_LISTED_WITH_DROPPED;
    if (full && given.size >= givable.length && awaitingClaims && live + fresh.length < MAX_DEPOSITS_PER_INVOICE) {
      // Their claims are made by this write: the next read, at once, lists what waits (nothing expires meanwhile).
      more = true;
      break;
    }
    if (live + fresh.length >= MAX_DEPOSITS_PER_INVOICE || (full && given.size >= givable.length)) {
      warnRepeatable("invoice full", "invoice holds too many deposits; more are not listed", { invoiceId: inv.id });
      break;
    }
    if (full) given.add(givable[given.size]);
    fresh.push({ ...d, late: !open, inTime: seenInTime(d.seenAt) });
  }
  // Listed oldest first, as the chain saw them.
  fresh.sort((a, b) => a.seenAt - b.seenAt);
  const kept = given.size ? deposits.filter((d) => !given.has(d.txid)) : deposits;
  // Unlisted, the same dust is found again at every poll: a line a minute says it.
  if (dustLeft) {
    warnRepeatable("invoice dust", "dust deposits not listed on a full invoice", {
      invoiceId: inv.id,
      deposits: dustLeft,
    });
  }
  // Expiry is judged on a read asked for once expiresAt had passed by our clock (the chain's may run ahead; a read
  // asked for before may not show a payment made just before). Without money that holds it open by then, the
  // invoice expired at expiresAt, whenever the sweep comes by: what the chain saw since is late.
  // Not while some of the read's deposits wait to be listed: one of them may be the payment.
  const expiring = open && !more && read.at >= inv.expiresAt && !heldOpenPastExpiry(inv, [...kept, ...fresh]) &&
    canMoveInvoice(inv.status, "expired");
  // Expiring, money that came after expiresAt is late, also money listed while something else held the invoice open
  // that is gone now (dropped).
  const isLate = (d: InvoiceDeposit) => expiring && countsToward(d) && !arrivedInTime(d);
  const listed = kept.map((d) => {
    if (!isLate(d)) return d;
    events.push({ type: "late_deposit", at: now, data: { txid: d.txid, amount: d.amount, afterExpiry: true } });
    return { ...d, late: true };
  });
  for (const d of fresh) {
    const late = d.late || isLate(d);
    listed.push({ ...d, late });
    events.push({
      type: late ? "late_deposit" : "deposit_seen",
      at: now,
      data: { txid: d.txid, amount: d.amount, confirmations: d.confirmations },
    });
  }
  const freshClaims = fresh.map((d) => d.txid).filter((txid) => !claimedBy.has(txid));
  const others = otherCoinsFromChain(inv, read, { window, claimedBy, unread }, {
    deposits: listed.length,
    claiming: new Set(freshClaims),
    budget: MAX_CLAIMS_PER_WRITE - freshClaims.length,
    now,
    events,
  });
  // Said once, on the record, so whichever write closes the invoice (a cancel too) retires the address.
  const worn = !inv.addressWorn && read.state.deposits.length >= ADDRESS_RETIRES_AT;
  const changed = events.length > 0 || listed.some((d, i) => d !== inv.deposits[i]) || others.changed || worn;
  const pollDue = inv.checkAt !== null && inv.checkAt <= now;
  if (!changed && !pollDue) return null;
  // Once each: a deposit listed before claims existed may share its transaction with another coin's new transfer.
  const claims = [...new Set([...freshClaims, ...others.claims, ...unclaimed])].slice(0, MAX_CLAIMS_PER_WRITE);
  // Other coins left for the next read do not hold expiry back (they count for nothing), only bring that read on.
  const nextPoll = more || others.more ? now : now + pollMs;
  // Records that never listed another coin stay without the field; a worn address is said once.
  const fields = {
    ...(others.list.length || inv.otherCoinDeposits ? { otherCoinDeposits: others.list } : {}),
    ...(worn ? { addressWorn: true as const } : {}),
    ...((given.size || others.gaveUp) && !inv.depositsGivenUp ? { depositsGivenUp: true as const } : {}),
  };
  // Closed, it is read only for its deposits' news (updateInvoice says until when).
  if (!open) return { events, patch: { deposits: listed, ...fields, checkAt: nextPoll }, claims };
  let to = statusFromDeposits(inv, listed, read.at);
  // Statuses move only along the table; the deposits decide among the moves it allows.
  if (to !== inv.status && !canMoveInvoice(inv.status, to)) to = inv.status;
  if (expiring) to = "expired";
  // Answered after expiresAt (asked before it, or with deposits still to list), with nothing that arrived in time to
  // hold it open: what this read shows may yet be late, so it moves nothing (no "payment seen" postback the next
  // read takes back); that read comes at once (checkAt below) and decides.
  const undecided = !expiring && (read.answeredAt ?? read.at) >= inv.expiresAt &&
    !heldOpenPastExpiry(inv, listed) && canMoveInvoice(inv.status, "expired");
  if (undecided) to = inv.status;
  // Read again at expiresAt while it could still expire then.
  const mayExpire = canMoveInvoice(to, "expired") && !heldOpenPastExpiry(inv, listed);
  const checkAt = mayExpire ? Math.min(inv.expiresAt, nextPoll) : nextPoll;
  return { to, events, patch: { deposits: listed, ...fields, checkAt }, claims };
}

/**
 * Other coins' transfers to the address, as the invoice lists them for the shop to return (counted nowhere): listed
 * ones brought up to date as deposits are (confirmations only grow; one unconfirmed and missing for DROP_GRACE_MS is
 * dropped, and back when shown again), new ones in its window listed, up to MAX_OTHER_COIN_DEPOSITS and, with the
 * invoice's `deposits` (as listed by this write), MAX_LISTED_WITH_DROPPED.
 *
 * Claimed like deposits (the claim is the transaction's, whatever its coins): the chain may show a transfer again
 * with a time in the next invoice's window (rebroadcast, re-mined), and listed on both invoices it would be returned
 * twice. So a transfer another invoice claimed is not listed, and listing one claims it, within the write's budget
 * (`budget`, what the deposits left of MAX_CLAIMS_PER_WRITE; `claiming`, what they claim already).
 */
function otherCoinsFromChain(
  inv: Invoice,
  read: ChainRead,
  { window, claimedBy, unread }: Attribution,
  write: { deposits: number; claiming: ReadonlySet<string>; budget: number; now: number; events: InvoiceEvent[] },
): { list: OtherCoinDeposit[]; claims: string[]; more: boolean; changed: boolean; gaveUp: boolean } {
  const needed = confirmationsNeeded(inv.network);
  const shown = new Map(otherCoinsShown(inv, read).map((d) => [otherCoinKey(d), d]));
  const before = otherCoinDepositsOf(inv);
  const list = before.map((d): OtherCoinDeposit => {
    const seen = shown.get(otherCoinKey(d));
    if (seen && d.confirmations < needed && BigInt(seen.amount).toString() !== d.amount) {
      // Other money under the same txid, as for a deposit (otherAmount in decideFromChain): the shop returns what
      // the chain shows, not what an earlier read did.
      const entry = { coin: d.coin, txid: d.txid, amount: BigInt(seen.amount).toString() };
      write.events.push({
        type: "other_coin_deposit",
        at: write.now,
        data: { ...entry, confirmations: seen.confirmations, amountChanged: true },
      });
      const { missingSince: _shownAgain, dropped: _back, ...rest } = d;
      return { ...rest, amount: entry.amount, confirmations: seen.confirmations };
    }
    if (seen) {
      // Back from dropped, it is a new inclusion (rebroadcast, re-mined): the chain's count, as a deposit's; otherwise
      // confirmations only grow (a node a block behind).
      const confirmations = d.dropped ? seen.confirmations : Math.max(d.confirmations, seen.confirmations);
      if (confirmations === d.confirmations && d.missingSince === undefined && !d.dropped) return d;
      const { missingSince: _shownAgain, dropped: _back, ...rest } = d;
      return { ...rest, confirmations };
    }
    // Confirmed and gone (a reorganisation deeper than the confirmations) stays as it was, as a deposit does.
    if (d.dropped || d.confirmations >= needed) return d;
    if (d.missingSince === undefined) return { ...d, missingSince: read.at };
    if (read.at - d.missingSince < DROP_GRACE_MS) return d;
    const { missingSince: _gone, ...rest } = d;
    return { ...rest, dropped: true };
  });
  const claims: string[] = [];
  let more = false;
  const known = (d: { coin: string }) => coinDecimals(d.coin, inv.network) !== undefined;
  let unknown = list.filter((d) => !known(d)).length;
  let gaveUp = false;
  const reclaimed = reclaimedShown(inv, read, window, { claimedBy, otherCoins: true });
  for (const d of [...newOtherCoinCandidates(inv, read, window), ...reclaimed]) {
    const claimant = claimedBy.get(d.txid);
    if (claimant !== undefined && claimant !== inv.id) continue;
    const full = list.length >= MAX_OTHER_COIN_DEPOSITS || write.deposits + list.length >= MAX_LISTED_WITH_DROPPED;
    // A dropped transfer (nothing to return) gives its place up, oldest first, as a dropped deposit does.
    const givable = full ? list.findIndex((o) => o.dropped) : -1;
    if ((full && givable < 0) || (!known(d) && unknown >= MAX_UNKNOWN_COIN_DEPOSITS)) {
      warnRepeatable("invoice other coins full", "an invoice lists too many other coins' transfers; more are not", {
        invoiceId: inv.id,
        coin: d.coin,
        txid: d.txid,
      });
      // A coin we know may still have a place after the unknown ones' are taken.
      if (full) break;
      continue;
    }
    const claim = claimant === undefined && !write.claiming.has(d.txid) && !claims.includes(d.txid);
    if (unread?.has(d.txid) || (claim && claims.length >= write.budget)) {
      more = true;
      break;
    }
    if (claim) claims.push(d.txid);
    if (givable >= 0) {
      const [given] = list.splice(givable, 1);
      gaveUp = true;
      if (!known(given)) unknown--;
    }
    const entry = { coin: d.coin, txid: d.txid, amount: BigInt(d.amount).toString(), confirmations: d.confirmations };
    list.push({ ...entry, seenAt: d.seenAt });
    if (!known(d)) unknown++;
    write.events.push({ type: "other_coin_deposit", at: write.now, data: entry });
  }
  const changed = list.length !== before.length || list.some((d, i) => d !== before[i]);
  return { list, claims, more, changed, gaveUp };
}

/**
 * Reads the invoice's address at the chain and applies what it shows (the notice handler, the job and a cancel).
 * The decision is tied to the invoice's version read before asking the chain: if another read was applied
 * meanwhile (a poll and a notice crossing), this one may be older, so the chain is asked again.
 */
export async function syncInvoice(ctx: AppContext, invoiceId: string): Promise<InvoiceUpdate> {
  for (let attempt = 0; attempt < 4; attempt++) {
    const entry = await getInvoiceEntry(ctx.kv, invoiceId);
    const inv = entry.value;
    if (!inv) throw new NotFoundError("Unknown invoice.");
    const read = await readAddress(ctx, inv);
    const address = (await getPoolAddressEntry(ctx.kv, inv)).value;
    const window = claimWindow(inv, address);
    if (!window && !inv.deposits.length && !otherCoinDepositsOf(inv).length && !inv.depositsGivenUp) {
      // Neither the address's holder nor the one before any more, and it lists nothing: no deposit there is its
      // news now (a claim is made only by listing), so it is polled no more either.
      if (inv.checkAt === null || isInvoiceOpen(inv.status)) return { outcome: "unchanged", invoice: inv };
      return await updateInvoice(
        ctx,
        invoiceId,
        (c) => (c.checkAt === null ? null : { events: [], patch: { checkAt: null } }),
      );
    }
    const { claimedBy, unread } = await readClaims(ctx.kv, inv, read, window);
    const update = await updateInvoice(
      ctx,
      invoiceId,
      (current, now) => decideFromChain(current, read, { window, claimedBy, unread }, now, ctx.config.chainPollMs),
      { basedOn: entry.versionstamp },
    );
    if (update.outcome !== "stale") return update;
  }
  return { outcome: "unchanged", invoice: (await getInvoice(ctx.kv, invoiceId))! };
}

/** The chain's view of an address, stamped with when we asked. */
async function readAddress(ctx: AppContext, at: Pick<Invoice, "network" | "address">): Promise<ChainRead> {
  const asked = ctx.now();
  const state = await requireChain(ctx).getAddress(at.network, at.address);
  return { state, at: asked, answeredAt: ctx.now() };
}

/**
 * The `invoice_check` job: polls an invoice's address (open, or closed with deposits not yet final), so a lost
 * notice changes nothing, and expires it at `expiresAt` when no money came. Safe to run any number of times; a
 * chain that does not answer is asked again at the next poll (nothing expires while we cannot see the chain).
 */
export async function runInvoiceCheck(ctx: AppContext, id: string): Promise<void> {
  const inv = await getInvoice(ctx.kv, id);
  if (!inv || inv.checkAt === null || inv.checkAt > ctx.now()) return;
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
        current.checkAt !== null && current.checkAt <= now
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
  const claimant = (await getDepositClaims(ctx.kv, notice, [notice.txid])).get(notice.txid);
  // A transaction an invoice listed is that invoice's news. One the chain no longer shows was dropped, from
  // whichever invoice listed it: the address's two latest (the one holding it, or the one before, for late money)
  // are brought up to date. Otherwise the one whose time the chain saw it in.
  const candidates = claimant
    ? [claimant]
    : !deposit
    ? [address?.lastInvoiceId, address?.previousInvoiceId]
    : [deposit.seenAt >= (address?.lastTakenAt ?? 0) ? address?.lastInvoiceId : address?.previousInvoiceId];
  let outcome: ChainNoticeOutcome = "unchanged";
  for (const invoiceId of candidates) {
    if (!invoiceId || !hasIdShape("invoice", invoiceId)) continue;
    // Read again beside the invoice's version (syncInvoice): the read above only says whose news it is.
    if ((await syncInvoice(ctx, invoiceId)).outcome === "applied") outcome = "applied";
  }
  return outcome;
}
