import type { Coin, Network } from "./coins.ts";
import type { InvoiceStatus } from "./status.ts";

/**
 * A crypto invoice as we store it. Amounts are integer strings of the coin's
 * base units (bigint when computed with), never floats.
 */
export interface Invoice {
  /** Our public id (inv_...): its millisecond and 84 random bits (sequentialId), or derived from the shop's id / Idempotency-Key. */
  id: string;
  /** ULID, orders the shop's listing by creation time. */
  seq: string;
  shopId: string;
  /** The shop's own invoice reference (`id` in the request), if it gave one. */
  shopInvoiceId: string | null;
  idempotencyKey: string | null;
  /** SHA-256 of the normalized request, to tell a retry from a reused id. */
  requestHash: string;
  coin: Coin;
  network: Network;
  decimals: number;
  /** Base units asked for. */
  amount: string;
  title: string;
  description: string;
  /** The buyer's email, when the shop gave one or the buyer typed it on a form (absent on older invoices). */
  email?: string | null;
  address: string;
  postbackUrl: string | null;
  /** The shop's page the buyer goes back to from the invoice's page (absent on older invoices, and when not given). */
  returnUrl?: string | null;
  status: InvoiceStatus;
  /** Every deposit attributed to this invoice, oldest first; deposits after it closed are `late`. */
  deposits: InvoiceDeposit[];
  /**
   * Transfers of other coins to its address while it was the invoice's (an address takes every coin of its network):
   * shown so the shop can return them, never counted. Absent on records that never listed one (otherCoinDepositsOf).
   */
  otherCoinDeposits?: OtherCoinDeposit[];
  /**
   * A read of its address showed ADDRESS_RETIRES_AT transfers or more (every invoice's that held it, of every coin):
   * freed, the address leaves the pool (PoolAddress.retiredAt). Absent: it goes back to the pool.
   */
  addressWorn?: true;
  /**
   * It gave a dropped deposit's entry up, or another coin's dropped transfer's (a full record, see
   * MAX_LISTED_WITH_DROPPED): the transaction stays claimed by it, and shown again, even with a time past its window
   * (rebroadcast once the next invoice holds the address), the claim brings it back to it (see reclaimedShown in
   * deposits.ts). Absent: it never gave one up.
   */
  depositsGivenUp?: true;
  createdAt: number;
  /** When what the shop sees of it (invoiceView, which postbacks carry) last changed; set by updateInvoice only. */
  updatedAt: number;
  expiresAt: number;
  /** When it left the open statuses (finished, expired, cancelled); null while open. */
  closedAt: number | null;
  /** When the polling job next reads its address at the chain; null once nothing is left to watch. */
  checkAt: number | null;
}

/** One transfer to the invoice's address, as the chain last showed it. */
export interface InvoiceDeposit {
  txid: string;
  /** Base units. */
  amount: string;
  confirmations: number;
  /** When the chain first saw it (its own clock, ms). */
  seenAt: number;
  /** Arrived after the invoice had closed: recorded and shown, never counted toward its status. */
  late: boolean;
  /**
   * The chain stopped showing it before it had its confirmations (replaced, double-spent or evicted from the
   * mempool): kept on record, counted nowhere, and counted again if the chain shows it again. Absent on older
   * records.
   */
  dropped?: boolean;
  /**
   * When a read of the address first lacked it (our clock), while it is missing: one read is not enough to call it
   * dropped (a lagging node of the chain service, a reorganisation undone), see DROP_GRACE_MS.
   */
  missingSince?: number;
  /**
   * Arrived by the invoice's expiresAt, as decided when it was listed (see arrivedInTime): only such money keeps the
   * invoice open past expiresAt. Absent on older records.
   */
  inTime?: boolean;
}

/**
 * A transfer of a coin other than the invoice's to its address, as the chain last showed it. Counted in no amount and
 * in no status: another coin's base units are not the invoice's (see shownFor in deposits.ts).
 */
export interface OtherCoinDeposit {
  /** As the chain service names it (capitals); possibly a coin we do not take, whose decimals we do not know. */
  coin: string;
  txid: string;
  /** Base units of that coin: an integer string, never scaled by a guess at its decimals. */
  amount: string;
  confirmations: number;
  /** When the chain first saw it (its own clock, ms). */
  seenAt: number;
  /** The chain stopped showing it before its confirmations (as InvoiceDeposit.dropped): nothing to return. */
  dropped?: boolean;
  /** When a read first lacked it, while it is missing (as InvoiceDeposit.missingSince). */
  missingSince?: number;
}

/** The other coins' transfers an invoice lists (none on records from before they were listed). */
export function otherCoinDepositsOf(inv: Pick<Invoice, "otherCoinDeposits">): OtherCoinDeposit[] {
  return inv.otherCoinDeposits ?? [];
}

/**
 * Whether a deposit is late money: it came after the invoice closed (or past its expiry) and the chain still shows it.
 * Never counted; shown, announced once confirmed (invoice.late_payment), and listed for operators.
 */
export function isLateMoney(d: InvoiceDeposit): boolean {
  return d.late && d.dropped !== true;
}

/** Whether an invoice holds late money (more than nothing of it): the console's late-money list and count. */
export function hasLateMoney(inv: Pick<Invoice, "deposits">): boolean {
  return inv.deposits.some((d) => isLateMoney(d) && BigInt(d.amount) > 0n);
}

/** Whether a deposit counts toward the invoice's status and totals: on time, and still on the chain. */
export function countsToward(d: InvoiceDeposit): boolean {
  return !d.late && d.dropped !== true;
}

/** What happened to an invoice, for its timeline. */
export interface InvoiceEvent {
  type:
    | "created"
    | "deposit_seen"
    | "deposit_confirmed"
    | "deposit_dropped"
    | "late_deposit"
    | "late_deposit_confirmed"
    | "status_changed"
    | "chain_notice"
    | "cancel_requested"
    | "other_coin_deposit";
  at: number;
  data: Record<string, unknown>;
}

/** A deposit address of a shop's pool on one network. */
export interface PoolAddress {
  address: string;
  network: Network;
  shopId: string;
  createdAt: number;
  /** The open invoice holding it, or null when it is free. */
  heldBy: string | null;
  /** The latest invoice that held it (late deposits go to it while the address is free). */
  lastInvoiceId: string | null;
  /** When the latest invoice took it: deposits the chain saw before then belong to the one before. */
  lastTakenAt: number | null;
  /** The invoice before that one (a deposit seen before the latest was created belongs to it). */
  previousInvoiceId: string | null;
  /** Invoices that have used it, for the console. */
  uses: number;
  /**
   * Freed, when another invoice may take it: a closed invoice's address rests first, so money its buyer sends late
   * is the closed invoice's late money, not a payment for whoever took the address next. Absent: at once.
   */
  readyAt?: number;
  /**
   * When it left the pool, never to be taken again: the chain showed too many transfers there (Invoice.addressWorn).
   * Kept, so late money there is still its last invoice's.
   */
  retiredAt?: number;
}
