/**
 * The seam between forms and crypto invoices: the coins a crypto form may
 * name (invoices' one list, lib/invoices/coins.ts) and the one call a
 * submitted crypto form makes (createInvoice). Forms keep no invoice model.
 */
import type { AppContext } from "../context.ts";
import type { Shop } from "../db/shops.ts";
import { formatBaseUnits, parseDecimalAmount } from "../invoices/amounts.ts";
import { COIN_OPTIONS, type CoinOption } from "../invoices/coins.ts";
import { createInvoice } from "../invoices/create.ts";

export type CoinChoice = CoinOption;

export const COIN_CHOICES: readonly CoinChoice[] = COIN_OPTIONS;

/** The first choice matching a coin and/or network (either may be left out); undefined when we take no such pair. */
export function findCoinChoice(coin?: string, network?: string): CoinChoice | undefined {
  return COIN_CHOICES.find((c) =>
    (coin === undefined || c.coin === coin) && (network === undefined || c.network === network)
  );
}

/** A decimal a person typed as base units (an integer string), above 0; null when it is not one. */
export function parseCryptoAmount(text: string, decimals: number): string | null {
  const units = parseDecimalAmount(text, decimals);
  return units !== null && units > 0n ? units.toString() : null;
}

/** Base units back to the decimal people read ("12.5"). */
export function formatCryptoAmount(units: string, decimals: number): string {
  return formatBaseUnits(units, decimals);
}

/** Creates the invoice a submitted crypto form asks for; answers where the buyer goes next (its invoice page). */
export async function createFormInvoice(
  ctx: AppContext,
  shop: Shop,
  input: {
    id: string;
    coin: string;
    network: string;
    amount: string;
    title: string;
    description?: string;
    email: string;
    returnUrl?: string;
  },
): Promise<{ checkoutUrl: string }> {
  const { invoice } = await createInvoice(ctx, shop, input);
  return { checkoutUrl: invoice.checkoutUrl };
}
