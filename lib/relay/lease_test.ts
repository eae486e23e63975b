import assert from "node:assert/strict";
import type { AppContext } from "../context.ts";
import { addDeliveryOps, getDeliveryEntry } from "../db/deliveries.ts";
import { newDelivery } from "./delivery.ts";
import { DELIVERY_LEASE_MS, LeaseKeeper } from "./lease.ts";
import type { Delivery } from "./types.ts";

/** A store whose next commit lands but reports an error, as a connection lost after the write can. */
function storeThatFailsAfterCommit(kv: Deno.Kv): Deno.Kv {
  let failNext = true;
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = async () => {
            const res = await commit();
            if (failNext) {
              failNext = false;
              throw new Error("connection reset after the write");
            }
            return res;
          };
          return op;
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("[lease] a renewal that landed but reported an error still counts: the outcome is checked against it", async () => {
  const real = await Deno.openKv(":memory:");
  try {
    const now = Date.now();
    // Leased to us with a second left: low enough that holding it renews it at once.
    const d = newDelivery({
      paymentId: "pay_lease_test",
      shopId: "shop_lease_test",
      url: "http://127.0.0.1:9/postback",
      eventType: "payment.succeeded",
      body: "{}",
      now,
      leaseUntil: now + 1_000,
    });
    const op = real.atomic();
    addDeliveryOps(op, d, { queue: false, now });
    assert.ok((await op.commit()).ok);
    const stored = (await getDeliveryEntry(real, d.id)) as Deno.KvEntry<Delivery>;

    const kv = storeThatFailsAfterCommit(real);
    const keeper = new LeaseKeeper({ kv, now: () => Date.now() } as unknown as AppContext);
    const held = keeper.hold(stored);
    const leased = await keeper.release(held);

    const after = await getDeliveryEntry(real, d.id);
    assert.ok(after.value!.leaseUntil >= now + DELIVERY_LEASE_MS, "renewed in the store");
    assert.equal(leased.versionstamp, after.versionstamp, "the outcome would check the renewed version");
    assert.equal(held.lost, false);
  } finally {
    real.close();
  }
});
