/**
 * Crypto amounts: decimal strings at the edges, integer base units (bigint,
 * stored as integer strings) inside. No floats anywhere: 0.1 + 0.2 is exact
 * here, and an 18-decimal ETH amount keeps every digit.
 */

/** Digits an amount may have before its decimal point: far beyond any real payment, and bounded all the same. */
export const MAX_WHOLE_DIGITS = 30;
const DECIMAL = new RegExp(`^(0|[1-9][0-9]{0,${MAX_WHOLE_DIGITS - 1}})(?:\\.([0-9]+))?$`);

/** Parses "12.50" with at most `decimals` decimals into base units; null when it is not such a number. */
export function parseDecimalAmount(text: string, decimals: number): bigint | null {
  const m = DECIMAL.exec(text);
  if (!m) return null;
  const fraction = m[2] ?? "";
  if (fraction.length > decimals) return null;
  return BigInt(m[1]) * 10n ** BigInt(decimals) + BigInt(fraction.padEnd(decimals, "0") || "0");
}

/** Base units back to the shortest decimal string ("12.5", "0", "0.000001"). */
export function formatBaseUnits(units: bigint | string, decimals: number): string {
  const n = BigInt(units);
  const negative = n < 0n;
  const abs = negative ? -n : n;
  const scale = 10n ** BigInt(decimals);
  const whole = abs / scale;
  const fraction = decimals ? (abs % scale).toString().padStart(decimals, "0").replace(/0+$/, "") : "";
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

/** Sums integer strings of base units. */
export function sumUnits(values: Iterable<string>): bigint {
  let total = 0n;
  for (const v of values) total += BigInt(v);
  return total;
}
