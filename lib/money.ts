/**
 * ISO 4217 active currency codes and their minor-unit exponents. Amounts are
 * always integers in the minor unit (1000 EUR = 10.00 EUR, 1000 JPY = 1000 JPY).
 * Precious metals, the SDR and test codes (XAU, XDR, XTS, XXX...) have no minor
 * unit and are not here at all; fund codes are here but not taken (FUND_CODES).
 */
const EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF";
const EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND";
const EXPONENT_4 = "CLF UYW";
const EXPONENT_2 = "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL " +
  "BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN " +
  "ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS " +
  "KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV " +
  "MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG " +
  "SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN " +
  "UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG";

/**
 * ISO 4217 fund codes: units of account for indexing and for settling between banks (Bolivia's Mvdol, Chile's
 * Unidad de Fomento, the Swiss WIR money, the US next-day dollar...). No buyer holds or pays in one, yet a form
 * listed them and a payment in BOV went through to the provider. Refused wherever a currency is taken and never
 * listed; they keep their exponents so that amounts stored before still print.
 */
const FUND_CODES = new Set("BOV CHE CHW CLF COU MXV USN UYI UYW".split(" "));

const exponents = new Map<string, number>();
for (const [codes, exp] of [[EXPONENT_0, 0], [EXPONENT_2, 2], [EXPONENT_3, 3], [EXPONENT_4, 4]] as const) {
  for (const code of codes.split(" ")) exponents.set(code, exp);
}

/** True for a currency we take: an active ISO 4217 code (upper case) that buyers pay in, no fund code. */
export function isCurrency(code: string): boolean {
  return exponents.has(code) && !FUND_CODES.has(code);
}

/**
 * True for a code a stored record may hold: a currency we take, or a fund code, taken until 2026-11-29. A request that
 * may retry such a record is read with these (currencyCode("stored")), so its retry is still answered.
 */
export function isStoredCurrency(code: string): boolean {
  return exponents.has(code);
}

/**
 * ISO 4217 codes that are no money at all: precious metals, the SDR and its kin (units of account), and the test and
 * "no currency" codes. Never taken and not in the exponents' table, yet ISO 4217 codes all the same.
 */
const NON_MONEY_CODES = new Set("XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX".split(" "));

/** Why a code is not a currency we take, as a request's field is told (after the field's name). */
export function currencyRefusal(code: string): string {
  if (FUND_CODES.has(code)) return "is a fund code, not a currency buyers pay in";
  if (NON_MONEY_CODES.has(code)) {
    return "is a precious metal, unit of account or test code, not a currency buyers pay in";
  }
  return "is not an ISO 4217 currency";
}

/** Every currency we take, sorted. */
export function listCurrencies(): string[] {
  return [...exponents.keys()].filter(isCurrency).sort();
}

/**
 * Names for codes newer than the ICU data Deno ships (Sierra Leone's new leone of 2022, Venezuela's VED of 2021, the
 * Zimbabwe Gold of 2024, the Caribbean guilder of 2025), which Intl.DisplayNames answers with the bare code.
 */
const NEWER_NAMES: Record<string, string> = {
  SLE: "Sierra Leonean Leone",
  VED: "Bolívar Soberano",
  XCG: "Caribbean Guilder",
  ZWG: "Zimbabwean Gold",
};

const displayNames = new Intl.DisplayNames("en", { type: "currency", fallback: "none" });

/** A currency's English name ("Euro", "Japanese Yen"), for people picking one; the code itself if none is known. */
export function currencyName(code: string): string {
  return displayNames.of(code) ?? NEWER_NAMES[code] ?? code;
}

/** Minor-unit exponent of an ISO 4217 code; throws on an unknown code (a bug: validate first). */
export function currencyExponent(code: string): number {
  const exp = exponents.get(code);
  if (exp === undefined) throw new Error(`unknown currency ${code}`);
  return exp;
}

/**
 * Formats minor units for people, with thousands separators and the
 * currency's own decimals: formatAmount(123456, "EUR") === "1,234.56 EUR".
 * The decimal string goes to Intl.NumberFormat as text, so no float rounding.
 */
export function formatAmount(minor: number, currency: string): string {
  const exp = currencyExponent(currency);
  const format = new Intl.NumberFormat("en-US", { minimumFractionDigits: exp, maximumFractionDigits: exp });
  // Intl takes a decimal string exactly (ES2023); the lib types only list numbers.
  return `${format.format(formatDecimal(minor, currency) as unknown as number)} ${currency}`;
}

/** Minor units as a plain decimal in major units, for inputs and CSV: formatDecimal(123456, "EUR") === "1234.56". */
export function formatDecimal(minor: number, currency: string): string {
  const exp = currencyExponent(currency);
  const sign = minor < 0 ? "-" : "";
  const digits = String(Math.abs(minor)).padStart(exp + 1, "0");
  const whole = digits.slice(0, digits.length - exp);
  const frac = exp ? "." + digits.slice(digits.length - exp) : "";
  return `${sign}${whole}${frac}`;
}

/**
 * Reads an amount a person typed in major units ("12.5", "12.50") as minor
 * units of `currency`, without floating point; null when it is not a plain
 * positive decimal with at most the currency's digits after the point.
 */
export function parseAmount(text: string, currency: string): number | null {
  const exp = currencyExponent(currency);
  const m = /^(\d{1,15})(?:\.(\d*))?$/.exec(text.trim());
  if (!m || (m[2] ?? "").length > exp) return null;
  const minor = Number(m[1] + (m[2] ?? "").padEnd(exp, "0"));
  return Number.isSafeInteger(minor) && minor > 0 ? minor : null;
}

/**
 * Whether an amount a person typed that parseAmount refused is a number above `maxMinor` minor units of `currency`:
 * more digits than it reads ("99999999999999999999") or exponent notation ("1e30"). So the person is told it is too
 * large, not that it is no amount. Judged by magnitude (a float is exact enough this far past the limit); a refused
 * amount at or below the limit is refused for its form, as before.
 */
export function typedAmountAbove(text: string, currency: string, maxMinor: number): boolean {
  const typed = text.trim();
  if (!/^\d+(\.\d*)?(e\+?\d+)?$/i.test(typed)) return false;
  return Number(typed) * 10 ** currencyExponent(currency) > maxMinor;
}
