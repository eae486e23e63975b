import assert from "node:assert/strict";
import { GroupReader } from "./group_read.ts";

/** The real store, counting the getMany calls that reach it. */
function counted(kv: Deno.Kv) {
  const calls: number[] = [];
  const store = Object.create(kv) as Deno.Kv;
  store.getMany = ((keys: Deno.KvKey[]) => {
    calls.push(keys.length);
    return kv.getMany(keys);
  }) as Deno.Kv["getMany"];
  return { store, calls };
}

Deno.test("[group read] concurrent reads get their own entries, from few reads of distinct keys", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (let i = 0; i < 30; i++) await kv.set(["v", i], i * 10);
    const { store, calls } = counted(kv);
    const reader = new GroupReader(store);
    // Many requests for the same two keys (one shop's key and record), plus one key of their own.
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => reader.getMany<[number, number, number]>([["v", 0], ["v", 1], ["v", i]])),
    );
    results.forEach((entries, i) => assert.deepEqual(entries.map((e) => e.value), [0, 10, i * 10]));
    assert.ok(calls.every((n) => n <= 10), `a read over KV's limit: ${calls}`);
    assert.ok(calls.length < 30, `${calls.length} reads for 30 requests`);
    assert.equal(calls.reduce((a, b) => a + b, 0), 30 + 2 * (calls.length - 1), "each distinct key read once per read");
  } finally {
    kv.close();
  }
});

Deno.test("[group read] a read asked for after a commit sees that commit, even while an older read is running", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(["key", "revoked"], false);
    const reader = new GroupReader(kv);
    const before = reader.getMany<[boolean]>([["key", "revoked"]]);
    await kv.set(["key", "revoked"], true);
    const after = await reader.getMany<[boolean]>([["key", "revoked"]]);
    assert.equal(after[0].value, true);
    assert.notEqual((await before)[0].versionstamp, null);
  } finally {
    kv.close();
  }
});

Deno.test("[group read] more keys than one getMany takes fail as KV fails them, and spoil no group", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(["one"], 1);
    const reader = new GroupReader(kv);
    const keys = Array.from({ length: 11 }, (_, i) => ["many", i]);
    const [tooMany, fine] = await Promise.allSettled([reader.getMany(keys), reader.getMany<[number]>([["one"]])]);
    assert.equal(tooMany.status, "rejected");
    assert.match(String((tooMany as PromiseRejectedResult).reason), /max 10/);
    assert.equal(fine.status === "fulfilled" && fine.value[0].value, 1);
  } finally {
    kv.close();
  }
});

Deno.test("[group read] a key KV refuses fails only the read that asked for it", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(["ok"], "fine");
    const reader = new GroupReader(kv);
    const huge = ["id", "x".repeat(3000)]; // over KV's 2 KiB key limit
    const results = await Promise.allSettled([
      reader.getMany<[string]>([["ok"]]),
      reader.getMany<[string]>([["ok"]]),
      reader.getMany([huge]),
      reader.getMany<[string]>([["ok"]]),
    ]);
    assert.deepEqual(results.map((r) => r.status), ["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    for (const r of results) if (r.status === "fulfilled") assert.equal(r.value[0].value, "fine");
  } finally {
    kv.close();
  }
});
