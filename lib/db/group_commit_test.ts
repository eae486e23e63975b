import assert from "node:assert/strict";
import { GroupCommitter } from "./group_commit.ts";

interface Item {
  id: string;
  value: string;
}

function committer(kv: Deno.Kv) {
  return new GroupCommitter<Item>(kv, {
    addOps: (op, item) => op.check({ key: ["k", item.id], versionstamp: null }).set(["k", item.id], item.value),
    identity: (item) => item.id,
    maxGroup: 8,
  });
}

Deno.test("[group commit] concurrent writes are all stored, in fewer commits than writes", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const writer = committer(kv);
    const items = Array.from({ length: 20 }, (_, i) => ({ id: `w${i}`, value: `v${i}` }));
    const results = await Promise.all(items.map((item) => writer.commit(item)));
    assert.deepEqual(results, items.map(() => true));
    const entries = await Promise.all(items.map((item) => kv.get<string>(["k", item.id])));
    assert.deepEqual(entries.map((e) => e.value), items.map((item) => item.value));
    // Writes committed together share their commit's versionstamp; at most 8 per group.
    const commits = new Set(entries.map((e) => e.versionstamp)).size;
    assert.ok(commits < items.length, `${commits} commits for ${items.length} writes`);
    assert.ok(commits >= Math.ceil((items.length - 1) / 8), `${commits} commits: groups over the limit`);
  } finally {
    kv.close();
  }
});

Deno.test("[group commit] a failed check fails only its own write; the rest of its group is stored", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(["k", "taken"], "earlier");
    const writer = committer(kv);
    const ids = ["a", "b", "taken", "c", "d"];
    const results = await Promise.all(ids.map((id) => writer.commit({ id, value: "new" })));
    assert.deepEqual(results, [true, true, false, true, true]);
    assert.equal((await kv.get(["k", "taken"])).value, "earlier");
    for (const id of ["a", "b", "c", "d"]) assert.equal((await kv.get(["k", id])).value, "new");
  } finally {
    kv.close();
  }
});

Deno.test("[group commit] two writes with the same identity never share a group: exactly one wins", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const writer = committer(kv);
    const results = await Promise.all([
      writer.commit({ id: "x", value: "first" }),
      writer.commit({ id: "y", value: "other" }),
      writer.commit({ id: "x", value: "second" }),
      writer.commit({ id: "x", value: "third" }),
    ]);
    assert.deepEqual(results, [true, true, false, false]);
    assert.equal((await kv.get(["k", "x"])).value, "first");
  } finally {
    kv.close();
  }
});

Deno.test("[group commit] a write the store refuses rejects alone; the others are stored", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const writer = committer(kv);
    const tooBig = "x".repeat(70_000); // over KV's 64 KiB value limit
    const results = await Promise.allSettled([
      writer.commit({ id: "a", value: "ok" }),
      writer.commit({ id: "b", value: "ok" }),
      writer.commit({ id: "big", value: tooBig }),
      writer.commit({ id: "c", value: "ok" }),
    ]);
    assert.deepEqual(results.map((r) => r.status), ["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    for (const id of ["a", "b", "c"]) assert.equal((await kv.get(["k", id])).value, "ok");
    assert.equal((await kv.get(["k", "big"])).versionstamp, null);
  } finally {
    kv.close();
  }
});

Deno.test("[group commit] two fresh writes of one id queued behind a busy commit still never share a group", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const writer = committer(kv);
    // The first write commits alone; the two writes of "fresh" queue behind it, where, without the identity
    // rule, they would share the next group and both pass (KV accepts two null checks on one key in one commit).
    const busy = writer.commit({ id: "busy", value: "v" });
    const first = writer.commit({ id: "fresh", value: "first" });
    const second = writer.commit({ id: "fresh", value: "second" });
    assert.deepEqual(await Promise.all([busy, first, second]), [true, true, false]);
    assert.equal((await kv.get(["k", "fresh"])).value, "first");
  } finally {
    kv.close();
  }
});

