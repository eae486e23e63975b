import assert from "node:assert/strict";
import { type ActivityRef, addActivityOps, countActivityAfter, listActivity } from "./activity.ts";
import { GroupCommitter } from "./group_commit.ts";

/** An activity entry of about `pad` characters. */
function attempt(n: number, pad = 0): ActivityRef {
  return {
    kind: "attempt",
    paymentId: `pay_${n}${"x".repeat(pad)}`,
    shopId: "shop_1",
    deliveryId: `dlv_${n}`,
    attempt: 1,
  };
}

function activityWriter(kv: Deno.Kv) {
  return new GroupCommitter<ActivityRef[]>(kv, {
    addOps: (op, refs) => {
      for (const ref of refs) addActivityOps(op, ref);
    },
    identity: (refs) => (refs[0] as { deliveryId: string }).deliveryId,
    maxGroup: 32,
  });
}

async function activityKeys(kv: Deno.Kv): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix: ["activity"] })) n++;
  return n;
}

Deno.test("[activity] a group commit's entries share one key, in order, and the readers see each of them", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const writer = activityWriter(kv);
    // Two entries per write, as a new payment writes its creation and its provider call.
    const writes = Array.from({ length: 12 }, (_, i) => [attempt(2 * i), attempt(2 * i + 1)]);
    await Promise.all(writes.map((refs) => writer.commit(refs)));
    // The first write commits alone; the other eleven arrive while it is in flight and go together.
    assert.equal(await activityKeys(kv), 2 + 1);
    const listed = await listActivity(kv, { limit: 100 });
    assert.deepEqual(listed.map((e) => e.ref), writes.flat());
    assert.equal(new Set(listed.slice(2).map((e) => e.seq)).size, 1);
    assert.equal(await countActivityAfter(kv, null), 24);
  } finally {
    kv.close();
  }
});

Deno.test("[activity] a limit never splits a key, so a cursor at the last seq read skips nothing", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const writer = activityWriter(kv);
    const writes = Array.from({ length: 10 }, (_, i) => [attempt(i)]);
    await Promise.all(writes.map((refs) => writer.commit(refs)));
    const seen: ActivityRef[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const page = await listActivity(kv, { afterSeq: cursor, limit: 3 });
      if (!page.length) break;
      seen.push(...page.map((e) => e.ref));
      cursor = page.at(-1)!.seq;
    }
    assert.deepEqual(seen, writes.flat());
  } finally {
    kv.close();
  }
});

Deno.test("[activity] a group's entries are split over keys that stay under KV's 64 KiB value limit", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const writer = activityWriter(kv);
    // 20 entries of about 9,000 characters: 180,000 in all, far past one value.
    const writes = Array.from({ length: 20 }, (_, i) => [attempt(i, 9_000)]);
    const results = await Promise.all(writes.map((refs) => writer.commit(refs)));
    assert.deepEqual(results, writes.map(() => true));
    // Written as groups (not one by one after a failed group), a few entries per key.
    const keys = await activityKeys(kv);
    assert.ok(keys > 2 && keys < 20, `${keys} keys`);
    assert.deepEqual((await listActivity(kv, { limit: 100 })).map((e) => e.ref), writes.flat());
  } finally {
    kv.close();
  }
});

Deno.test("[activity] a page of the log reads a few group keys per trip, not its whole limit of them", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const writer = activityWriter(kv);
    await Promise.all(Array.from({ length: 40 }, (_, i) => writer.commit([attempt(i, 900)])));
    // The export asks for 500 entries; each key here holds dozens. A trip of 500 keys read tens of megabytes in the
    // bench (export CPU per row doubled), so the keys fetched per trip are bounded.
    const batchSizes: (number | undefined)[] = [];
    const spy = new Proxy(kv, {
      get(target, prop) {
        if (prop !== "list") return Reflect.get(target, prop).bind(target);
        return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
          batchSizes.push(options?.batchSize);
          return target.list(selector, options);
        };
      },
    });
    assert.equal((await listActivity(spy, { limit: 500 })).length, 40);
    assert.ok(batchSizes.every((n) => n !== undefined && n <= 64), `batch sizes ${batchSizes}`);
  } finally {
    kv.close();
  }
});
