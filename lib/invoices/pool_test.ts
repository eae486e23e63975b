import assert from "node:assert/strict";
import type { AppContext } from "../context.ts";
import type { ChainClient } from "./chain.ts";
import { pickAddress } from "./pool.ts";
import type { PoolAddress } from "./types.ts";

/** Just what picking needs of an app context: the store, a clock and an address service handing out new ones. */
function pickContext(kv: Deno.Kv): AppContext {
  let n = 0;
  const chain = {
    createAddresses: (_network: string, _shop: string, _url: string, count: number) =>
      Promise.resolve(Array.from({ length: count }, () => `new${++n}`)),
  } as unknown as ChainClient;
  return { kv, now: () => Date.now(), chain } as unknown as AppContext;
}

Deno.test("[pool] a pick whose listed free addresses are all being taken here gets a new address, not a refusal", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const ctx = pickContext(kv);
    const free: PoolAddress = {
      address: "old1",
      network: "bitcoin",
      shopId: "shop_a",
      createdAt: 0,
      heldBy: null,
      lastInvoiceId: null,
      lastTakenAt: null,
      previousInvoiceId: null,
      uses: 0,
    };
    await kv.set(["invoice_addresses_free", "shop_a", "bitcoin", "old1"], free);
    const opts = { now: Date.now(), notifyUrl: "http://127.0.0.1/notify" };
    // The first pick takes the free address and its write is still in flight (never committed here).
    const first = await pickAddress(ctx, "shop_a", "bitcoin", opts);
    assert.equal(first.pick.kind, "free");
    assert.equal(first.address, "old1");
    const second = await pickAddress(ctx, "shop_a", "bitcoin", opts);
    assert.equal(second.pick.kind, "new");
    assert.notEqual(second.address, "old1");
    // The first write failed for a reason of its own: the free address is picked again.
    first.done(true);
    const third = await pickAddress(ctx, "shop_a", "bitcoin", opts);
    assert.equal(third.address, "old1");
  } finally {
    kv.close();
  }
});