Deno.test("[group commit] counters bumped by a group's writes reach the store as one sum per key, with the same totals", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // Count the sum mutations the store is sent.
    let sums = 0;
    const atomic = kv.atomic.bind(kv);
    kv.atomic = () => {
      const op = atomic();
      const sum = op.sum.bind(op);
      op.sum = (key, n) => (sums++, sum(key, n));
      return op;
    };
    const writer = new GroupCommitter<Item>(kv, {
      addOps: (op, item) =>
        op.set(["k", item.id], item.value).sum(["count"], 1n).sum(["length"], BigInt(item.value.length)),
      identity: (item) => item.id,
      maxGroup: 32,
    });
    const items = Array.from({ length: 20 }, (_, i) => ({ id: `w${i}`, value: "x".repeat(i) }));
    assert.deepEqual(await Promise.all(items.map((item) => writer.commit(item))), items.map(() => true));
    assert.equal((await kv.get<Deno.KvU64>(["count"])).value?.value, 20n);
    assert.equal((await kv.get<Deno.KvU64>(["length"])).value?.value, 190n);
    // The first write goes alone (nothing in flight yet); the other 19 share one commit: 2 + 2 sums, not 40.
    assert.ok(sums < 2 * items.length, `${sums} sum mutations for ${items.length} writes`);
  } finally {
    kv.close();
  }
});

Deno.test("[group commit] settled() waits for writes nobody awaited, across the groups they went in", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const writer = committer(kv);
    for (let i = 0; i < 20; i++) void writer.commit({ id: `u${i}`, value: `v${i}` });
    await writer.settled();
    const stored = await kv.getMany<string[]>(Array.from({ length: 10 }, (_, i) => ["k", `u${i + 10}`]));
    assert.deepEqual(stored.map((e) => e.value), Array.from({ length: 10 }, (_, i) => `v${i + 10}`));
    await writer.settled(); // Idle: at once.
  } finally {
    kv.close();
  }
});

/** Commits "first", then a, b, taken, c and d while it is at the store, so those five go as one group: their results. */
async function commitBehindFirst(writer: GroupCommitter<Item>): Promise<boolean[]> {
  const first = writer.commit({ id: "first", value: "new" });
  const results = Promise.all(["a", "b", "taken", "c", "d"].map((id) => writer.commit({ id, value: "new" })));
  assert.equal(await first, true);
  return await results;
}

/** The versionstamps `ids` are stored with. */
function stampsOf(kv: Deno.Kv, ids: string[]): Promise<(string | null)[]> {
  return Promise.all(ids.map(async (id) => (await kv.get(["k", id])).versionstamp));
}

Deno.test("[group commit] a group failed by one write's check goes again as one group without it", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(["k", "taken"], "earlier");
    const writer = committer(kv);
    assert.deepEqual(await commitBehindFirst(writer), [true, true, false, true, true]);
    assert.equal(new Set(await stampsOf(kv, ["a", "b", "c", "d"])).size, 1, "the other four shared one commit");
  } finally {
    kv.close();
  }
});

/** `kv` with its reads replaced: what the committer's stale-key read (getMany) sees or does. */
function withReads(kv: Deno.Kv, getMany: (keys: Deno.KvKey[]) => Promise<Deno.KvEntryMaybe<unknown>[]>): Deno.Kv {
  return { atomic: () => kv.atomic(), getMany } as unknown as Deno.Kv;
}

Deno.test("[group commit] a regrouped group that fails again goes write by write, each write judged alone", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(["k", "taken"], "earlier");
    // Another process takes "c" right after the committer read the checked keys: the regrouped commit fails too.
    const writer = committer(withReads(kv, async (keys) => {
      const entries = await kv.getMany(keys);
      await kv.set(["k", "c"], "raced");
      return entries;
    }));
    assert.deepEqual(await commitBehindFirst(writer), [true, true, false, false, true]);
    assert.equal((await kv.get(["k", "c"])).value, "raced");
    assert.equal(new Set(await stampsOf(kv, ["a", "b", "d"])).size, 3, "write by write after the second failure");
  } finally {
    kv.close();
  }
});

Deno.test("[group commit] when the checked keys cannot be read, a failed group goes write by write", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(["k", "taken"], "earlier");
    let commits = 0;
    const store = withReads(kv, () => Promise.reject(new Error("store unavailable")));
    store.atomic = () => {
      const op = kv.atomic();
      const commit = op.commit.bind(op);
      op.commit = () => (commits++, commit());
      return op;
    };
    const writer = committer(store);
    assert.deepEqual(await commitBehindFirst(writer), [true, true, false, true, true]);
    assert.equal((await kv.get(["k", "taken"])).value, "earlier");
    assert.equal(new Set(await stampsOf(kv, ["a", "b", "c", "d"])).size, 4, "write by write");
    // Whether "first" went alone or with the group: one failed group commit, then one commit per write, nothing more.
    assert.equal(commits, 7);
  } finally {
    kv.close();
  }
});
