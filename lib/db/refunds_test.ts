import assert from "node:assert/strict";
import { randomId, sortableId } from "../ids.ts";
import type { Refund } from "../refunds/types.ts";
import { getRefund, getRefundReservation, insertRefund, type NewRefund } from "./refunds.ts";

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
