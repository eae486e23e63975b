/**
 * The seam between forms and crypto invoices: the coins a crypto form may
 * name, and the one call a submitted crypto form makes. Invoices own both;
 * until they land on this branch no coin is taken, so every crypto form is
 * refused at creation.
 */
import type { AppContext } from "../context.ts";
import type { Shop } from "../db/shops.ts";
import { AppError } from "../errors.ts";

export interface CoinChoice {
  coin: string;
  network: string;
  decimals: number;
  label: string;
}

export const COIN_CHOICES: readonly CoinChoice[] = [];

/** The choice for a coin and/or network (either may be left out); undefined when we take no such pair. */
export function findCoinChoice(coin?: string, network?: string): CoinChoice | undefined {
  return COIN_CHOICES.find((c) =>
    (coin === undefined || c.coin === coin) && (network === undefined || c.network === network)
  );
}

/** A decimal a person typed as base units (an integer string), above 0; null when it is not one. */
export function parseCryptoAmount(_text: string, _decimals: number): string | null {
  return null;
}

/** Base units back to the decimal people read. */
export function formatCryptoAmount(units: string, _decimals: number): string {
  return units;
}

/** Creates the invoice a submitted crypto form asks for; answers where the buyer goes next. */
export function createFormInvoice(
  _ctx: AppContext,
  _shop: Shop,
  _input: { coin: string; network: string; amount: string; title: string; description?: string },
  _opts: { idempotencyKey: string },
): Promise<{ checkoutUrl: string }> {
  return Promise.reject(new AppError(503, "crypto_unavailable", "Crypto invoices are not available yet."));
}
