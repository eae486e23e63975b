import { sumUnits } from "./amounts.ts";
import { countsToward, type Invoice, type InvoiceDeposit } from "./types.ts";

/**
 * Whether a deposit arrived by the invoice's `expiresAt`: as recorded when it was listed (the chain saw it before
 * then, or a read answered before our `expiresAt` showed it: the chain's clock may run ahead of ours), or, for
 * deposits listed before that was recorded, by the chain's time.
 */
export function arrivedInTime(inv: Invoice, d: InvoiceDeposit): boolean {
  return d.inTime ?? d.seenAt < inv.expiresAt;
}

/**
 * What keeps an invoice open past `expiresAt`: money that arrived by then, at least a hundredth of its amount (one
 * base unit for tiny amounts). Less is a stranger's dust, which must not keep the old price open for the buyer, nor
 * the address taken.
 */
export function heldOpenPastExpiry(inv: Invoice, deposits: InvoiceDeposit[]): boolean {
  const line = BigInt(inv.amount) / 100n || 1n;
  const arrived = deposits.filter((d) => countsToward(d) && arrivedInTime(inv, d));
  return sumUnits(arrived.map((d) => d.amount)) >= line;
}
