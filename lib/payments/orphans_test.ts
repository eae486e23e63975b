import assert from "node:assert/strict";
import { ORPHAN_REF_MAX, orphanSighting } from "./orphans.ts";
import { getPaidOrphan, recordPaidOrphanSighting } from "../db/paid_orphans.ts";
import { markOrphanHandledInStore } from "../../fixtures/paid_orphans.ts";

const news = (ref: string) => ({
  provider: "stripe",
  accountId: "default",
  ref,
  paymentId: "pay_AAAAAAAAAAAAAAAAAAAAAA",
  claimed: "succeeded" as const,
});
const notStored = { paymentStored: false, storedRef: null };

Deno.test("[paid orphans] two references longer than the cap that agree in their first characters stay two records: a mark of one leaves the other waiting", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const common = "cs_" + "x".repeat(ORPHAN_REF_MAX);
    const [a, b] = [
      orphanSighting(news(common + "a"), notStored, "evt_a"),
      orphanSighting(news(common + "b"), notStored, "evt_b"),
    ];
    assert.ok(a.ref.length <= ORPHAN_REF_MAX && b.ref.length <= ORPHAN_REF_MAX);
    assert.equal(
      orphanSighting(news(common + "a"), notStored, "evt_a2").ref,
      a.ref,
      "the same reference, the same key",
    );
    await recordPaidOrphanSighting(kv, a, 1_000);
    await recordPaidOrphanSighting(kv, b, 1_000);
    const handled = { at: 2_000, by: "ops@example.com", note: "refunded in Stripe's Dashboard" };
    await markOrphanHandledInStore(kv, a, handled);
    assert.equal((await recordPaidOrphanSighting(kv, b, 3_000)).handled, null, "the other's news is still refused");
    assert.equal((await getPaidOrphan(kv, "default", b.ref))?.timesSeen, 2);
  } finally {
    kv.close();
  }
});

Deno.test("[paid orphans] a reference within the cap is kept as the provider gave it", () => {
  const ref = "cs_test_" + "y".repeat(ORPHAN_REF_MAX - 8);
  assert.equal(orphanSighting(news(ref), notStored, "evt").ref, ref);
});
