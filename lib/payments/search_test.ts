import assert from "node:assert/strict";
import { backfillPaymentEmailIndex, createPayment } from "../db/payments.ts";
import { randomBytes } from "../ids.ts";
import { createShop } from "../shops.ts";
import { parsePaymentFilter, paymentsCsv, searchPayments } from "./search.ts";
import type { Payment } from "./types.ts";
import { storedPayment } from "../../fixtures/payments.ts";

/** A small scan window, so a few dozen payments stand for the 20,000 of production. */
const WINDOW = 20;

interface Store {
  kv: Deno.Kv;
  paymentIdKey: Uint8Array<ArrayBuffer>;
  shops: string[];
}

/** A fresh store with two shops, its email index marked complete the way start-up does on an empty store. */
async function openStore(): Promise<Store> {
  const kv = await Deno.openKv(":memory:");
  const shops: string[] = [];
  for (const name of ["Shop A", "Shop B"]) {
    shops.push((await createShop(kv, { name }, { allowLocalUrls: true, now: Date.now() })).shop.id);
  }
  assert.equal((await backfillPaymentEmailIndex(kv)).done, true);
  return { kv, paymentIdKey: randomBytes(32), shops };
}

/** Stores `n` payments straight through the data layer, oldest first, one millisecond apart. */
async function seed(
  store: Store,
  n: number,
  make: (i: number) => Partial<Payment> = () => ({}),
): Promise<Payment[]> {
  const start = Date.now() - 10 * 86_400_000;
  const payments = Array.from({ length: n }, (_, i) => {
    const at = start + i;
    return storedPayment(at, {
      shopId: store.shops[i % store.shops.length],
      email: `buyer${i}@example.com`,
      ...make(i),
    });
  });
  for (let i = 0; i < payments.length; i += 64) {
    const stored = await Promise.all(payments.slice(i, i + 64).map((p) => createPayment(store.kv, p)));
    assert.ok(stored.every(Boolean));
  }
  return payments;
}

