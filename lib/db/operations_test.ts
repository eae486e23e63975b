import assert from "node:assert/strict";
import { sortableId } from "../ids.ts";
import {
  insertOperation,
  listOperations,
  newOperation,
  OPERATION_TTL_MS,
  type OperationEntry,
  type OperationFilter,
} from "./operations.ts";

function entry(n: number, shopId: string, accountId: string, outcome: OperationEntry["outcome"] = "ok") {
  return {
    at: Date.now() - 60_000 + n,
    shopId,
    accountId,
    orgId: "org_1",
    provider: "bansky",
    operation: "create" as const,
    paymentId: `pay_${n}`,
    refundId: null,
    providerRef: `bsk_${n}`,
    amount: 100 + n,
    currency: "EUR",
    outcome,
    status: outcome === "ok" ? "pending" : null,
    error: outcome === "ok" ? null : "declined",
    durationMs: 3,
  };
}

/** The payment ids of a listing, in its order. */
async function listedIds(kv: Deno.Kv, f: OperationFilter): Promise<string[]> {
  return (await listOperations(kv, f)).map((e) => e.paymentId);
}

async function keysUnder(kv: Deno.Kv, prefix: Deno.KvKey): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix })) n++;
  return n;
}

Deno.test("[operations] entries logged together share keys, and each listing still finds every one, newest first", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const entries = Array.from(
      { length: 12 },
      (_, i) => entry(i, i % 2 ? "shop_b" : "shop_a", i < 6 ? "acc_1" : "acc_2"),
    );
    await Promise.all(entries.map((e) => insertOperation(kv, e)));
    // The first entry commits alone; the other eleven arrive while it is in flight and share keys.
    assert.equal(await keysUnder(kv, ["provider_ops"]), 2);
    const paymentIds = (list: OperationEntry[]) => list.map((e) => e.paymentId);
    const newestFirst = (pick: (e: ReturnType<typeof entry>) => boolean) =>
      entries.filter(pick).map((e) => e.paymentId).reverse();
    assert.deepEqual(paymentIds(await listOperations(kv, { limit: 50 })), newestFirst(() => true));
    assert.deepEqual(
      paymentIds(await listOperations(kv, { shopId: "shop_b", limit: 50 })),
      newestFirst((e) => e.shopId === "shop_b"),
    );
    assert.deepEqual(
      paymentIds(await listOperations(kv, { accountId: "acc_1", limit: 50 })),
      newestFirst((e) => e.accountId === "acc_1"),
    );
    assert.deepEqual(
      paymentIds(await listOperations(kv, { shopId: "shop_a", accountId: "acc_2", limit: 2 })),
      newestFirst((e) => e.shopId === "shop_a" && e.accountId === "acc_2").slice(0, 2),
    );
  } finally {
    kv.close();
  }
});

Deno.test("[operations] an entry is stored once: the shop's and the account's listings point at the log's keys", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // One lone write, then a group of two shops and two accounts.
    await insertOperation(kv, entry(0, "shop_a", "acc_1"));
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => entry(1 + i, i % 2 ? "shop_b" : "shop_a", i < 4 ? "acc_1" : "acc_2"))
        .map((e) => insertOperation(kv, e)),
    );
    const logged = new Set<string>();
    for await (const { key } of kv.list({ prefix: ["provider_ops"] })) logged.add(key[1] as string);
    for (const prefix of [["provider_ops_by_shop"], ["provider_ops_by_account"]]) {
      for await (const { key, value } of kv.list<{ inLog: string[] }>({ prefix })) {
        assert.deepEqual(Object.keys(value), ["inLog"], `${key.join("/")} holds a pointer, not entries`);
        for (const seq of value.inLog) assert.ok(logged.has(seq), `${key.join("/")} points at a key of the log`);
      }
    }
    assert.deepEqual(await listedIds(kv, { shopId: "shop_a", limit: 50 }), [
      "pay_7",
      "pay_5",
      "pay_3",
      "pay_1",
      "pay_0",
    ]);
    assert.deepEqual(await listedIds(kv, { accountId: "acc_2", limit: 50 }), ["pay_8", "pay_7", "pay_6", "pay_5"]);
    assert.deepEqual(await listedIds(kv, { shopId: "shop_b", accountId: "acc_1", limit: 50 }), ["pay_4", "pay_2"]);
    // A pointer whose key is gone (say, past its time to live) lists nothing and breaks nothing.
    for (const seq of logged) await kv.delete(["provider_ops", seq]);
    assert.deepEqual(await listedIds(kv, { shopId: "shop_a", limit: 50 }), []);
  } finally {
    kv.close();
  }
});

Deno.test("[operations] a shop's listing counts its own entries against the scan bound, not its groups' other ones", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // 150 groups of 63 (after a lone write each round), each with one entry of shop_a among other shops' entries.
    for (let g = 0; g < 150; g++) {
      const round = Array.from(
        { length: 64 },
        (_, i) => i === 10 ? entry(g, "shop_a", "acc_a") : entry(100_000 + 64 * g + i, `shop_${i}`, "acc_busy"),
      );
      await Promise.all(round.map((e) => insertOperation(kv, e)));
    }
    const expected = Array.from({ length: 150 }, (_, g) => `pay_${149 - g}`);
    assert.deepEqual(await listedIds(kv, { shopId: "shop_a", limit: 200 }), expected);
    assert.deepEqual(await listedIds(kv, { accountId: "acc_a", limit: 200 }), expected);
  } finally {
    kv.close();
  }
});

