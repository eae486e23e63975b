import assert from "node:assert/strict";
import { warnRepeatable } from "./log.ts";

Deno.test("[log] a repeated warning is written once a minute, the next line saying how many were left out", () => {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: string) => void lines.push(line);
  try {
    for (let i = 0; i < 500; i++) {
      warnRepeatable("test:forged", "webhook rejected", { reason: "bad signature" }, 1_000 + i);
    }
    warnRepeatable("test:other", "webhook rejected", { reason: "malformed body" }, 2_000);
    assert.equal(lines.length, 2, "one line per kind within the minute");
    warnRepeatable("test:forged", "webhook rejected", { reason: "bad signature" }, 61_001);
    assert.equal(lines.length, 3);
    assert.equal(JSON.parse(lines[2]).repeatsLeftOut, 499);
    // Thousands of distinct kinds (say, ids a sender makes up) stay bounded: past the cap they share one entry.
    for (let i = 0; i < 5_000; i++) warnRepeatable(`test:made-up:${i}`, "webhook rejected", {}, 70_000);
    assert.ok(lines.length < 3 + 1_001, `${lines.length} lines`);
  } finally {
    console.error = original;
  }
});
