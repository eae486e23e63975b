import assert from "node:assert/strict";
import { storedInvoice } from "../../fixtures/invoices.ts";
import type { PoolAddress } from "../invoices/types.ts";
import { getAddressOwner, getInvoiceEntry, insertInvoice } from "./invoices.ts";

/** A new invoice of `shopId` at a new address, as createInvoice hands it to the store. */
function newInvoiceAt(shopId: string, address: string, now: number) {
  const invoice = storedInvoice(now, { shopId, address });
  const record: PoolAddress = {
    address,
    network: "tron",
    shopId,
    createdAt: now,
    heldBy: null,
    lastInvoiceId: null,
    lastTakenAt: null,
    previousInvoiceId: null,
    uses: 0,
  };
  return { invoice, pick: { kind: "new" as const, address: record }, jobs: { queue: false, now } };
}

Deno.test("[invoices-db] an invoice at an address another pool holds fails alone in its group; the rest commit together", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const now = Date.now();
    // Another shop's pool has TTaken already (a service that handed an address out twice).
    assert.equal(await insertInvoice(kv, newInvoiceAt("shop_other", "TTaken", now)), true);
    // Queued in the same tick, the four inserts go to the store as one group, which the taken address fails.
    const first = insertInvoice(kv, newInvoiceAt("shop_a", "TFirst", now));
    const writes = [
      newInvoiceAt("shop_a", "TOne", now),
      newInvoiceAt("shop_a", "TTaken", now),
      newInvoiceAt("shop_a", "TTwo", now),
    ];
    const results = await Promise.all(writes.map((w) => insertInvoice(kv, w)));
    assert.equal(await first, true);
    assert.deepEqual(results, [true, false, true]);
    const [one, refused, two] = await Promise.all(writes.map((w) => getInvoiceEntry(kv, w.invoice.id)));
    assert.equal(refused.value, null, "the invoice at the taken address is not stored");
    assert.ok(one.versionstamp && one.versionstamp === two.versionstamp, "the other two shared one commit");
    assert.equal(await getAddressOwner(kv, "tron", "TTaken"), "shop_other");
  } finally {
    kv.close();
  }
});
