/**
 * Expiry, cancellation and the janitor over real HTTP with the Bansky sandbox:
 * init-payment's expiresIn, the status checks that find a payment whose
 * webhook was lost, expiry at expiresAt, the shop's cancel, late money after
 * either, and the buyer's pay link once a payment is over. Our clock is moved
 * by replacing `ctx.now`; the sweep is what the cron runs every minute.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { countScheduledJobs } from "../lib/db/jobs.ts";
import { getPayment, getPaymentEntry } from "../lib/db/payments.ts";
import { readStats, utcDay } from "../lib/db/stats.ts";
import { summarize } from "../lib/stats.ts";
import { recheckPaymentStatus } from "../lib/payments/admin.ts";
import {
  CHECK_BACKOFF_MS,
  CHECK_RETRY_MS,
  LATE_CHECK_MS,
  nextCheckAt,
  runPaymentCheck,
} from "../lib/payments/janitor.ts";
import {
  buyerSettles,
  callInit,
  paymentBody,
  type ReceivedPostback,
  SANDBOX_TOKEN,
  startShopReceiver,
  startTestApp,
  type TestApp,
  waitFor,
} from "../fixtures/app.ts";
import { operatorBrowser } from "../fixtures/browser.ts";
import { formatTime } from "../components/admin_layout.tsx";

const MINUTE = 60_000;

/** Moves our clock (not the sandbox's) `offsetMs` ahead of the real one. */
function shiftClock(app: TestApp, offsetMs: number) {
  app.server.ctx.now = () => Date.now() + offsetMs;
}

async function createPayment(app: TestApp, postbackUrl: string, extra: Record<string, unknown> = {}) {
  const init = await callInit(app, paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl, ...extra }));
  assert.equal(init.status, 201, JSON.stringify(init.body));
  const stored = (await getPayment(app.kv, init.body.id))!;
  return { id: init.body.id as string, url: init.body.url as string, ref: stored.providerRef!, stored };
}

async function readPayment(app: TestApp, id: string) {
  const res = await fetch(`${app.baseUrl}/api/v1/payments/${id}`, {
    headers: { authorization: `Bearer ${app.shop.apiKey}` },
  });
  assert.equal(res.status, 200);
  return (await res.json()).payment;
}

function cancel(app: TestApp, id: string, key = app.shop.apiKey) {
  return fetch(`${app.baseUrl}/api/v1/payments/${id}/cancel`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}` },
  }).then(async (res) => ({ status: res.status, body: await res.json() }));
}

/** The buyer's click at the sandbox, without passing through our pay link. */
async function payAtSandbox(app: TestApp, ref: string, outcome: "paid" | "declined" = "paid") {
  const res = await fetch(`${app.sandboxUrl}/payments/${ref}/complete`, {
    method: "POST",
    headers: { authorization: `Bearer ${SANDBOX_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ outcome }),
  });
  await res.body?.cancel();
  return res.status;
}

async function sandboxStatus(app: TestApp, ref: string): Promise<string> {
  const res = await fetch(`${app.sandboxUrl}/payments/${ref}`, {
    headers: { authorization: `Bearer ${SANDBOX_TOKEN}` },
  });
  return (await res.json()).status;
}

function postbacksOf(received: ReceivedPostback[], paymentId: string) {
  return received.map((r) => JSON.parse(r.body)).filter((b) => b.data.paymentId === paymentId);
}

