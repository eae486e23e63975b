import { sumUnits } from "./amounts.ts";
import { countsToward, type Invoice, type InvoiceDeposit } from "./types.ts";

/**
 * Whether a deposit arrived by the invoice's `expiresAt`, as recorded when it was listed: the chain saw it before
 * then, or a read answered before our `expiresAt` showed it (the chain's clock may run ahead of ours). A deposit
 * listed before that was recorded counts as in time, the rule it was listed under: judged now by the chain's time,
 * a payment seen in time could be made late.
 */
export function arrivedInTime(d: InvoiceDeposit): boolean {
  return d.inTime ?? true;
}

/** Under a hundredth of the invoice's amount: dust, which anyone can send to the address its page shows. */
export function dustBelow(inv: Pick<Invoice, "amount">): bigint {
  return BigInt(inv.amount) / 100n;
}

/** True for an amount (base units) under the invoice's dust line (dustBelow). */
export function isDust(inv: Pick<Invoice, "amount">, amount: string): boolean {
  return BigInt(amount) < dustBelow(inv);
}

/**
 * What keeps an invoice open past `expiresAt`: money that arrived by then, at least a hundredth of its amount (one
 * base unit for tiny amounts). Less is a stranger's dust, which must not keep the old price open for the buyer, nor
 * the address taken.
 */
export function heldOpenPastExpiry(inv: Invoice, deposits: InvoiceDeposit[]): boolean {
  const line = dustBelow(inv) || 1n;
  const arrived = deposits.filter((d) => countsToward(d) && arrivedInTime(d));
  return sumUnits(arrived.map((d) => d.amount)) >= line;
}
