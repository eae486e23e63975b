import assert from "node:assert/strict";
import {
  currencyExponent,
  currencyName,
  currencyRefusal,
  formatAmount,
  formatDecimal,
  isCurrency,
  listCurrencies,
  parseAmount,
  typedAmountAbove,
} from "./money.ts";

Deno.test("[money] knows ISO 4217 exponents", () => {
  assert.equal(currencyExponent("EUR"), 2);
  assert.equal(currencyExponent("JPY"), 0);
  assert.equal(currencyExponent("KWD"), 3);
  assert.equal(currencyExponent("CLF"), 4);
  assert.equal(isCurrency("XAU"), false);
  assert.equal(isCurrency("EUR"), true);
  assert.equal(isCurrency("eur"), false);
});

Deno.test("[money] fund codes are not taken or listed, yet amounts stored in them still print", () => {
  for (const code of ["BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "UYI", "UYW"]) {
    assert.equal(isCurrency(code), false, code);
    assert.ok(!listCurrencies().includes(code), code);
  }
  assert.equal(formatAmount(12345, "CLF"), "1.2345 CLF");
  assert.equal(formatAmount(1000, "BOV"), "10.00 BOV");
  // The currencies that share a region with a fund code stay.
  for (const code of ["BOB", "CHF", "CLP", "COP", "MXN", "USD", "UYU"]) assert.ok(isCurrency(code), code);
});

Deno.test("[money] a refused code is told what it is: a fund code, a metal, unit of account or test code, or no ISO 4217 code", () => {
  assert.equal(currencyRefusal("BOV"), "is a fund code, not a currency buyers pay in");
  for (const code of ["XAU", "XAG", "XPT", "XPD", "XDR", "XSU", "XUA", "XBA", "XBB", "XBC", "XBD", "XTS", "XXX"]) {
    assert.equal(
      currencyRefusal(code),
      "is a precious metal, unit of account or test code, not a currency buyers pay in",
      code,
    );
  }
  for (const code of ["EURO", "ABC", "eur"]) assert.equal(currencyRefusal(code), "is not an ISO 4217 currency", code);
});

Deno.test("[money] every currency we list has a name a buyer can find it by", () => {
  assert.equal(currencyName("EUR"), "Euro");
  assert.equal(currencyName("JPY"), "Japanese Yen");
  assert.equal(currencyName("SLE"), "Sierra Leonean Leone");
  for (const code of listCurrencies()) {
    assert.notEqual(currencyName(code), code, `${code} has no name`);
  }
});

Deno.test("[money] formats minor units with integer arithmetic only", () => {
  assert.equal(formatAmount(1000, "EUR"), "10.00 EUR");
  assert.equal(formatAmount(5, "EUR"), "0.05 EUR");
  assert.equal(formatAmount(1000, "JPY"), "1,000 JPY");
  assert.equal(formatAmount(123456789, "EUR"), "1,234,567.89 EUR");
  assert.equal(formatAmount(1234567, "BHD"), "1,234.567 BHD");
  assert.equal(formatDecimal(123456789, "EUR"), "1234567.89");
  assert.equal(formatDecimal(5, "JPY"), "5");
  assert.equal(formatAmount(1, "KWD"), "0.001 KWD");
  assert.equal(formatAmount(-250, "USD"), "-2.50 USD");
  assert.equal(formatAmount(Number.MAX_SAFE_INTEGER, "EUR"), "90,071,992,547,409.91 EUR");
});

Deno.test("[money] parseAmount reads major units as integer minor units, without floats", () => {
  assert.equal(parseAmount("12.50", "EUR"), 1250);
  assert.equal(parseAmount("12.5", "EUR"), 1250);
  assert.equal(parseAmount(" 3 ", "EUR"), 300);
  assert.equal(parseAmount("0.29", "EUR"), 29, "0.29 * 100 is 28.999... in floating point");
  assert.equal(parseAmount("1000", "JPY"), 1000);
  assert.equal(parseAmount("1.5", "JPY"), null, "JPY has no minor digits");
  for (const bad of ["", "0", "0.00", "-1", "1.234", "1e3", "1,50", "abc", "99999999999999999"]) {
    assert.equal(parseAmount(bad, "EUR"), null, bad);
  }
});

Deno.test("[money] a typed amount too long to parse, or in exponent notation, is known to be above a limit", () => {
  for (const typed of ["99999999999999999999", "1e30", "1E+30", " 1000000.01 ", "1000000.001"]) {
    assert.equal(parseAmount(typed, "EUR") === null || parseAmount(typed, "EUR")! > 100_000_000, true, typed);
    assert.equal(typedAmountAbove(typed, "EUR", 100_000_000), true, typed);
  }
  for (const typed of ["1000000", "1e2", "abc", "-1e30", "1,000,000,000", ""]) {
    assert.equal(typedAmountAbove(typed, "EUR", 100_000_000), false, typed);
  }
  assert.equal(typedAmountAbove("100000001", "JPY", 100_000_000), true, "JPY has no minor digits");
});
