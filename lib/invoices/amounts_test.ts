import assert from "node:assert/strict";
import { formatBaseUnits, parseDecimalAmount } from "./amounts.ts";

Deno.test("[invoices] decimal amounts parse to base units without floats and back", () => {
  assert.equal(parseDecimalAmount("12.50", 6), 12_500_000n);
  assert.equal(parseDecimalAmount("0.000001", 6), 1n);
  assert.equal(parseDecimalAmount("1.000000000000000001", 18), 1_000_000_000_000_000_001n);
  assert.equal(parseDecimalAmount("0.0000001", 6), null, "more decimals than the coin has");
  for (const bad of ["", "1.", ".5", "01", "-1", "1e3", " 1", "1,5", "0x10", "NaN"]) {
    assert.equal(parseDecimalAmount(bad, 6), null, bad);
  }
  assert.equal(formatBaseUnits(12_500_000n, 6), "12.5");
  assert.equal(formatBaseUnits("0", 8), "0");
  assert.equal(formatBaseUnits("1000000000000000001", 18), "1.000000000000000001");
  assert.equal(formatBaseUnits(-5n, 2), "-0.05");
});
