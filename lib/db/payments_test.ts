import assert from "node:assert/strict";
import { searchPayments, startEmailIndexBackfill } from "../payments/search.ts";
import type { Payment } from "../payments/types.ts";
import { storedPayment } from "../../fixtures/payments.ts";
import {
  backfillPaymentEmailIndex,
  commitPaymentMove,
  createPayment,
  getPaymentEntry,
  isPaymentEmailIndexReady,
  iteratePaymentIds,
  listPaymentEvents,
  markBuyerRedirected,
  paymentEmailHash,
  reschedulePaymentCheck,
} from "./payments.ts";
import { openKv } from "./kv.ts";
import { listActivity } from "./activity.ts";

function payment(i: number, at: number): Payment {
  return storedPayment(at, { shopId: "shop_a", email: i === 0 ? "First.Buyer@example.com" : `buyer${i}@example.com` });
}

/** A store as an older version left it: payments without email index keys, no backfill progress. */
async function storeFromBeforeTheEmailIndex(n: number): Promise<{ kv: Deno.Kv; payments: Payment[] }> {
  const kv = await Deno.openKv(":memory:");
  const start = Date.now() - 86_400_000;
  const payments = Array.from({ length: n }, (_, i) => payment(i, start + i));
  // One at a time: each payment writes its own listing keys, as every payment did then.
  for (const p of payments) await createPayment(kv, p);
  await dropEmailIndex(kv);
  return { kv, payments };
}

/** Deletes every email index key, as a store from before the index had none. */
async function dropEmailIndex(kv: Deno.Kv) {
  const op = kv.atomic();
  for await (const e of kv.list({ prefix: ["payments_by_email"] })) op.delete(e.key);
  assert.ok((await op.commit()).ok);
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

/** Every payment a listing names, in the order it names them. */
async function listed(kv: Deno.Kv, opts: Parameters<typeof iteratePaymentIds>[1] = {}): Promise<string[]> {
  const ids: string[] = [];
  for await (const p of iteratePaymentIds(kv, opts)) ids.push(p.id);
  return ids;
}

async function keysUnder(kv: Deno.Kv, prefix: Deno.KvKey): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix })) n++;
  return n;
}

const newestFirst = (ps: Payment[]) => ps.toSorted((a, b) => (a.seq < b.seq ? 1 : -1)).map((p) => p.id);

Deno.test("[payments-db] payments committed together share listing keys, and every listing reads back each payment once, newest first", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const t = Date.now() - 60_000;
    const make = (i: number) =>
      storedPayment(t + i, {
        shopId: i % 3 ? "shop_a" : "shop_b",
        email: i % 2 ? "odd@example.com" : "even@example.com",
      });
    // Alone (each its own keys, as before groups), then 40 at once (group commits), then alone again.
    const early = [make(0), make(1), make(2)];
    for (const p of early) await createPayment(kv, p);
    const burst = Array.from({ length: 40 }, (_, i) => make(3 + i));
    await Promise.all(burst.map((p) => createPayment(kv, p)));
    const late = [make(43), make(44)];
    for (const p of late) await createPayment(kv, p);
    const all = [...early, ...burst, ...late];

    assert.ok(await keysUnder(kv, ["payments_by_time"]) < 20, "the burst's payments share keys");
    assert.deepEqual(await listed(kv), newestFirst(all));
    assert.deepEqual(await listed(kv, { shopId: "shop_b" }), newestFirst(all.filter((p) => p.shopId === "shop_b")));
    const odd = paymentEmailHash("odd@example.com");
    assert.deepEqual(await listed(kv, { emailHash: odd }), newestFirst(all.filter((p) => p.email.startsWith("odd"))));

    // Bounds: from (inclusive) and before (exclusive) a seq, also inside a shared key.
    const order = newestFirst(all);
    const seqOf = new Map(all.map((p) => [p.id, p.seq]));
    const bounded = await listed(kv, { startSeq: seqOf.get(order[30])!, endSeq: seqOf.get(order[10])! });
    assert.deepEqual(bounded, order.slice(11, 31));

    // Paging through the search visits every payment once, in order.
    const paged: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await searchPayments(ctx(kv), {}, { limit: 7, cursor });
      paged.push(...page.payments.map((p) => p.id));
      cursor = page.cursor ?? undefined;
    } while (cursor);
    assert.deepEqual(paged, order);
  } finally {
    kv.close();
  }
});

