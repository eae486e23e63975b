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
