import assert from "node:assert/strict";
import { warnRepeatable } from "./log.ts";

function captureWarnings(fn: () => void): Record<string, unknown>[] {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: string) => void lines.push(line);
  try {
    fn();
  } finally {
    console.error = original;
  }
  return lines.map((l) => JSON.parse(l));
}

Deno.test("[log] a repeated warning is written once a minute, and what the minute left out is reported", () => {
  const lines = captureWarnings(() => {
    for (let i = 0; i < 500; i++) {
      warnRepeatable("t1:forged", "webhook rejected", { reason: "bad signature" }, 1_000 + i);
    }
    warnRepeatable("t1:other", "webhook rejected", { reason: "malformed body" }, 2_000);
  });
  assert.equal(lines.length, 2, "one line per kind within the minute");
  // The same kind after the minute: one line, saying how many were left out.
  const next = captureWarnings(() =>
    warnRepeatable("t1:forged", "webhook rejected", { reason: "bad signature" }, 61_001)
  );
  assert.equal(next.length, 1);
  assert.equal(next[0].repeatsLeftOut, 499);
});

Deno.test("[log] a burst followed by silence is still reported, by the next warning of any kind", () => {
  const lines = captureWarnings(() => {
    for (let i = 0; i < 1_000; i++) warnRepeatable("t2:burst", "chain notice rejected", { reason: "bad" }, 200_000 + i);
    warnRepeatable("t2:unrelated", "invoice dust", {}, 270_000);
  });
  const reported = lines.find((l) => l.msg === "chain notice rejected" && l.repeatsLeftOut === 999);
  assert.ok(reported, JSON.stringify(lines));
});

Deno.test("[log] thousands of kinds stay bounded: past the cap they share one entry and still speak in their own words", () => {
  const lines = captureWarnings(() => {
    for (let i = 0; i < 5_000; i++) warnRepeatable(`t3:made-up:${i}`, "webhook rejected", {}, 400_000);
  });
  assert.ok(lines.length <= 1_001, `${lines.length} lines`);
});
