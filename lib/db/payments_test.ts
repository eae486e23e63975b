import assert from "node:assert/strict";
import { searchPayments, startEmailIndexBackfill } from "../payments/search.ts";
import type { Payment } from "../payments/types.ts";
import { storedPayment } from "../../fixtures/payments.ts";
import {
  backfillPaymentEmailIndex,
  createPayment,
  getPaymentEntry,
  isPaymentEmailIndexReady,
  markBuyerRedirected,
  reschedulePaymentCheck,
} from "./payments.ts";

function payment(i: number, at: number): Payment {
  return storedPayment(at, { shopId: "shop_a", email: i === 0 ? "First.Buyer@example.com" : `buyer${i}@example.com` });
}

/** A store as an older version left it: payments without email index keys, no backfill progress. */
async function storeFromBeforeTheEmailIndex(n: number): Promise<{ kv: Deno.Kv; payments: Payment[] }> {
  const kv = await Deno.openKv(":memory:");
  const start = Date.now() - 86_400_000;
  const payments = Array.from({ length: n }, (_, i) => payment(i, start + i));
  await Promise.all(payments.map((p) => createPayment(kv, p)));
  const op = kv.atomic();
  for await (const e of kv.list({ prefix: ["payments_by_email"] })) op.delete(e.key);
  assert.ok((await op.commit()).ok);
  return { kv, payments };
}

const ctx = (kv: Deno.Kv) => ({ kv, paymentIdKey: new Uint8Array(32) });

Deno.test("[payments-db] the email index backfill adds older payments in resumable batches, then costs one read", async () => {
  const { kv, payments } = await storeFromBeforeTheEmailIndex(45);
  try {
    const filter = { email: "first.buyer@example.com" };
    assert.equal(await isPaymentEmailIndexReady(kv), false);
    const scanning = await searchPayments(ctx(kv), filter, { limit: 50, scanLimit: 10 });
    assert.deepEqual(scanning.payments, [], "until the backfill is done, an email search scans and says so");
    assert.ok(scanning.scanStoppedAt);

    // Interrupted after two batches (a restart), then resumed where it stopped.
    assert.deepEqual(await backfillPaymentEmailIndex(kv, { batchSize: 10, maxBatches: 2 }), {
      indexed: 20,
      done: false,
    });
    assert.equal(await isPaymentEmailIndexReady(kv), false);
    assert.deepEqual(await backfillPaymentEmailIndex(kv, { batchSize: 10 }), { indexed: 25, done: true });
    assert.equal(await isPaymentEmailIndexReady(kv), true);
    assert.deepEqual(await backfillPaymentEmailIndex(kv, { batchSize: 10 }), { indexed: 0, done: true });

    let keys = 0;
    for await (const _ of kv.list({ prefix: ["payments_by_email"] })) keys++;
    assert.equal(keys, payments.length, "one index key per payment");
    const found = await searchPayments(ctx(kv), filter, { limit: 50, scanLimit: 10 });
    assert.deepEqual(found.payments.map((p) => p.id), [payments[0].id]);
    assert.equal(found.scanStoppedAt, null);
  } finally {
    kv.close();
  }
});

Deno.test("[payments-db] two backfills at once index every payment once between them", async () => {
  const { kv, payments } = await storeFromBeforeTheEmailIndex(30);
  try {
    const [a, b] = await Promise.all([
      backfillPaymentEmailIndex(kv, { batchSize: 4 }),
      backfillPaymentEmailIndex(kv, { batchSize: 4 }),
    ]);
    assert.ok(a.done && b.done);
    assert.equal(a.indexed + b.indexed, payments.length, "a runner that lost a race re-reads the progress");
  } finally {
    kv.close();
  }
});

Deno.test("[payments-db] start-up finishes a small backfill before it returns and a large one in the background", async () => {
  const small = await storeFromBeforeTheEmailIndex(30);
  const large = await storeFromBeforeTheEmailIndex(450);
  try {
    await (await startEmailIndexBackfill(small.kv)).stop();
    assert.equal(await isPaymentEmailIndexReady(small.kv), true);

    const running = await startEmailIndexBackfill(large.kv);
    assert.equal(await isPaymentEmailIndexReady(large.kv), false, "the first batch only");
    for (let i = 0; i < 100 && !(await isPaymentEmailIndexReady(large.kv)); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await running.stop();
    assert.equal(await isPaymentEmailIndexReady(large.kv), true);
  } finally {
    small.kv.close();
    large.kv.close();
  }
});

Deno.test("[payments-db] a buyer's first visit is recorded even when the payment changed since the redirect read it", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const p = payment(1, Date.now());
    await createPayment(kv, p);
    const read = (await getPaymentEntry(kv, p.id)) as Deno.KvEntry<Payment>;
    // Meanwhile its next status check moves (the janitor), a new version of the record.
    const movedTo = Date.now() + 60_000;
    assert.ok(await reschedulePaymentCheck(kv, read, movedTo));
    assert.equal(await markBuyerRedirected(kv, read, Date.now()), true);
    const stored = (await getPaymentEntry(kv, p.id)).value!;
    assert.ok(stored.firstRedirectAt);
    assert.equal(stored.checkAt, movedTo, "the move is kept");
  } finally {
    kv.close();
  }
});
