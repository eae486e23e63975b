import assert from "node:assert/strict";
import { randomId, sortableId } from "../ids.ts";
import type { Refund } from "../refunds/types.ts";
import {
  commitRefundUpdate,
  getRefund,
  getRefundEntry,
  getRefundReservation,
  insertRefund,
  type NewRefund,
  readPendingRefunds,
} from "./refunds.ts";

/** A new pending refund of `amount` on `paymentId`, reserving on top of the reservation as read. */
async function newRefund(kv: Deno.Kv, paymentId: string, amount: number, now: number): Promise<NewRefund> {
  const refund: Refund = {
    id: randomId("re"),
    seq: sortableId(now),
    paymentId,
    shopId: "shop_a",
    shopRefundId: null,
    idempotencyKey: null,
    requestHash: "x",
    amount,
    currency: "EUR",
    reason: null,
    status: "pending",
    providerRef: null,
    failureReason: null,
    requestedBy: "api",
    checks: 0,
    nextCheckAt: now + 60_000,
    createdAt: now,
    updatedAt: now,
    settledAt: null,
  };
  return {
    refund,
    reservation: await getRefundReservation(kv, paymentId),
    event: { type: "refund_requested", at: now, data: { refundId: refund.id, amount } },
    jobs: { queue: false, now },
  };
}

Deno.test("[refunds-db] a refund reserving on a stale read fails alone in its group; the others commit together", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const now = Date.now();
    const writes = await Promise.all(["pay_1", "pay_2", "pay_3"].map((p) => newRefund(kv, p, 300, now)));
    // Another refund of pay_2 reserves first: the reservation read above is stale.
    const other = await newRefund(kv, "pay_2", 700, now);
    assert.ok(await insertRefund(kv, other));
    // The first insert goes alone and holds the store; the next three queue up behind it and go as one group.
    const first = insertRefund(kv, await newRefund(kv, "pay_0", 100, now));
    const results = await Promise.all(writes.map((w) => insertRefund(kv, w)));
    assert.ok(await first);
    assert.equal(results[1], null, "the refund on the stale reservation is refused");
    assert.ok(results[0] && results[2] && results[0].versionstamp === results[2].versionstamp, "shared one commit");
    assert.equal((await getRefundReservation(kv, "pay_2")).value, 700, "only the other refund is reserved");
    assert.equal(await getRefund(kv, writes[1].refund.id), null);
    for (const p of ["pay_1", "pay_3"]) assert.equal((await getRefundReservation(kv, p)).value, 300);
  } finally {
    kv.close();
  }
});

Deno.test("[refunds-db] the pending index holds a refund exactly while it is pending, oldest first whatever its id or next check", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const now = Date.now();
    // Random ids and next checks in the reverse order of their creation: only when each was asked for orders them.
    const [a, b, c] = await Promise.all([3, 2, 1].map(async (ago, i) => {
      const n = await newRefund(kv, `pay_${i}`, 100, now);
      n.refund = { ...n.refund, createdAt: now - ago * 1000, nextCheckAt: now + ago * 60_000 };
      assert.ok(await insertRefund(kv, n));
      return n.refund;
    }));
    const move = async (id: string, patch: Partial<Refund>) => {
      const entry = (await getRefundEntry(kv, id)) as Deno.KvEntry<Refund>;
      assert.ok(await commitRefundUpdate(kv, entry, { ...entry.value, ...patch }, { queue: false, now }));
    };
    // A new refund is not in it: most settle in their request, and would each cost a key written and deleted.
    assert.deepEqual(await readPendingRefunds(kv, 10), { count: 0, oldestCreatedAt: null });
    // The provider left each pending (or did not answer): the write that stores that puts it in.
    for (const r of [c, b, a]) await move(r.id, { checks: 1 });
    assert.deepEqual(await readPendingRefunds(kv, 10), { count: 3, oldestCreatedAt: a.createdAt });
    assert.deepEqual(await readPendingRefunds(kv, 2), { count: 2, oldestCreatedAt: a.createdAt }, "the count stops");
    // Checked again and still pending: one key still.
    await move(a.id, { checks: 1, nextCheckAt: now + 6 * 3_600_000 });
    assert.deepEqual(await readPendingRefunds(kv, 10), { count: 3, oldestCreatedAt: a.createdAt });
    await move(a.id, { status: "succeeded", settledAt: now });
    assert.deepEqual(await readPendingRefunds(kv, 10), { count: 2, oldestCreatedAt: b.createdAt });
    // Reversed after its success: failed, and not waiting on anyone.
    await move(a.id, { status: "failed", succeededAt: now, settledAt: now });
    await move(b.id, { status: "failed", settledAt: now });
    assert.deepEqual(await readPendingRefunds(kv, 10), { count: 1, oldestCreatedAt: c.createdAt });
    await move(c.id, { status: "succeeded", settledAt: now });
    assert.deepEqual(await readPendingRefunds(kv, 10), { count: 0, oldestCreatedAt: null });
  } finally {
    kv.close();
  }
});