Deno.test("[payments-db] a new payment is stored once: its activity entry has the created event, not a copy of it", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const t = Date.now() - 60_000;
    const alone = storedPayment(t, { shopId: "shop_a" });
    await createPayment(kv, alone);
    const together = Array.from({ length: 5 }, (_, i) => storedPayment(t + 1 + i, { shopId: "shop_a" }));
    await Promise.all(together.map((p) => createPayment(kv, p)));
    const entries = await listActivity(kv, { limit: 50 });
    assert.deepEqual(
      entries.map((e) => "paymentId" in e.ref && e.ref.paymentId),
      [alone, ...together].map((p) => p.id),
    );
    for (const { ref } of entries) {
      assert.equal(ref.kind, "event");
      assert.ok(ref.kind === "event" && ref.event?.type === "created" && !("payment" in ref), "the event only");
    }
  } finally {
    kv.close();
  }
});

Deno.test("[payments-db] listings written by two processes at once read back merged in order", async () => {
  const dir = await Deno.makeTempDir();
  // As the app opens its store: writes retry when the other process holds the file's lock.
  const [one, two] = [await openKv(`${dir}/kv.sqlite3`), await openKv(`${dir}/kv.sqlite3`)];
  try {
    // Each handle has its own group committer, as each process does: their shared keys overlap in time.
    const t = Date.now() - 60_000;
    const payments = Array.from({ length: 60 }, (_, i) => storedPayment(t + i));
    await Promise.all(payments.map((p, i) => createPayment(i % 2 ? one : two, p)));
    assert.deepEqual(await listed(one), newestFirst(payments));
    assert.deepEqual(await listed(two, { shopId: "shop_test" }), newestFirst(payments));
  } finally {
    one.close();
    two.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[payments-db] a shared listing key holds at most 1 s of payments, and a bound finds older ones in a later key", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const t = Date.now() - 600_000;
    // One group: two payments 0.8 s apart share a key (named by the newer); one 2 s later gets a key of its own.
    const [first, second, third] = [storedPayment(t), storedPayment(t + 800), storedPayment(t + 2_800)];
    const anchor = storedPayment(t - 5_000);
    // The anchor commits alone; the other three wait for it and go as one group.
    await Promise.all([anchor, first, second, third].map((p) => createPayment(kv, p)));
    assert.equal(await keysUnder(kv, ["payments_by_time"]), 3);
    assert.deepEqual(await listed(kv), [third.id, second.id, first.id, anchor.id]);
    // Before a seq 0.1 s after the first payment: the key named 0.8 s later still has to be read for it.
    const justAfterFirst = storedPayment(t + 100).seq;
    assert.deepEqual(await listed(kv, { endSeq: justAfterFirst }), [first.id, anchor.id]);
    assert.deepEqual(await listed(kv, { startSeq: second.seq }), [third.id, second.id]);
    // A cursor that is not a ULID (from a URL) bounds the listing like any string, without skipping anything.
    assert.deepEqual(await listed(kv, { endSeq: "zzz" }), [third.id, second.id, first.id, anchor.id]);
  } finally {
    kv.close();
  }
});

Deno.test("[payments-db] the email backfill over a store with shared listing keys indexes only the older payments", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const t = Date.now() - 86_400_000;
    // Older payments, one at a time, whose email entries an older version never wrote.
    const older = Array.from({ length: 5 }, (_, i) => payment(i + 1, t + i));
    for (const p of older) await createPayment(kv, p);
    await dropEmailIndex(kv);
    // Then a burst under this version: shared listing keys, email entries included.
    const burst = Array.from({ length: 20 }, (_, i) => payment(i + 10, t + 1_000 + i));
    await Promise.all(burst.map((p) => createPayment(kv, p)));

    // The burst's first payment commits alone, with keys of its own: the backfill rewrites its email key unchanged.
    assert.deepEqual(await backfillPaymentEmailIndex(kv, { batchSize: 4 }), { indexed: older.length + 1, done: true });
    for (const p of [...older, ...burst]) {
      assert.deepEqual(await listed(kv, { emailHash: paymentEmailHash(p.email) }), [p.id], p.email);
    }
  } finally {
    kv.close();
  }
});