Deno.test("[expiry] init-payment takes expiresIn (60 s to 30 days), defaults to PAYMENT_TTL_S, and the status API shows expiresAt", async () => {
  const app = await startTestApp({ env: { PAYMENT_TTL_S: "3600" } });
  const shop = startShopReceiver();
  try {
    for (const expiresIn of [59, 2_592_001, 90.5, "600"]) {
      const res = await callInit(app, paymentBody({ expiresIn }));
      assert.equal(res.status, 400, `expiresIn ${expiresIn}`);
      assert.ok(res.body.error.fields.expiresIn, `expiresIn ${expiresIn} is named`);
    }
    const before = Date.now();
    const given = await createPayment(app, shop.url, { expiresIn: 600 });
    const shown = await readPayment(app, given.id);
    assert.equal(Date.parse(shown.expiresAt) - Date.parse(shown.createdAt), 600_000);
    assert.equal(shown.late, false);
    const byDefault = await createPayment(app, shop.url);
    const dflt = await readPayment(app, byDefault.id);
    assert.equal(Date.parse(dflt.expiresAt) - Date.parse(dflt.createdAt), 3_600_000);
    assert.ok(Date.parse(dflt.createdAt) >= before - 1000);

    // The first check is scheduled with the payment: two payments, two due checks.
    assert.equal(await countScheduledJobs(app.kv, "payment_check"), 2);
    assert.equal(given.stored.checkAt, given.stored.createdAt + CHECK_BACKOFF_MS[0]);

    // A retry without expiresIn keeps the fingerprint of the original; adding expiresIn is another request.
    const body = paymentBody({ id: "keep-hash", postbackUrl: shop.url });
    assert.equal((await callInit(app, body)).status, 201);
    assert.equal((await callInit(app, body)).status, 200);
    assert.equal((await callInit(app, { ...body, expiresIn: 600 })).status, 422);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[janitor] the check schedule backs off from creation and ends at the expiry", () => {
  const created = 1_000_000;
  const expires = created + 24 * 60 * MINUTE;
  assert.equal(nextCheckAt(created, expires, created), created + 2 * MINUTE);
  assert.equal(nextCheckAt(created, expires, created + 2 * MINUTE), created + 10 * MINUTE);
  assert.equal(nextCheckAt(created, expires, created + 10 * MINUTE), created + 60 * MINUTE);
  assert.equal(nextCheckAt(created, expires, created + 60 * MINUTE), created + 6 * 60 * MINUTE);
  assert.equal(nextCheckAt(created, expires, created + 6 * 60 * MINUTE), expires);
  // A short life: the expiry comes before the first step.
  assert.equal(nextCheckAt(created, created + MINUTE, created), created + MINUTE);
});

Deno.test("[janitor] PAYMENT_CHECK_SCHEDULE sets when a pending payment is checked, first and next", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    env: { JOBS_QUEUE: "off", PAYMENT_CHECK_SCHEDULE: "30,90" },
  });
  const shop = startShopReceiver();
  try {
    const given = await createPayment(app, shop.url);
    assert.equal(given.stored.checkAt, given.stored.createdAt + 30_000);
    shiftClock(app, 31_000);
    await app.server.runner.sweep();
    const still = (await getPayment(app.kv, given.id))!;
    assert.equal(still.status, "pending");
    assert.equal(still.checkAt, still.createdAt + 90_000);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[janitor] with JOBS_QUEUE=off and the webhook dropped, the sweep finds the payment paid at the provider", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { dropWebhooks: true },
    env: { JOBS_QUEUE: "off" },
  });
  const shop = startShopReceiver();
  try {
    const paid = await createPayment(app, shop.url);
    const unpaid = await createPayment(app, shop.url);
    assert.equal(new URL(await buyerSettles(paid.url, "paid")).pathname, "/shop/success");
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(app.sandbox.webhooksAccepted, 0, "the sandbox sent no webhook");
    assert.equal((await readPayment(app, paid.id)).status, "pending");
    assert.equal(await app.server.runner.sweep(), 0, "no check is due yet");

    shiftClock(app, 2 * MINUTE + 1000);
    const statusCalls = app.sandbox.calls.status;
    await app.server.runner.sweep();
    assert.equal(app.sandbox.calls.status - statusCalls, 2, "both due payments were checked at the provider");
    const found = await readPayment(app, paid.id);
    assert.equal(found.status, "succeeded");
    assert.equal(found.late, false);
    const [postback] = await waitFor("the postback", async () => {
      await app.server.runner.sweep();
      const got = postbacksOf(shop.received, paid.id);
      return got.length ? got : undefined;
    });
    assert.equal(postback.type, "payment.succeeded");
    assert.equal(postback.data.late, false);

    // The unpaid one waits for its next step; the paid one has no check left.
    const still = (await getPayment(app.kv, unpaid.id))!;
    assert.equal(still.status, "pending");
    assert.equal(still.checkAt, still.createdAt + CHECK_BACKOFF_MS[1]);
    assert.equal((await getPayment(app.kv, paid.id))!.checkAt, null);
    assert.equal(await countScheduledJobs(app.kv, "payment_check"), 1);
    const calls = app.sandbox.calls.status;
    await app.server.runner.sweep();
    assert.equal(app.sandbox.calls.status, calls, "a check already made is not made again");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[janitor] a provider that cannot be reached is asked again in five minutes, and the payment stays pending", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  try {
    const p = await createPayment(app, shop.url);
    app.sandbox.knobs.failureRate = 1;
    const now = p.stored.createdAt + 2 * MINUTE + 1000;
    app.server.ctx.now = () => now;
    await app.server.runner.sweep();
    const after = (await getPayment(app.kv, p.id))!;
    assert.equal(after.status, "pending");
    assert.equal(after.checkAt, now + 5 * MINUTE);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[janitor] the log line of a failed check says what failed: a provider that does not know the payment is not 'unreachable'", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  const lines: string[] = [];
  const write = console.error;
  try {
    const p = await createPayment(app, shop.url);
    // The provider's reference no longer names anything there (an account whose credentials changed, say).
    const entry = await getPaymentEntry(app.kv, p.id);
    await app.kv.set(entry.key, { ...entry.value!, providerRef: "ref_unknown_to_the_provider" });
    app.server.ctx.now = () => p.stored.createdAt + 2 * MINUTE + 1000;
    console.error = (line: string) => lines.push(line);
    await app.server.runner.sweep();
    console.error = write;
    const checks = lines.filter((l) => l.includes("payment check:"));
    assert.equal(checks.length, 1, lines.join("\n"));
    assert.match(checks[0], /provider does not know this payment \(check its account\), trying again later/);
    assert.equal((await getPayment(app.kv, p.id))!.status, "pending");
  } finally {
    console.error = write;
    await shop.close();
    await app.close();
  }
});

