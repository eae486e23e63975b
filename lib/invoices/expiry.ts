import { sumUnits } from "./amounts.ts";
import { countsToward, type Invoice, type InvoiceDeposit } from "./types.ts";

/**
 * What keeps an invoice open past `expiresAt`: money that arrived by then, at least a hundredth of its amount (one
 * base unit for tiny amounts). Less is a stranger's dust, which must not keep the old price open for the buyer, nor
 * the address taken.
 */
export function heldOpenPastExpiry(inv: Invoice, deposits: InvoiceDeposit[] = inv.deposits): boolean {
  const line = BigInt(inv.amount) / 100n || 1n;
  const arrived = sumUnits(deposits.filter((d) => countsToward(d) && d.seenAt < inv.expiresAt).map((d) => d.amount));
  return arrived >= line;
}