Deno.test("[payments-db] a payment already stored fails alone in its group; the rest commit together, listed once each", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const t = Date.now() - 60_000;
    const taken = storedPayment(t, { shopId: "shop_a" });
    assert.equal(await createPayment(kv, taken), true);
    // The first write goes alone and holds the store; the next three queue up behind it and go as one group.
    const first = createPayment(kv, storedPayment(t + 1, { shopId: "shop_a" }));
    const rest = [
      storedPayment(t + 2, { shopId: "shop_a" }),
      { ...taken, seq: "later" },
      storedPayment(t + 3, { shopId: "shop_a" }),
    ];
    const results = await Promise.all(rest.map((p) => createPayment(kv, p)));
    assert.equal(await first, true);
    assert.deepEqual(results, [true, false, true]);
    const stamps = await Promise.all(
      [rest[0], rest[2]].map(async (p) => (await getPaymentEntry(kv, p.id)).versionstamp),
    );
    assert.equal(stamps[0], stamps[1], "the two new payments shared one commit");
    const ids = await listed(kv, { shopId: "shop_a" });
    assert.equal(ids.length, 4, "the refused write left nothing in the listing");
    assert.equal(new Set(ids).size, 4);
    assert.equal((await getPaymentEntry(kv, taken.id)).value?.seq, taken.seq, "the stored payment is unchanged");
  } finally {
    kv.close();
  }
});

Deno.test("[payments-db] a move from a stale read fails alone in its group; the other moves commit together", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const t = Date.now() - 60_000;
    const payments = [0, 1, 2, 3].map((i) => storedPayment(t + i, { shopId: "shop_a" }));
    for (const p of payments) assert.equal(await createPayment(kv, p), true);
    const entries = await Promise.all(payments.map((p) => getPaymentEntry(kv, p.id) as Promise<Deno.KvEntry<Payment>>));
    const moveTo = (entry: Deno.KvEntry<Payment>, status: Payment["status"]) =>
      commitPaymentMove(kv, entry, { ...entry.value, status }, {
        events: [{ type: "status_changed", at: t + 10, data: { to: status } }],
        jobs: { queue: false, now: t + 10 },
      });
    // Another process cancels payment 2 first, so the entry read above is stale.
    assert.ok(await moveTo(entries[2], "cancelled"));
    // Queued in the same tick, the four moves go to the store as one group, which the stale one fails.
    const first = moveTo(entries[0], "succeeded");
    const rest = await Promise.all([1, 2, 3].map((i) => moveTo(entries[i], "succeeded")));
    assert.ok(await first);
    assert.equal(rest[1], null, "the move from the stale read is refused");
    assert.ok(rest[0] && rest[0] === rest[2], "the other two shared one commit");
    assert.equal((await getPaymentEntry(kv, payments[2].id)).value?.status, "cancelled");
    const events = await listPaymentEvents(kv, (await getPaymentEntry(kv, payments[2].id)).value!);
    assert.deepEqual(
      events.map((e) => e.data.to ?? e.type),
      ["created", "cancelled"],
      "the refused move added no event",
    );
    for (const i of [1, 3]) assert.equal((await getPaymentEntry(kv, payments[i].id)).value?.status, "succeeded");
  } finally {
    kv.close();
  }
});

Deno.test("[payments-db] buyers' first visits share a commit when one visit's read is stale; that one is recorded after", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const now = Date.now();
    const payments = [0, 1, 2, 3].map((i) => payment(i, now - 60_000 + i));
    for (const p of payments) await createPayment(kv, p);
    const reads = await Promise.all(payments.map((p) => getPaymentEntry(kv, p.id) as Promise<Deno.KvEntry<Payment>>));
    // Payment 2's next status check moves meanwhile: its read is stale.
    assert.ok(await reschedulePaymentCheck(kv, reads[2], now + 60_000));
    // The first visit goes alone and holds the store; the next three queue up behind it and go as one group.
    const first = markBuyerRedirected(kv, reads[0], now);
    const rest = await Promise.all([1, 2, 3].map((i) => markBuyerRedirected(kv, reads[i], now)));
    assert.equal(await first, true);
    assert.deepEqual(rest, [true, true, true], "the stale one is recorded from what is stored now");
    const stored = await Promise.all(payments.map((p) => getPaymentEntry(kv, p.id)));
    assert.ok(stored.every((e) => e.value?.firstRedirectAt === now));
    assert.equal(stored[1].versionstamp, stored[3].versionstamp, "the two fresh visits shared one commit");
    assert.notEqual(stored[2].versionstamp, stored[1].versionstamp);
  } finally {
    kv.close();
  }
});