Deno.test("[expiry] at expiresAt a pending payment expires, the provider cancels it, and its pay link says so", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  try {
    const p = await createPayment(app, shop.url, { expiresIn: 60 });
    assert.equal(p.stored.checkAt, p.stored.expiresAt, "a payment shorter than the first step is checked at expiry");
    const toProvider = await fetch(p.url, { redirect: "manual" });
    await toProvider.body?.cancel();
    assert.equal(toProvider.status, 302);

    shiftClock(app, 61_000);
    // Past expiresAt the link no longer leads to the provider, even before the janitor has run.
    const early = await fetch(p.url, { redirect: "manual" });
    assert.equal(early.status, 410);
    assert.match(await early.text(), /expired/);

    await app.server.runner.sweep();
    const expired = await readPayment(app, p.id);
    assert.equal(expired.status, "expired");
    assert.ok(expired.finalizedAt);
    assert.equal(app.sandbox.calls.cancel, 1);
    assert.equal(await sandboxStatus(app, p.ref), "cancelled");
    assert.equal(await payAtSandbox(app, p.ref), 404, "the sandbox takes no money after the cancel");

    const [postback] = await waitFor("the postback", () => {
      const got = postbacksOf(shop.received, p.id);
      return got.length ? got : undefined;
    });
    assert.equal(postback.type, "payment.expired");
    assert.equal(postback.data.status, "expired");

    const page = await fetch(p.url, { redirect: "manual" });
    assert.equal(page.status, 410);
    const html = await page.text();
    assert.match(html, /This payment has expired/);
    assert.ok(html.includes('href="http://127.0.0.1:9/shop/error?apay_payment='), "links back to the shop's errorUrl");
    assert.doesNotMatch(html, new RegExp(app.sandboxUrl), "never to the provider");
    assert.equal(await countScheduledJobs(app.kv, "payment_check"), 0);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[expiry] money the provider confirms after expiry makes the payment succeed late, and the console lists it", async () => {
  // Bansky cannot stop money already on its way: the cancel at expiry is refused and the buyer still pays.
  const app = await startTestApp({ standaloneSandbox: true, knobs: { refuseCancels: true } });
  const shop = startShopReceiver();
  try {
    const p = await createPayment(app, shop.url, { expiresIn: 60 });
    shiftClock(app, 61_000);
    await app.server.runner.sweep();
    assert.equal((await readPayment(app, p.id)).status, "expired");
    assert.equal(await sandboxStatus(app, p.ref), "pending");

    // The money comes two minutes after the expiry (our clock stays within the webhooks' 5-minute window), so the
    // two times cannot be mistaken for each other.
    shiftClock(app, 61_000 + 2 * MINUTE);
    assert.equal(await payAtSandbox(app, p.ref), 200);
    const late = await waitFor("the late success", async () => {
      const got = await readPayment(app, p.id);
      return got.status === "succeeded" ? got : undefined;
    });
    assert.equal(late.late, true);
    const postbacks = await waitFor("two postbacks", () => {
      const got = postbacksOf(shop.received, p.id);
      return got.length === 2 ? got : undefined;
    });
    assert.deepEqual(postbacks.map((b) => b.type).sort(), ["payment.expired", "payment.succeeded"]);
    const success = postbacks.find((b) => b.type === "payment.succeeded")!;
    assert.equal(success.data.late, true);
    // The late postback is signed like every other one.
    const raw = shop.received.find((r) => r.body.includes('"payment.succeeded"'))!;
    new Webhook(app.shop.webhookSecret).verify(raw.body, Object.fromEntries(raw.headers));

    const ops = await operatorBrowser(app);
    const overview = await ops.get("/admin");
    assert.equal(overview.status, 200);
    const section = overview.text.slice(overview.text.indexOf('id="late-payments"'));
    assert.ok(section.includes(p.id), "the overview lists the late payment");
    // With its shop by name, linked to the shop's page: whom to ask whether it ships.
    const shopLink = `<a href="/admin/shops/${app.shop.id}">Test shop</a>`;
    assert.ok(section.slice(0, section.indexOf("</section>")).includes(`<td data-label="Shop">${shopLink}</td>`));
    const detail = await ops.get(`/admin/payments/${p.id}`);
    assert.match(detail.text, /succeeded \(late/);
    assert.ok(detail.text.includes(`<dt>Shop</dt><dd>${shopLink}</dd>`), "the payment's page names its shop too");
    // Settled is when the money came; when it expired is its own line (finalizedAt keeps that, as the API says).
    const shownAt = (label: string) => detail.text.match(new RegExp(`<dt>${label}</dt><dd>([^<]*)</dd>`))?.[1];
    assert.equal(shownAt("Settled"), formatTime(Date.parse(late.updatedAt)));
    assert.equal(shownAt("Expired"), formatTime(Date.parse(late.finalizedAt)));
    assert.ok(Date.parse(late.updatedAt) - Date.parse(late.finalizedAt) >= 2 * MINUTE);

    // Refunded in full, it leaves the list: nothing is left to do about it.
    const refund = await fetch(`${app.baseUrl}/api/v1/payments/${p.id}/refunds`, {
      method: "POST",
      headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(refund.status, 201, await refund.text());
    await waitFor("the refund", async () => (await readPayment(app, p.id)).status === "refunded" || undefined);
    const after = await ops.get("/admin");
    assert.ok(!after.text.slice(after.text.indexOf('id="late-payments"')).includes(p.id), "a refunded one is gone");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[expiry] money that arrives after an expiry the provider could not cancel is found by a late status check when its webhook is lost", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { refuseCancels: true, dropWebhooks: true } });
  const shop = startShopReceiver();
  try {
    const p = await createPayment(app, shop.url, { expiresIn: 60 });
    // Our expiry: Bansky refuses the cancel (money on its way), the payment is expired anyway, with late checks kept.
    shiftClock(app, 61_000);
    await runPaymentCheck(app.server.ctx, p.id);
    const expired = (await getPayment(app.kv, p.id))!;
    assert.equal(expired.status, "expired");
    assert.equal(expired.checkAt, expired.finalizedAt! + LATE_CHECK_MS[0], "the first late check, 10 minutes on");
    assert.equal(await countScheduledJobs(app.kv, "payment_check"), 1);
    // The first late check finds it still on its way: the next one is an hour after the expiry.
    shiftClock(app, 61_000 + LATE_CHECK_MS[0]);
    await runPaymentCheck(app.server.ctx, p.id);
    const waiting = (await getPayment(app.kv, p.id))!;
    assert.deepEqual([waiting.status, waiting.checkAt], ["expired", expired.finalizedAt! + LATE_CHECK_MS[1]]);
    // The money arrives at Bansky; its webhook is lost (dropWebhooks stands for a provider that gave up retrying).
    assert.equal(await payAtSandbox(app, p.ref), 200);
    // Days go by; every check the janitor would run.
    for (const days of [1, 2, 7]) {
      shiftClock(app, days * 86_400_000);
      await runPaymentCheck(app.server.ctx, p.id);
    }
    const after = (await getPayment(app.kv, p.id))!;
    // "We never hide money" (expiry-and-cancellation.md): succeeded, late, and no more checks.
    assert.deepEqual({ status: after.status, late: after.late, checkAt: after.checkAt }, {
      status: "succeeded",
      late: true,
      checkAt: null,
    });
    assert.equal(await countScheduledJobs(app.kv, "payment_check"), 0);
    const postbacks = await waitFor("two postbacks", () => {
      const got = postbacksOf(shop.received, p.id);
      return got.length === 2 ? got : undefined;
    });
    const success = postbacks.find((b) => b.type === "payment.succeeded");
    assert.equal(success?.data.late, true);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[janitor] late checks of an expiry the provider could not confirm follow LATE_CHECK_MS and end: after the last, or when the provider says no money comes; one it could not be asked about is asked again", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { refuseCancels: true, dropWebhooks: true } });
  const shop = startShopReceiver();
  try {
    const expire = async () => {
      shiftClock(app, 0);
      const p = await createPayment(app, shop.url, { expiresIn: 60 });
      shiftClock(app, 61_000);
      await runPaymentCheck(app.server.ctx, p.id);
      const stored = (await getPayment(app.kv, p.id))!;
      assert.equal(stored.status, "expired");
      return { ...p, givenUpAt: stored.finalizedAt! };
    };
    // Nothing comes: one check per step, then none.
    const quiet = await expire();
    const seen: (number | null | undefined)[] = [];
    for (const step of LATE_CHECK_MS) {
      app.server.ctx.now = () => quiet.givenUpAt + step;
      await runPaymentCheck(app.server.ctx, quiet.id);
      seen.push((await getPayment(app.kv, quiet.id))!.checkAt);
    }
    assert.deepEqual(seen, [...LATE_CHECK_MS.slice(1).map((ms) => quiet.givenUpAt + ms), null]);
    assert.equal((await getPayment(app.kv, quiet.id))!.status, "expired");

    // The buyer's payment is declined at Bansky after all: no money will come, the checks end at the next one.
    const declined = await expire();
    assert.equal(await payAtSandbox(app, declined.ref, "declined"), 200);
    app.server.ctx.now = () => declined.givenUpAt + LATE_CHECK_MS[0];
    await runPaymentCheck(app.server.ctx, declined.id);
    const ended = (await getPayment(app.kv, declined.id))!;
    assert.deepEqual([ended.status, ended.checkAt], ["expired", null]);

    // Bansky cannot be reached at a late check: asked again in CHECK_RETRY_MS (the next step is further off).
    const unreachable = await expire();
    app.sandbox.knobs.failureRate = 1;
    const at = unreachable.givenUpAt + LATE_CHECK_MS[0];
    app.server.ctx.now = () => at;
    await runPaymentCheck(app.server.ctx, unreachable.id);
    assert.equal((await getPayment(app.kv, unreachable.id))!.checkAt, at + CHECK_RETRY_MS);
    app.sandbox.knobs.failureRate = 0;
    assert.equal(await countScheduledJobs(app.kv, "payment_check"), 1, "only the one still owed an answer");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[cancel] a pending payment is cancelled: postback, the sandbox refuses money, the pay link says so", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  const other = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  try {
    const p = await createPayment(app, shop.url);
    assert.equal((await cancel(other, p.id, other.shop.apiKey)).status, 404, "another shop's payment is unknown");
    const unknown = await cancel(app, "pay_AAAAAAAAAAAAAAAAAAAAAA");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, "not_found");

    const res = await cancel(app, p.id);
    assert.equal(res.status, 200);
    assert.equal(res.body.payment.status, "cancelled");
    assert.ok(res.body.payment.finalizedAt);
    assert.equal(await sandboxStatus(app, p.ref), "cancelled");
    assert.equal(await payAtSandbox(app, p.ref), 404, "the sandbox takes no money for it");
    assert.equal(await countScheduledJobs(app.kv, "payment_check"), 0, "a settled payment is not checked again");

    const [postback] = await waitFor("the postback", () => {
      const got = postbacksOf(shop.received, p.id);
      return got.length ? got : undefined;
    });
    assert.equal(postback.type, "payment.cancelled");
    assert.equal(postback.data.status, "cancelled");

    const page = await fetch(p.url, { redirect: "manual" });
    assert.equal(page.status, 410);
    const html = await page.text();
    assert.match(html, /This payment was cancelled/);
    assert.match(html, /The shop cancelled this payment, so it can no longer be paid\./);
    assert.ok(html.includes('href="http://127.0.0.1:9/shop/error?apay_payment='));

    const again = await cancel(app, p.id);
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, "payment_not_cancellable");
    assert.match(again.body.error.message, /cancelled/);
  } finally {
    await shop.close();
    await other.close();
    await app.close();
  }
});

Deno.test("[cancel] a settled payment is not cancellable, and one paid before its webhook arrived takes the provider's word", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  try {
    const settled = await createPayment(app, shop.url);
    await buyerSettles(settled.url, "paid");
    await waitFor("the webhook", async () => (await readPayment(app, settled.id)).status === "succeeded" || undefined);
    const refused = await cancel(app, settled.id);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, "payment_not_cancellable");

    // The buyer pays, the cancel reaches the provider before the webhook reaches us.
    app.sandbox.knobs.dropWebhooks = true;
    const racing = await createPayment(app, shop.url);
    assert.equal(await payAtSandbox(app, racing.ref), 200);
    const lost = await cancel(app, racing.id);
    assert.equal(lost.status, 409);
    assert.match(lost.body.error.message, /succeeded/);
    assert.equal((await readPayment(app, racing.id)).status, "succeeded");

    // A provider that cannot be reached changes nothing: the shop tries again.
    app.sandbox.knobs.failureRate = 1;
    const pending = await createPayment(app, shop.url).catch(() => null);
    assert.equal(pending, null, "init fails too while the provider is down");
    app.sandbox.knobs.failureRate = 0;
    const later = await createPayment(app, shop.url);
    app.sandbox.knobs.failureRate = 1;
    const down = await cancel(app, later.id);
    assert.equal(down.status, 502);
    assert.equal(down.body.error.code, "provider_error");
    assert.equal((await readPayment(app, later.id)).status, "pending");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[cancel] money after a cancel the provider could not honour succeeds late, also when its webhook is lost", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { refuseCancels: true } });
  const shop = startShopReceiver();
  try {
    const p = await createPayment(app, shop.url);
    const res = await cancel(app, p.id);
    assert.equal(res.status, 200);
    assert.equal(res.body.payment.status, "cancelled");
    const cancelled = (await getPayment(app.kv, p.id))!;
    assert.equal(cancelled.checkAt, cancelled.finalizedAt! + LATE_CHECK_MS[0], "late checks, as after an expiry");
    assert.equal(await payAtSandbox(app, p.ref), 200);
    const late = await waitFor("the late success", async () => {
      const got = await readPayment(app, p.id);
      return got.status === "succeeded" ? got : undefined;
    });
    assert.equal(late.late, true);
    const success = await waitFor("the late postback", () => {
      return postbacksOf(shop.received, p.id).find((b) => b.type === "payment.succeeded");
    });
    assert.equal(success.data.late, true);
    assert.equal((await getPayment(app.kv, p.id))!.checkAt, null, "found by its webhook: no more checks");

    // The same with the webhook lost: the sweep's late check finds the money.
    app.sandbox.knobs.dropWebhooks = true;
    const lost = await createPayment(app, shop.url);
    assert.equal((await cancel(app, lost.id)).status, 200);
    assert.equal(await payAtSandbox(app, lost.ref), 200);
    shiftClock(app, LATE_CHECK_MS[0] + 1_000);
    await app.server.runner.sweep();
    await app.server.runner.idle();
    const found = (await getPayment(app.kv, lost.id))!;
    assert.deepEqual([found.status, found.late, found.checkAt], ["succeeded", true, null]);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[stats] a late success counts once, as a success: it leaves the expired or cancelled count of the day it gave up", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { refuseCancels: true } });
  const shop = startShopReceiver();
  const DAY = 86_400_000;
  try {
    const expiring = await createPayment(app, shop.url, { expiresIn: 60, amount: 1500 });
    const cancelling = await createPayment(app, shop.url, { amount: 700 });
    // Given up on: one cancelled by the shop at once, the other expired at a sweep two days later.
    const created = utcDay(Date.now());
    assert.equal((await cancel(app, cancelling.id)).status, 200);
    shiftClock(app, 2 * DAY);
    const expired = utcDay(app.server.ctx.now());
    await app.server.runner.sweep();
    assert.equal((await readPayment(app, expiring.id)).status, "expired");
    const before = summarize(await readStats(app.kv, created, expired));
    assert.deepEqual([before.expired, before.cancelled, before.succeeded], [1, 1, 0]);

    // The money comes the day after; an operator's re-check finds it (the sandbox's webhooks carry its own clock's
    // time, which ours, days ahead, refuses as stale).
    shiftClock(app, 3 * DAY);
    const paid = utcDay(app.server.ctx.now());
    for (const p of [expiring, cancelling]) {
      assert.equal(await payAtSandbox(app, p.ref), 200);
      assert.equal(await recheckPaymentStatus(app.server.ctx, p.id, { actor: "test" }), "applied");
      assert.equal((await readPayment(app, p.id)).status, "succeeded");
    }

    const rows = await readStats(app.kv, created, paid);
    const all = summarize(rows);
    assert.deepEqual(
      [all.created, all.succeeded, all.expired, all.cancelled, all.successRate, all.open],
      [2, 2, 0, 0, 1, 0],
    );
    assert.deepEqual(all.volume, { EUR: 2200 });
    const onDay = (day: string) => summarize(rows.filter((r) => r.day === day));
    assert.deepEqual([onDay(created).cancelled, onDay(created).created], [0, 2]);
    assert.deepEqual([onDay(expired).expired, onDay(expired).succeeded], [0, 0]);
    assert.deepEqual([onDay(paid).succeeded, onDay(paid).volume], [2, { EUR: 2200 }]);
    // No counter went below zero on its way (KV sums wrap at 2^64: a bad withdrawal would read as a huge number).
    for (const r of rows) assert.ok(r.count >= 0 && r.amount >= 0, JSON.stringify(r));
  } finally {
    await shop.close();
    await app.close();
  }
});
