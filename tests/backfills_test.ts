/**
 * The backfills of records an earlier version stored without what this one writes with each record (lib/backfills/).
 * Records are made through the app as it runs now, then stripped of the new fields through the db layer, as an
 * earlier version left them; the backfill's progress is forgotten (a store that never ran it), then it runs, and the
 * check it scheduled runs and finds what it is for. Our clock is moved by replacing `ctx.now`.
 */
import assert from "node:assert/strict";
import { deleteBackfillState, getBackfillState } from "../lib/db/backfills.ts";
import { countScheduledJobs } from "../lib/db/jobs.ts";
import { getPayment, getPaymentEntry, reschedulePaymentCheck } from "../lib/db/payments.ts";
import { type Backfill, runBackfill } from "../lib/backfills/run.ts";
import { startBackfills } from "../lib/backfills/mod.ts";
import { LATE_CHECK_CATCH_UP_MS, lateCheckBackfill } from "../lib/payments/backfill.ts";
import { LATE_CHECK_MS, runPaymentCheck } from "../lib/payments/janitor.ts";
import type { Payment } from "../lib/payments/types.ts";
import {
  callInit,
  paymentBody,
  SANDBOX_TOKEN,
  startShopReceiver,
  startTestApp,
  type TestApp,
  waitFor,
} from "../fixtures/app.ts";

const HOUR = 60 * 60_000;
const DAY = 24 * HOUR;

function setClock(app: TestApp, at: number) {
  app.server.ctx.now = () => at;
}

async function createPayment(app: TestApp, shop: { url: string }, extra: Record<string, unknown> = {}) {
  const init = await callInit(app, paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl: shop.url, ...extra }));
  assert.equal(init.status, 201, JSON.stringify(init.body));
  const stored = (await getPayment(app.kv, init.body.id))!;
  return { id: init.body.id as string, ref: stored.providerRef! };
}

