import assert from "node:assert/strict";
import { utcDay } from "./stats.ts";

Deno.test("[stats] utcDay names the UTC day of any time, across day boundaries and back again", () => {
  const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const midnight = Date.UTC(2026, 10, 29);
  for (const ms of [midnight - 1, midnight, midnight - 1, 0, -1, midnight + 86_399_999, midnight + 86_400_000]) {
    assert.equal(utcDay(ms), iso(ms), String(ms));
  }
});
