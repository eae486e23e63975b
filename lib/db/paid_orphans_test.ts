import assert from "node:assert/strict";
import {
  countUnhandledPaidOrphans,
  getPaidOrphan,
  listPaidOrphans,
  markPaidOrphanHandled,
  recordPaidOrphanSighting,
} from "./paid_orphans.ts";
import { searchAudit } from "./audit.ts";
import type { OrphanSighting } from "./paid_orphans.ts";
import { markOrphanHandledInStore } from "../../fixtures/paid_orphans.ts";

const sighting: OrphanSighting = {
  provider: "bansky",
  accountId: "default",
  ref: "bsk_race",
  paymentId: "pay_AAAAAAAAAAAAAAAAAAAAAA",
  paymentStored: false,
  storedRef: null,
  claimed: "succeeded",
  lastEventId: "evt_1",
};

Deno.test("[paid orphans] a provider's retry written while an operator marks the orphan handled does not refuse the mark: it is read again and marked, in one write with its audit entry", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await recordPaidOrphanSighting(kv, sighting, 1_000);
    // The mark's first write loses to a retry of the webhook committed just before it.
    const atomic = kv.atomic.bind(kv);
    let raced = false;
    kv.atomic = () => {
      const op = atomic();
      const commit = op.commit.bind(op);
      op.commit = async () => {
        if (!raced) {
          raced = true;
          kv.atomic = atomic;
          await recordPaidOrphanSighting(kv, { ...sighting, lastEventId: "evt_2" }, 2_000);
        }
        return await commit();
      };
      return op;
    };
    const handled = { at: 3_000, by: "ops@example.com", note: "refunded at Bansky" };
    const after = await markPaidOrphanHandled(kv, sighting, handled, (before) => ({
      at: handled.at,
      actor: handled.by,
      action: "paid_orphan.handle",
      target: before.ref,
      before: { timesSeen: before.timesSeen },
      after: { note: handled.note },
    }));
    assert.ok(raced);
    assert.deepEqual([after.timesSeen, after.lastEventId, after.handled], [2, "evt_2", handled]);
    assert.deepEqual(await getPaidOrphan(kv, "default", "bsk_race"), after);
    const audit = await searchAudit(kv, { query: "paid_orphan.handle", limit: 10 });
    assert.deepEqual(audit.map((e) => e.before), [{ timesSeen: 2 }], "one entry, of the write that landed");
    // A further sighting leaves a handled orphan as it is.
    assert.deepEqual(await recordPaidOrphanSighting(kv, { ...sighting, lastEventId: "evt_3" }, 4_000), after);
    assert.deepEqual(await getPaidOrphan(kv, "default", "bsk_race"), after);
  } finally {
    kv.close();
  }
});

Deno.test("[paid orphans] the gauge's and the console's caps hold per provider and account: a flood of orphans on one account does not hide another's", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    for (const ref of ["bsk_1", "bsk_2", "bsk_3"]) await recordPaidOrphanSighting(kv, { ...sighting, ref }, 1_000);
    const other = { ...sighting, provider: "stripe", accountId: "pa_other", ref: "cs_1" };
    await recordPaidOrphanSighting(kv, other, 2_000);
    assert.deepEqual(await countUnhandledPaidOrphans(kv, 2), [
      { provider: "bansky", account: "default", count: 2 },
      { provider: "stripe", account: "pa_other", count: 1 },
    ]);
    const { unhandled } = await listPaidOrphans(kv, { unhandled: 2, handled: 10 });
    assert.deepEqual(unhandled.map((o) => o.ref), ["cs_1", "bsk_1", "bsk_2"]);
  } finally {
    kv.close();
  }
});

Deno.test("[paid orphans] one marked handled while its money was on its way (pending) waits again when the provider says the money arrived, the earlier mark kept beside it; news of no more than what was marked is still acknowledged", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const onItsWay = { ...sighting, ref: "cs_debit", claimed: "pending" as const };
    await recordPaidOrphanSighting(kv, onItsWay, 1_000);
    const handled = { at: 2_000, by: "ops@example.com", note: "the shop will take it by hand once it clears" };
    await markOrphanHandledInStore(kv, onItsWay, handled);
    // A retry of the news the operator saw is acknowledged.
    assert.deepEqual((await recordPaidOrphanSighting(kv, onItsWay, 2_500)).handled, handled);
    const arrived = await recordPaidOrphanSighting(
      kv,
      { ...onItsWay, claimed: "succeeded", lastEventId: "evt_9" },
      3_000,
    );
    assert.equal(arrived.handled, null, "refused again: the operator marked money on its way, not money taken");
    assert.deepEqual([arrived.claimed, arrived.earlierMark, arrived.timesSeen], ["succeeded", handled, 2]);
    assert.deepEqual(await countUnhandledPaidOrphans(kv, 10), [{ provider: "bansky", account: "default", count: 1 }]);
    const listed = await listPaidOrphans(kv, { unhandled: 10, handled: 10 });
    assert.deepEqual([listed.unhandled.map((o) => o.ref), listed.handled.map((o) => o.ref)], [["cs_debit"], []]);
    // Marked again, the money's further news is acknowledged, and the earlier mark stays on the record.
    const again = { at: 4_000, by: "ops@example.com", note: "refunded in Stripe's Dashboard" };
    const after = await markOrphanHandledInStore(kv, onItsWay, again);
    assert.deepEqual([after.handled, after.earlierMark], [again, handled]);
    const retry = await recordPaidOrphanSighting(kv, { ...onItsWay, claimed: "succeeded" }, 5_000);
    assert.deepEqual(retry, after);
  } finally {
    kv.close();
  }
});

Deno.test("[paid orphans] a late retry of the news that the money was on its way does not take back the news that it arrived: the record still says succeeded, and once marked the money's news stays acknowledged", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const debit = { ...sighting, ref: "cs_late", claimed: "pending" as const };
    await recordPaidOrphanSighting(kv, debit, 1_000);
    await recordPaidOrphanSighting(kv, { ...debit, claimed: "succeeded", lastEventId: "evt_arrived" }, 2_000);
    const late = await recordPaidOrphanSighting(kv, { ...debit, lastEventId: "evt_1_retry" }, 3_000);
    assert.deepEqual([late.claimed, late.lastEventId, late.timesSeen], ["succeeded", "evt_1_retry", 3]);
    const handled = { at: 4_000, by: "ops@example.com", note: "refunded in Stripe's Dashboard" };
    await markOrphanHandledInStore(kv, debit, handled);
    const retry = await recordPaidOrphanSighting(kv, { ...debit, claimed: "succeeded" }, 5_000);
    assert.deepEqual([retry.handled, retry.earlierMark], [handled, undefined], "not waiting again");
  } finally {
    kv.close();
  }
});