/** The buyer's click at the sandbox (money arrives there; with dropWebhooks its webhook is lost). */
async function payAtSandbox(app: TestApp, ref: string) {
  const res = await fetch(`${app.sandboxUrl}/payments/${ref}/complete`, {
    method: "POST",
    headers: { authorization: `Bearer ${SANDBOX_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ outcome: "paid" }),
  });
  await res.body?.cancel();
  assert.equal(res.status, 200);
}

/** Takes a payment's late checks away, as the version before them stored a payment it gave up on. */
async function asStoredBeforeLateChecks(app: TestApp, id: string): Promise<Payment> {
  const entry = await getPaymentEntry(app.kv, id);
  assert.ok(await reschedulePaymentCheck(app.kv, entry as Deno.KvEntry<Payment>, null));
  return (await getPayment(app.kv, id))!;
}

Deno.test("[backfill] payments given up on before late checks existed get them, and a lost webhook's late money is found", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { refuseCancels: true, dropWebhooks: true } });
  const shop = startShopReceiver();
  try {
    const start = Date.now();
    /** A payment expired by the janitor at `at` (Bansky refusing the cancel unless told otherwise). */
    const expireAt = async (at: number) => {
      setClock(app, at);
      const p = await createPayment(app, shop, { expiresIn: 60 });
      setClock(app, at + 61_000);
      await runPaymentCheck(app.server.ctx, p.id);
      const stored = (await getPayment(app.kv, p.id))!;
      assert.equal(stored.status, "expired");
      return p;
    };
    // Expired and cancelled without Bansky's word, as the earlier version stored them: no check left.
    const expired = await expireAt(start);
    const cancelled = await createPayment(app, shop);
    setClock(app, start + 61_000);
    const res = await app.server.app.request(`/api/v1/payments/${cancelled.id}/cancel`, {
      method: "POST",
      headers: { authorization: `Bearer ${app.shop.apiKey}` },
    });
    assert.equal(res.status, 200, await res.text());
    // Expired with Bansky's word that it stopped: nothing can come, no checks.
    app.sandbox.knobs.refuseCancels = false;
    const confirmed = await expireAt(start);
    app.sandbox.knobs.refuseCancels = true;
    // Given up more than the last late check ago: past its window.
    const old = await expireAt(start - 8 * DAY);
    // Given up on by this version meanwhile: it has its own checks, which stay as they are.
    const own = await expireAt(start);
    const ownCheckAt = (await getPayment(app.kv, own.id))!.checkAt;
    assert.equal(typeof ownCheckAt, "number");
    for (const p of [expired, cancelled, confirmed, old]) await asStoredBeforeLateChecks(app, p.id);
    assert.equal(await countScheduledJobs(app.kv, "payment_check"), 1, "only the payment given up on by this version");

    // The store as the earlier version left it; two processes start and run the backfill at once, two hours on.
    await deleteBackfillState(app.kv, "payment_late_checks");
    const at = start + 2 * HOUR;
    setClock(app, at);
    const runs = await Promise.all([
      runBackfill(app.server.ctx, lateCheckBackfill, { batchSize: 2 }),
      runBackfill(app.server.ctx, lateCheckBackfill, { batchSize: 2 }),
    ]);
    assert.deepEqual(runs.map((r) => r.done), [true, true]);
    assert.equal(runs[0].written + runs[1].written, 2, "each payment owed checks gets them once");
    const state = (await getBackfillState(app.kv, "payment_late_checks")).value!;
    assert.deepEqual([state.done, state.cut], [true, at]);
    for (const p of [expired, cancelled]) {
      // The 10-minute and 1-hour steps passed unchecked: one catch-up check within the hour, before the 6-hour step.
      const checkAt = (await getPayment(app.kv, p.id))!.checkAt!;
      assert.ok(checkAt > at && checkAt <= at + LATE_CHECK_CATCH_UP_MS, `${p.id}: ${checkAt - at}`);
    }
    assert.equal((await getPayment(app.kv, confirmed.id))!.checkAt, null, "the provider confirmed: no checks");
    assert.equal((await getPayment(app.kv, old.id))!.checkAt, null, "past the last late check: no checks");
    assert.equal((await getPayment(app.kv, own.id))!.checkAt, ownCheckAt, "this version's own checks unchanged");

    // Idempotent: once done, a run reads its progress only; forgotten, a run from scratch finds nothing to add.
    const before = await Promise.all([expired, cancelled].map((p) => getPaymentEntry(app.kv, p.id)));
    assert.deepEqual(await runBackfill(app.server.ctx, lateCheckBackfill), {
      name: "payment_late_checks",
      done: true,
      written: 0,
    });
    await deleteBackfillState(app.kv, "payment_late_checks");
    assert.equal((await runBackfill(app.server.ctx, lateCheckBackfill)).written, 0);
    const after = await Promise.all([expired, cancelled].map((p) => getPaymentEntry(app.kv, p.id)));
    assert.deepEqual(after.map((e) => e.versionstamp), before.map((e) => e.versionstamp));

    // The expired payment's money arrives at Bansky, its webhook lost: the catch-up check finds it.
    await payAtSandbox(app, expired.ref);
    setClock(app, at + LATE_CHECK_CATCH_UP_MS + 1_000);
    await app.server.runner.sweep();
    await app.server.runner.idle();
    const found = (await getPayment(app.kv, expired.id))!;
    assert.deepEqual([found.status, found.late, found.checkAt], ["succeeded", true, null]);
    // The cancelled one's money is still on its way: its checks go on at the schedule's own next step.
    const waiting = (await getPayment(app.kv, cancelled.id))!;
    assert.deepEqual([waiting.status, waiting.checkAt], ["cancelled", waiting.finalizedAt! + LATE_CHECK_MS[2]]);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[backfill] a backfill that fails is tried again in the same process after a pause, not left to the next start", async () => {
  const app = await startTestApp();
  try {
    await deleteBackfillState(app.kv, lateCheckBackfill.name);
    let failures = 0;
    // The store refuses its first two batches (locked for a moment, say), then takes them.
    const flaky: Backfill = {
      ...lateCheckBackfill,
      step(ctx, state, batchSize) {
        if (failures < 2) {
          failures++;
          return Promise.reject(new Error("database is locked"));
        }
        return lateCheckBackfill.step(ctx, state, batchSize);
      },
    };
    const running = await startBackfills(app.server.ctx, { runs: [flaky], retry: { firstMs: 20, longestMs: 40 } });
    try {
      await waitFor(
        "the backfill done",
        async () => (await getBackfillState(app.kv, flaky.name)).value?.done || undefined,
      );
      assert.equal(failures, 2);
    } finally {
      await running.stop();
    }
  } finally {
    await app.close();
  }
});

Deno.test("[backfill] a stop does not wait out the pause before a failed backfill's next try", async () => {
  const app = await startTestApp();
  try {
    await deleteBackfillState(app.kv, lateCheckBackfill.name);
    const failing: Backfill = { ...lateCheckBackfill, step: () => Promise.reject(new Error("database is locked")) };
    const running = await startBackfills(app.server.ctx, {
      runs: [failing],
      retry: { firstMs: 60_000, longestMs: 60_000 },
    });
    const asked = Date.now();
    await running.stop();
    assert.ok(Date.now() - asked < 1_000);
  } finally {
    await app.close();
  }
});
