import assert from "node:assert/strict";
import { currencyExponent, formatAmount, isCurrency } from "./money.ts";

Deno.test("[money] knows ISO 4217 exponents", () => {
  assert.equal(currencyExponent("EUR"), 2);
  assert.equal(currencyExponent("JPY"), 0);
  assert.equal(currencyExponent("KWD"), 3);
  assert.equal(currencyExponent("CLF"), 4);
  assert.equal(isCurrency("XAU"), false);
  assert.equal(isCurrency("EUR"), true);
  assert.equal(isCurrency("eur"), false);
});

Deno.test("[money] formats minor units with integer arithmetic only", () => {
  assert.equal(formatAmount(1000, "EUR"), "10.00 EUR");
  assert.equal(formatAmount(5, "EUR"), "0.05 EUR");
  assert.equal(formatAmount(1000, "JPY"), "1000 JPY");
  assert.equal(formatAmount(1, "KWD"), "0.001 KWD");
  assert.equal(formatAmount(-250, "USD"), "-2.50 USD");
  assert.equal(formatAmount(Number.MAX_SAFE_INTEGER, "EUR"), "90071992547409.91 EUR");
});
