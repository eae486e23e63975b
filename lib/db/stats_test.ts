import assert from "node:assert/strict";
import { addStatsOps, readStats, type StatEvent, utcDay } from "./stats.ts";
import { GroupCommitter } from "./group_commit.ts";

Deno.test("[stats] utcDay names the UTC day of any time, across day boundaries and back again", () => {
  const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const midnight = Date.UTC(2026, 10, 29);
  for (const ms of [midnight - 1, midnight, midnight - 1, 0, -1, midnight + 86_399_999, midnight + 86_400_000]) {
    assert.equal(utcDay(ms), iso(ms), String(ms));
  }
});

Deno.test("[stats] a withdrawal takes a count and amount back, in one group commit with the entry or on its own; reads are signed", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const at = Date.UTC(2026, 10, 29, 12);
    const day = utcDay(at);
    const e: StatEvent = { at, shopId: "shop_a", currency: "EUR", status: "expired", amount: 1500 };
    // Committed together in one group: KV's unsigned sums wrap, so +1 and -1 on one key come to 0.
    const writer = new GroupCommitter<StatEvent>(kv, {
      addOps: addStatsOps,
      identity: () => crypto.randomUUID(),
      maxGroup: 8,
    });
    await Promise.all([writer.commit(e), writer.commit({ ...e, withdrawn: true })]);
    const [together] = await readStats(kv, day, day);
    assert.deepEqual([together.count, together.amount], [0, 0]);
    // Taken back more often than added (never meant to happen): read as below zero, not as 2^64 - 1.
    await writer.commit({ ...e, withdrawn: true });
    const [below] = await readStats(kv, day, day);
    assert.deepEqual([below.count, below.amount], [-1, -1500]);
  } finally {
    kv.close();
  }
});