Deno.test("[operations] a short listing reads little more of the log than it shows", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (let g = 0; g < 40; g++) {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => insertOperation(kv, entry(20 * g + i, `shop_${i}`, "acc_1"))),
      );
    }
    let logKeysRead = 0;
    const getMany = kv.getMany.bind(kv);
    kv.getMany = ((keys: Deno.KvKey[]) => {
      logKeysRead += keys.filter((k) => k[0] === "provider_ops").length;
      return getMany(keys);
    }) as typeof kv.getMany;
    assert.equal((await listOperations(kv, { accountId: "acc_1", limit: 5 })).length, 5);
    assert.ok(logKeysRead <= 2, `read ${logKeysRead} of the log's keys for 5 entries`);
  } finally {
    kv.close();
  }
});

Deno.test("[operations] a group too large for one key is split, and its pointers name every part once", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // About 3 KB each: a group of 20 needs three keys of the log.
    const entries = Array.from({ length: 20 }, (_, i) => ({
      ...entry(i, i % 2 ? "shop_b" : "shop_a", "acc_1", "error"),
      error: `declined ${i} `.padEnd(3_000, "x"),
    }));
    await insertOperation(kv, entry(99, "shop_c", "acc_2"));
    await Promise.all(entries.map((e) => insertOperation(kv, e)));
    const pointers = await Array.fromAsync(
      kv.list<{ inLog: string[] }>({ prefix: ["provider_ops_by_shop", "shop_a"] }),
    );
    assert.equal(pointers.length, 1);
    assert.ok(pointers[0].value.inLog.length >= 3, "the group's entries are in several keys");
    const newestFirst = (pick: (i: number) => boolean) =>
      entries.map((e, i) => (pick(i) ? e.paymentId : null)).filter((id) => id !== null).reverse();
    assert.deepEqual(await listedIds(kv, { shopId: "shop_a", limit: 50 }), newestFirst((i) => i % 2 === 0));
    assert.deepEqual(await listedIds(kv, { shopId: "shop_b", limit: 50 }), newestFirst((i) => i % 2 === 1));
    assert.deepEqual(await listedIds(kv, { accountId: "acc_1", limit: 50 }), newestFirst(() => true));
    assert.deepEqual(await listedIds(kv, { limit: 50 }), [...newestFirst(() => true), "pay_99"]);
  } finally {
    kv.close();
  }
});

Deno.test("[operations] entries stored before groups (an entry by id, ids in the indexes) are still listed", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const expireIn = OPERATION_TTL_MS;
    const old = [entry(1, "shop_a", "acc_1"), entry(2, "shop_a", "acc_1", "error")].map(newOperation);
    for (const e of old) {
      await kv.atomic().set(["provider_ops", e.id], e, { expireIn })
        .set(["provider_ops_by_shop", e.shopId, e.id], e.id, { expireIn })
        .set(["provider_ops_by_account", e.accountId, e.id], e.id, { expireIn }).commit();
    }
    await Promise.all([entry(3, "shop_a", "acc_1"), entry(4, "shop_a", "acc_1")].map((e) => insertOperation(kv, e)));
    const paymentIds = (list: OperationEntry[]) => list.map((e) => e.paymentId);
    const all = ["pay_4", "pay_3", "pay_2", "pay_1"];
    assert.deepEqual(paymentIds(await listOperations(kv, { limit: 10 })), all);
    assert.deepEqual(paymentIds(await listOperations(kv, { shopId: "shop_a", limit: 10 })), all);
    assert.deepEqual(paymentIds(await listOperations(kv, { accountId: "acc_1", limit: 10 })), all);
    assert.deepEqual(paymentIds(await listOperations(kv, { shopId: "shop_a", outcome: "error", limit: 10 })), [
      "pay_2",
    ]);
  } finally {
    kv.close();
  }
});

Deno.test("[operations] the listing's scan bound counts entries, not keys: a filter that matches little stays cheap", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // The oldest entry is the only one of acc_rare, behind 100 group keys of 64 entries each (6,400 in all).
    await insertOperation(kv, entry(0, "shop_a", "acc_rare"));
    for (let k = 0; k < 100; k++) {
      const group = Array.from({ length: 64 }, (_, i) => newOperation(entry(1 + 64 * k + i, "shop_a", "acc_busy")));
      await kv.set(["provider_ops_by_shop", "shop_a", sortableId()], group);
    }
    const found = await listOperations(kv, { shopId: "shop_a", accountId: "acc_rare", limit: 10 });
    assert.deepEqual(found, [], "past the bound of about 5,000 entries");
    // Within the bound it is found.
    assert.equal((await listOperations(kv, { accountId: "acc_rare", limit: 10 })).length, 1);
  } finally {
    kv.close();
  }
});
