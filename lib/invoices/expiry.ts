import { sumUnits } from "./amounts.ts";
import { countsToward, type Invoice, type InvoiceDeposit } from "./types.ts";

/**
 * What keeps an invoice open past `expiresAt`: money that arrived by then, at least a hundredth of its amount (one
 * base unit for tiny amounts). Less is a stranger's dust, which must not keep the old price open for the buyer, nor
 * the address taken. Deposits already listed arrived in time whatever time the chain gives them: they were listed by
 * a read made before our `expiresAt` (the chain's clock may run ahead of ours), or while the invoice was held open.
 * Deposits a read shows for the first time (`fresh`) count only if the chain saw them before `expiresAt`.
 */
export function heldOpenPastExpiry(inv: Invoice, listed: InvoiceDeposit[], fresh: InvoiceDeposit[] = []): boolean {
  const line = BigInt(inv.amount) / 100n || 1n;
  const arrived = [...listed.filter(countsToward), ...fresh.filter((d) => countsToward(d) && d.seenAt < inv.expiresAt)];
  return sumUnits(arrived.map((d) => d.amount)) >= line;
}