/** Reads a stream to its end, or fails after `ms` instead of hanging the test run. */
async function readAll(stream: ReadableStream<Uint8Array>, ms: number): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the stream did not finish within ${ms} ms`)), ms);
  });
  const reader = stream.getReader();
  const read = async () => {
    const decoder = new TextDecoder();
    let out = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      out += decoder.decode(r.value, { stream: true });
    }
    return out;
  };
  try {
    return await Promise.race([read(), timeout]);
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("[search] a CSV export finishes when the newest scan window has no match and includes the older one", async () => {
  const store = await openStore();
  try {
    const payments = await seed(store, 3 * WINDOW + 5, (i) => ({ currency: i === 0 ? "USD" : "EUR" }));
    const csv = await readAll(paymentsCsv(store, { currency: "USD" }, { scanLimit: WINDOW }), 5000);
    const rows = csv.trimEnd().split("\r\n");
    assert.equal(rows.length, 2, csv);
    assert.match(rows[0], /^id,shopId,/);
    assert.ok(rows[1].startsWith(`"${payments[0].id}"`));
  } finally {
    store.kv.close();
  }
});

Deno.test("[search] a buyer's email finds their oldest payment at once, across shops and within one", async () => {
  const store = await openStore();
  try {
    const payments = await seed(store, 3 * WINDOW + 5, (i) => i === 0 ? { email: "Old.Buyer@Example.com" } : {});
    const old = payments[0];
    const everywhere = await searchPayments(store, parsePaymentFilter({ email: "old.buyer@EXAMPLE.com" }), {
      limit: 50,
      scanLimit: WINDOW,
    });
    assert.deepEqual(everywhere.payments.map((p) => p.id), [old.id]);
    assert.equal(everywhere.cursor, null);
    assert.equal(everywhere.scanStoppedAt, null);

    const ownShop = await searchPayments(store, { email: "old.buyer@example.com", shopId: old.shopId }, {
      limit: 50,
      scanLimit: WINDOW,
    });
    assert.deepEqual(ownShop.payments.map((p) => p.id), [old.id]);
    const otherShop = store.shops.find((s) => s !== old.shopId)!;
    const none = await searchPayments(store, { email: "old.buyer@example.com", shopId: otherShop }, {
      limit: 50,
      scanLimit: WINDOW,
    });
    assert.deepEqual(none, { payments: [], cursor: null, scanStoppedAt: null });

    const keys: string[] = [];
    for await (const e of store.kv.list({ prefix: [] })) keys.push(JSON.stringify(e.key));
    assert.ok(!keys.some((k) => k.toLowerCase().includes("old.buyer")), "the email is never in a key in clear");
  } finally {
    store.kv.close();
  }
});

Deno.test("[search] a shop's order id finds the payment in every shop without scanning", async () => {
  const store = await openStore();
  try {
    const payments = await seed(store, 3 * WINDOW + 5, (i) => ({ shopTxId: i < 2 ? "order-1" : `o-${i}` }));
    const [inA, inB] = payments;
    const everywhere = await searchPayments(store, { shopTxId: "order-1" }, { limit: 50, scanLimit: WINDOW });
    assert.deepEqual(everywhere.payments.map((p) => p.id), [inB.id, inA.id], "both shops' payments, newest first");
    assert.equal(everywhere.cursor, null);
    const one = await searchPayments(store, { shopTxId: "order-1", shopId: inA.shopId }, { limit: 50 });
    assert.deepEqual(one.payments.map((p) => p.id), [inA.id]);
    const filtered = await searchPayments(store, { shopTxId: "order-1", status: "failed" }, { limit: 50 });
    assert.deepEqual(filtered.payments, [], "the other filters still apply");
  } finally {
    store.kv.close();
  }
});

Deno.test("[search] a payment id is read directly, and only within the shop asked for", async () => {
  const store = await openStore();
  try {
    const payments = await seed(store, 3 * WINDOW + 5);
    const old = payments[0];
    const found = await searchPayments(store, parsePaymentFilter({ id: ` ${old.id} ` }), {
      limit: 50,
      scanLimit: WINDOW,
    });
    assert.deepEqual(found.payments.map((p) => p.id), [old.id]);
    const otherShop = store.shops.find((s) => s !== old.shopId)!;
    const hidden = await searchPayments(store, { id: old.id, shopId: otherShop }, { limit: 50 });
    assert.deepEqual(hidden.payments, []);
    assert.deepEqual((await searchPayments(store, { id: "pay_nothing" }, { limit: 50 })).payments, []);
  } finally {
    store.kv.close();
  }
});

Deno.test("[search] a filter that must scan says where it stopped, and its cursor goes on from there", async () => {
  const store = await openStore();
  try {
    const payments = await seed(store, 2 * WINDOW + 5, (i) => ({ status: i === 0 ? "failed" : "pending" }));
    const first = await searchPayments(store, { status: "failed" }, { limit: 50, scanLimit: WINDOW });
    assert.deepEqual(first.payments, []);
    assert.equal(first.scanStoppedAt, payments[payments.length - WINDOW].createdAt);
    assert.ok(first.cursor);
    const second = await searchPayments(store, { status: "failed" }, {
      limit: 50,
      scanLimit: WINDOW,
      cursor: first.cursor,
    });
    assert.deepEqual(second.payments, []);
    const third = await searchPayments(store, { status: "failed" }, {
      limit: 50,
      scanLimit: WINDOW,
      cursor: second.cursor!,
    });
    assert.deepEqual(third.payments.map((p) => p.id), [payments[0].id]);
    assert.deepEqual([third.cursor, third.scanStoppedAt], [null, null], "the end of the payments is no stop");

    const full = await searchPayments(store, {}, { limit: 5, scanLimit: WINDOW });
    assert.equal(full.payments.length, 5);
    assert.equal(full.scanStoppedAt, null, "a full page is no stop");
  } finally {
    store.kv.close();
  }
});

Deno.test("[search] part of an email or of an order id matches as a prefix, scanning with the stopped-at paging", async () => {
  const store = await openStore();
  try {
    const payments = await seed(
      store,
      2 * WINDOW + 3,
      (i) =>
        i === 0
          ? { email: "Prefix.Buyer@Example.com", shopTxId: "ORD-2026-0001" }
          : i === 1
          ? { shopTxId: "ORD-2026-0002" }
          : {},
    );
    const [first, second] = payments;
    const byEmail = await searchPayments(store, parsePaymentFilter({ email: "prefix.b" }), { limit: 50 });
    assert.deepEqual(byEmail.payments.map((p) => p.id), [first.id]);

    const byOrder = await searchPayments(store, parsePaymentFilter({ shopTxId: "ORD-2026" }), { limit: 50 });
    assert.deepEqual(byOrder.payments.map((p) => p.id), [second.id, first.id], "newest first");

    // A prefix scan honours the scan budget and says where it stopped; the cursor searches on.
    let page = await searchPayments(store, { shopTxId: "ORD-2026-0001" }, { limit: 50, scanLimit: WINDOW });
    assert.deepEqual(page.payments.map((p) => p.id), [first.id], "an existing order id is a lookup");
    page = await searchPayments(store, { email: "prefix" }, { limit: 50, scanLimit: WINDOW });
    assert.deepEqual(page.payments, []);
    assert.ok(page.scanStoppedAt !== null && page.cursor);
    const seen: string[] = [];
    while (page.cursor) {
      page = await searchPayments(store, { email: "prefix" }, { limit: 50, scanLimit: WINDOW, cursor: page.cursor });
      seen.push(...page.payments.map((p) => p.id));
    }
    assert.deepEqual(seen, [first.id]);
  } finally {
    store.kv.close();
  }
});
