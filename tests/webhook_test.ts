import assert from "node:assert/strict";
import { signBanskyWebhook } from "../lib/providers/bansky_wire.ts";
import { describePayment } from "../lib/payments/admin.ts";
import { getPayment } from "../lib/db/payments.ts";
import { paymentIdOfRequestId } from "../lib/providers/request_id.ts";
import { getPaidOrphan, type OrphanSighting, recordPaidOrphanSighting } from "../lib/db/paid_orphans.ts";
import { markOrphanHandled } from "../lib/payments/orphans.ts";
import { searchAudit } from "../lib/db/audit.ts";
import {
  buyerSettles,
  callInit,
  capturingLog,
  paymentBody,
  SANDBOX_SECRET,
  SANDBOX_TOKEN,
  scrapeSample,
  sleep,
  startShopReceiver,
  startTestApp,
  type TestApp,
  waitFor,
} from "../fixtures/app.ts";

async function createPending(app: TestApp, postbackUrl: string) {
  const init = await callInit(app, paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl }));
  const payment = (await describePayment(app.server.ctx, init.body.id)).payment;
  return { id: init.body.id as string, ref: payment.providerRef!, payUrl: init.body.url as string };
}

async function sendWebhook(
  app: TestApp,
  body: Record<string, unknown>,
  opts: { secret?: string; timestamp?: number; tamper?: (s: string) => string } = {},
) {
  const text = JSON.stringify(body);
  const ts = opts.timestamp ?? Math.floor(Date.now() / 1000);
  const signature = signBanskyWebhook(opts.secret ?? SANDBOX_SECRET, ts, text);
  const res = await fetch(`${app.baseUrl}/api/payment-verify`, {
    method: "POST",
    headers: { "content-type": "application/json", "bansky-signature": signature },
    body: opts.tamper ? opts.tamper(text) : text,
  });
  return { status: res.status, body: await res.json() };
}

const METRICS_TOKEN = "metrics-token-for-tests-0123456789";

/** Refused news of money on a payment no stored payment names, as /metrics counts them for the default account. */
const paidOrphans = (app: TestApp) =>
  scrapeSample(app, METRICS_TOKEN, "aimbrellapay_paid_orphan_webhooks_total", {
    provider: "bansky",
    account: "default",
  });

/** Paid orphans no operator has marked handled, as /metrics counts them from the store for the default account. */
const unhandledOrphans = (app: TestApp) =>
  scrapeSample(app, METRICS_TOKEN, "aimbrellapay_paid_orphans_unhandled", { provider: "bansky", account: "default" });

/** A payment id of our shape that no test stores. */
const UNSTORED_ID = "pay_AAAAAAAAAAAAAAAAAAAAAA";

async function settleAtProvider(app: TestApp, ref: string, outcome: "paid" | "declined") {
  // Settle without the sandbox's own webhook racing the test: pause its webhooks far into the future.
  app.sandbox.knobs.webhookDelayMs = 60_000;
  const res = await fetch(`${app.sandboxUrl}/payments/${ref}/complete`, {
    method: "POST",
    headers: { authorization: `Bearer ${SANDBOX_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ outcome }),
  });
  await res.body?.cancel();
}

Deno.test("[webhook] forged, tampered and out-of-window webhooks are rejected and change nothing", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  try {
    const p = await createPending(app, shop.url);
    await settleAtProvider(app, p.ref, "paid");
    const claim = { eventId: "evt_1", id: p.id, ref: p.ref, status: "paid" };
    const forged = await sendWebhook(app, claim, { secret: "not-the-secret" });
    assert.equal(forged.status, 401);
    assert.equal(forged.body.error.code, "invalid_webhook");
    const tampered = await sendWebhook(app, claim, { tamper: (s) => s.replace('"paid"', '"paid" ') });
    assert.equal(tampered.status, 401);
    const old = await sendWebhook(app, claim, { timestamp: Math.floor(Date.now() / 1000) - 301 });
    assert.equal(old.status, 401);
    assert.match(old.body.error.message, /window/);
    const future = await sendWebhook(app, claim, { timestamp: Math.floor(Date.now() / 1000) + 301 });
    assert.equal(future.status, 401);
    const unsigned = await fetch(`${app.baseUrl}/api/payment-verify`, { method: "POST", body: JSON.stringify(claim) });
    assert.equal(unsigned.status, 401);
    await unsigned.body?.cancel();

    const { payment } = await describePayment(app.server.ctx, p.id);
    assert.equal(payment.status, "pending");
    assert.equal(app.sandbox.calls.status, 0, "nothing unverified reached the provider");
    assert.equal(shop.received.length, 0);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[webhook] a signed webhook is only a hint: the provider's status decides", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  try {
    const p = await createPending(app, shop.url);
    // Bansky's key signs this, but the payment is not paid at Bansky.
    const res = await sendWebhook(app, { eventId: "evt_lie", id: p.id, ref: p.ref, status: "paid" });
    assert.equal(res.status, 409);
    assert.equal(res.body.error.code, "status_not_confirmed");
    assert.equal((await describePayment(app.server.ctx, p.id)).payment.status, "pending");
    assert.equal(app.sandbox.calls.status, 1);
    assert.equal(shop.received.length, 0);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[webhook] a replayed webhook is ignored and a wrong ref is refused", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  try {
    const p = await createPending(app, shop.url);
    await settleAtProvider(app, p.ref, "paid");
    const event = { eventId: "evt_once", id: p.id, ref: p.ref, status: "paid" };
    assert.equal((await sendWebhook(app, event)).body.outcome, "applied");
    assert.equal((await sendWebhook(app, event)).body.outcome, "duplicate");
    assert.equal((await sendWebhook(app, { ...event, eventId: "evt_other" })).body.outcome, "unchanged");
    const wrongRef = await sendWebhook(app, { ...event, eventId: "evt_ref", ref: "bsk_someone_else" });
    assert.equal(wrongRef.status, 400);
    const unknown = await sendWebhook(app, { ...event, eventId: "evt_unknown", id: UNSTORED_ID });
    assert.equal(unknown.status, 404);
    await waitFor("the postback", () => shop.received[0]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(shop.received.length, 1, "one status change, one postback");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[webhook] duplicate and out-of-order webhooks from the provider produce one postback and no step back", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { duplicateWebhooks: true, outOfOrderWebhooks: true },
  });
  const shop = startShopReceiver();
  try {
    const p = await createPending(app, shop.url);
    await buyerSettles(p.payUrl, "paid");
    await waitFor("all three webhooks accepted", () => (app.sandbox.webhooksAccepted >= 3 ? true : undefined));
    const { payment, deliveries } = await describePayment(app.server.ctx, p.id);
    assert.equal(payment.status, "succeeded");
    assert.equal(deliveries.length, 1);
    await waitFor("the postback", () => shop.received[0]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(shop.received.length, 1);
    assert.equal(JSON.parse(shop.received[0].body).type, "payment.succeeded");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[webhook] the buyer's redirect alone never marks a payment paid", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { webhookDelayMs: 60_000 } });
  try {
    const p = await createPending(app, "http://127.0.0.1:9/pb");
    const success = await fetch(`${app.baseUrl}/integration/success?id=${p.id}`, { redirect: "manual" });
    await success.body?.cancel();
    assert.equal(success.status, 302);
    assert.match(success.headers.get("location")!, /^http:\/\/127\.0\.0\.1:9\/shop\/success\?apay_payment=pay_/);
    assert.equal((await describePayment(app.server.ctx, p.id)).payment.status, "pending");
    // The redirect target comes from what was stored, never from the query string.
    const sneaky = await fetch(`${app.baseUrl}/integration/success?id=${p.id}&url=https://evil.example`, {
      redirect: "manual",
    });
    await sneaky.body?.cancel();
    assert.match(sneaky.headers.get("location")!, /^http:\/\/127\.0\.0\.1:9\/shop\/success\?apay_payment=pay_/);
    const unknown = await fetch(`${app.baseUrl}/integration/pay?id=pay_nope`);
    assert.equal(unknown.status, 404);
    assert.match(unknown.headers.get("content-type")!, /text\/html/);
    assert.match(unknown.headers.get("content-security-policy")!, /default-src 'none'/);
    assert.equal(success.headers.get("cache-control"), "no-store");
    assert.match(await unknown.text(), /could not find this payment/);
  } finally {
    await app.close();
  }
});

Deno.test("[webhook] news the provider's status API does not show yet is not marked seen: its retry applies it", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  try {
    const p = await createPending(app, shop.url);
    const event = { eventId: "evt_early", id: p.id, ref: p.ref, status: "paid" };
    // Bansky sent its webhook before its own status API caught up.
    const early = await sendWebhook(app, event);
    assert.equal(early.status, 409, "refused, so that the provider sends it again");
    assert.equal((await sendWebhook(app, event)).status, 409);
    const claims = (await describePayment(app.server.ctx, p.id)).events.filter((e) => e.type === "webhook_received");
    assert.equal(claims.length, 1, "the unconfirmed claim is on the timeline once");
    await settleAtProvider(app, p.ref, "paid");
    const retry = await sendWebhook(app, event);
    assert.equal(retry.status, 200);
    assert.equal(retry.body.outcome, "applied");
    assert.equal((await describePayment(app.server.ctx, p.id)).payment.status, "succeeded");
    await waitFor("the postback", () => shop.received[0]);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[webhook] the provider's answer decides even against a signed claim: paid at Bansky's word becomes failed", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  try {
    const p = await createPending(app, shop.url);
    await settleAtProvider(app, p.ref, "declined");
    const res = await sendWebhook(app, { eventId: "evt_claims_paid", id: p.id, ref: p.ref, status: "paid" });
    assert.equal(res.body.outcome, "applied");
    assert.equal((await describePayment(app.server.ctx, p.id)).payment.status, "failed");
    const postback = await waitFor("the postback", () => shop.received[0]);
    assert.equal(JSON.parse(postback.body).type, "payment.failed");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[webhook] a signature by any other key, or moved onto another body, is rejected", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  try {
    const p = await createPending(app, "http://127.0.0.1:9/pb");
    await settleAtProvider(app, p.ref, "paid");
    const claim = { eventId: "evt_2", id: p.id, ref: p.ref, status: "paid" };
    // The shop's own postback secret is the one secret a shop could misuse: it signs nothing here.
    assert.equal((await sendWebhook(app, claim, { secret: app.shop.webhookSecret })).status, 401);
    // A genuine signature of one event, sent with another event's body.
    const ts = Math.floor(Date.now() / 1000);
    const genuine = signBanskyWebhook(SANDBOX_SECRET, ts, JSON.stringify({ ...claim, status: "pending" }));
    const moved = await fetch(`${app.baseUrl}/api/payment-verify`, {
      method: "POST",
      headers: { "content-type": "application/json", "bansky-signature": genuine },
      body: JSON.stringify(claim),
    });
    await moved.body?.cancel();
    assert.equal(moved.status, 401);
    assert.equal((await describePayment(app.server.ctx, p.id)).payment.status, "pending");
  } finally {
    await app.close();
  }
});

Deno.test("[webhook] a genuine webhook captured and replayed after the time window is rejected", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  try {
    const p = await createPending(app, "http://127.0.0.1:9/pb");
    await settleAtProvider(app, p.ref, "paid");
    const text = JSON.stringify({ eventId: "evt_captured", id: p.id, ref: p.ref, status: "paid" });
    const signature = signBanskyWebhook(SANDBOX_SECRET, Math.floor(Date.now() / 1000), text);
    // Six minutes later, by our clock.
    const realNow = app.server.ctx.now;
    app.server.ctx.now = () => realNow() + 6 * 60_000;
    const replayed = await fetch(`${app.baseUrl}/api/payment-verify`, {
      method: "POST",
      headers: { "content-type": "application/json", "bansky-signature": signature },
      body: text,
    });
    assert.equal(replayed.status, 401);
    assert.match((await replayed.json()).error.message, /window/);
    assert.equal((await describePayment(app.server.ctx, p.id)).payment.status, "pending");
  } finally {
    await app.close();
  }
});

Deno.test("[webhook] past WEBHOOKS_IN_FLIGHT_MAX at once a webhook gets 503 with Retry-After, and its retry applies", async () => {
  const app = await startTestApp({ standaloneSandbox: true, env: { WEBHOOKS_IN_FLIGHT_MAX: "1" } });
  const shop = startShopReceiver();
  try {
    const [a, b] = [await createPending(app, shop.url), await createPending(app, shop.url)];
    for (const p of [a, b]) await settleAtProvider(app, p.ref, "paid");
    // The provider's status API answers slowly, so the first webhook is still in flight when the second comes.
    app.sandbox.knobs.latencyMs = 400;
    const claim = (p: { id: string; ref: string }, n: number) => ({
      eventId: `evt_busy_${n}`,
      id: p.id,
      ref: p.ref,
      status: "paid",
    });
    const first = sendWebhook(app, claim(a, 1));
    await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(`${app.baseUrl}/api/payment-verify`, {
      method: "POST",
      headers: { "content-type": "application/json", "bansky-signature": "not checked before the limit" },
      body: JSON.stringify(claim(b, 2)),
    });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.equal((await res.json()).error.code, "overloaded");
    assert.equal((await first).status, 200);
    app.sandbox.knobs.latencyMs = 0;
    assert.equal((await sendWebhook(app, claim(b, 2))).status, 200, "the retry applies once there is room");
    for (const p of [a, b]) assert.equal((await describePayment(app.server.ctx, p.id)).payment.status, "succeeded");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[webhook] Bansky's news of a payment made for one of ours that the payment does not name (the order sent again with another body) is acknowledged when it is still open, expires or fails and changes nothing (a pending one was refused before: Bansky's pending is a payment still open); a claim that it was paid is refused and counted for the operators' alert", async () => {
  const app = await startTestApp({ standaloneSandbox: true, env: { METRICS_TOKEN } });
  const shop = startShopReceiver();
  try {
    const p = await createPending(app, shop.url);
    const before = await describePayment(app.server.ctx, p.id);
    // Bansky echoes the id we sent: our payment id and another request's fingerprint.
    const orphan = { id: `${p.id}.0123456789ab`, ref: "bsk_orphan" };
    for (const status of ["pending", "expired", "declined"]) {
      const res = await sendWebhook(app, { eventId: `evt_orphan_${status}`, ...orphan, status });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.outcome, "unchanged");
    }
    assert.equal(await paidOrphans(app), undefined, "news of no money is not counted");
    const paid = await sendWebhook(app, { eventId: "evt_orphan_paid", ...orphan, status: "paid" });
    assert.equal(paid.status, 400);
    assert.equal(paid.body.error.code, "invalid_webhook");
    assert.equal(await paidOrphans(app), 1);
    const after = await describePayment(app.server.ctx, p.id);
    assert.deepEqual(after.payment, before.payment);
    assert.equal(after.events.length, before.events.length);
    assert.equal(app.sandbox.calls.status, 0, "the provider was not asked about the payment");
    assert.equal(shop.received.length, 0);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[webhook] a paid orphan is recorded once per payment at Bansky and counted by the unhandled gauge; an operator marks it handled on the console's page (a note required, asked first, audited in the same write), which clears the gauge, and Bansky's further news of it is then acknowledged and not counted", async (t) => {
  const { operatorBrowser, Browser } = await import("../fixtures/browser.ts");
  const app = await startTestApp({ standaloneSandbox: true, env: { METRICS_TOKEN } });
  const shop = startShopReceiver();
  try {
    const p = await createPending(app, shop.url);
    const orphan = { id: `${p.id}.0123456789ab`, ref: "bsk_orphan_paid" };
    const page = "/admin/paid-orphans";
    const handle = `${page}/handle`;
    const note = "Refunded in Bansky's dashboard on 2026-11-30";
    const b = await operatorBrowser(app);

    await t.step("news of no money writes no record", async () => {
      const res = await sendWebhook(app, { eventId: "evt_po_declined", ...orphan, status: "declined" });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.outcome, "unchanged");
      assert.equal(await getPaidOrphan(app.kv, "default", orphan.ref), null);
      assert.equal(await unhandledOrphans(app), undefined);
    });

    await t.step(
      "each refusal updates the one record; the gauge counts the payment, the counter each refusal",
      async () => {
        for (const eventId of ["evt_po_paid", "evt_po_paid"]) {
          const res = await sendWebhook(app, { eventId, ...orphan, status: "paid" });
          assert.equal(res.status, 400, "refused: Bansky keeps it and retries");
        }
        const record = (await getPaidOrphan(app.kv, "default", orphan.ref))!;
        assert.ok(record.firstSeenAt <= record.lastSeenAt);
        assert.deepEqual({ ...record, firstSeenAt: 0, lastSeenAt: 0 }, {
          provider: "bansky",
          accountId: "default",
          ref: orphan.ref,
          paymentId: p.id,
          paymentStored: true,
          storedRef: p.ref,
          claimed: "succeeded",
          lastEventId: "evt_po_paid",
          firstSeenAt: 0,
          lastSeenAt: 0,
          timesSeen: 2,
          handled: null,
        });
        assert.equal(await unhandledOrphans(app), 1);
        assert.equal(await paidOrphans(app), 2);
        const overview = await b.get("/admin");
        assert.match(
          overview.text,
          /<a href="\/admin\/paid-orphans" data-paid-orphans="true"><strong class="bad">1<\/strong> waiting/,
        );
        const list = await b.get(page);
        assert.equal(list.status, 200);
        assert.match(
          list.text,
          new RegExp(`<table class="stack-phone" data-orphans="unhandled">[\\s\\S]*${orphan.ref}`),
        );
        assert.match(list.text, new RegExp(`<form method="post" action="${handle}"[^>]*data-busy="Marking…"`));
        assert.match(
          list.text,
          /data-confirm="Mark Bansky's payment bsk_orphan_paid \(made for pay_[^)]+\) handled\? Note: “\{note\}”/,
        );
      },
    );

    await t.step("a mark without a note, or without the CSRF token, is refused and changes nothing", async () => {
      const noNote = await b.post(handle, { accountId: "default", ref: orphan.ref, note: "  ", confirm: "yes" });
      assert.equal(noNote.status, 422);
      assert.match(noNote.text, /Not marked: Say in the note what was done about it/);
      assert.match(
        noNote.text,
        /<input id="note-default-bsk_orphan_paid" name="note" required maxlength="500"[^>]*autofocus/,
      );
      const forged = new Browser(app);
      forged.cookies = new Map(b.cookies);
      const refused = await forged.post(handle, { accountId: "default", ref: orphan.ref, note, confirm: "yes" }, {
        csrf: "nope",
      });
      assert.equal(refused.status, 403);
      // Without the page's script the question is a page of its own; nothing changes before it is answered.
      await b.get(page);
      const asked = await b.post(handle, { accountId: "default", ref: orphan.ref, note });
      assert.equal(asked.status, 200);
      assert.match(asked.text, /Please confirm/);
      assert.match(asked.text, /name="confirm" value="yes"/);
      assert.equal((await getPaidOrphan(app.kv, "default", orphan.ref))!.handled, null);
      assert.deepEqual(await searchAudit(app.kv, { query: "paid_orphan.handle", limit: 10 }), []);
      assert.equal(await unhandledOrphans(app), 1);
    });

    await t.step("the confirmed mark is recorded with its audit entry and clears the gauge", async () => {
      const done = await b.post(handle, { accountId: "default", ref: orphan.ref, note, confirm: "yes" });
      assert.equal(done.status, 303, done.text);
      assert.equal(done.location, `${page}?done=handled`);
      const record = (await getPaidOrphan(app.kv, "default", orphan.ref))!;
      assert.equal(record.handled?.by, "ops@example.com");
      assert.equal(record.handled?.note, note);
      const [entry, ...more] = await searchAudit(app.kv, { query: "paid_orphan.handle", limit: 10 });
      assert.equal(more.length, 0);
      assert.deepEqual({ actor: entry.actor, target: entry.target, at: entry.at, after: entry.after }, {
        actor: "ops@example.com",
        target: orphan.ref,
        at: record.handled?.at,
        after: { accountId: "default", paymentId: p.id, handled: true, note },
      });
      assert.equal(await unhandledOrphans(app), undefined, "the gauge has no series left for the account");
      const list = await b.get(`${page}?done=handled`);
      assert.match(list.text, /Marked handled/);
      assert.match(
        list.text,
        new RegExp(`data-orphans="handled">[\\s\\S]*${orphan.ref}[\\s\\S]*ops@example.com: ${note}`),
      );
      const again = await b.post(handle, { accountId: "default", ref: orphan.ref, note, confirm: "yes" });
      assert.equal(again.status, 422);
      assert.match(again.text, /Not marked: This paid orphan was marked handled already, by ops@example.com/);
    });

    await t.step("Bansky's further news of it is acknowledged, changes nothing and is not counted", async () => {
      const before = await getPaidOrphan(app.kv, "default", orphan.ref);
      const res = await sendWebhook(app, { eventId: "evt_po_paid", ...orphan, status: "paid" });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.outcome, "orphan_handled");
      assert.deepEqual(await getPaidOrphan(app.kv, "default", orphan.ref), before);
      assert.equal(await paidOrphans(app), 2);
      assert.equal(await unhandledOrphans(app), undefined);
      assert.equal((await describePayment(app.server.ctx, p.id)).payment.status, "pending");
      assert.equal(shop.received.length, 0);
    });
  } finally {
    await shop.close();
    await app.close();
  }
});

/**
 * An order whose init reached Bansky but whose payment the store failed to commit (a store error after Bansky made
 * it): the shop got a 500 and never the page, and Bansky holds a payment naming an id of ours that nothing stored.
 * Answers that id and Bansky's reference and pay page, as its API answered them to us.
 */
async function unstoredAtBansky(app: TestApp) {
  const made: { paymentId: string; ref: string; payUrl: string }[] = [];
  const sandboxFetch = app.sandbox.app.fetch;
  app.sandbox.app.fetch = async (req, ...rest) => {
    const sent = req.method === "POST" && new URL(req.url).pathname === "/payments" ? await req.clone().json() : null;
    const res = await sandboxFetch(req, ...rest);
    if (sent) {
      const answer = await res.clone().json();
      made.push({ paymentId: paymentIdOfRequestId(sent.id), ref: answer.id, payUrl: answer.url });
    }
    return res;
  };
  const atomic = app.kv.atomic.bind(app.kv);
  app.kv.atomic = () => {
    const op = atomic();
    let storesPayment = false;
    const set = op.set.bind(op);
    op.set = (key, value, options) => {
      storesPayment ||= key[0] === "payments";
      return set(key, value, options);
    };
    const commit = op.commit.bind(op);
    op.commit = () => storesPayment ? Promise.reject(new Error("simulated store error")) : commit();
    return op;
  };
  try {
    const init = await callInit(
      app,
      paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl: "http://127.0.0.1:9/pb" }),
    );
    assert.equal(init.status, 500, JSON.stringify(init.body));
  } finally {
    app.sandbox.app.fetch = sandboxFetch;
    app.kv.atomic = atomic;
  }
  assert.equal(made.length, 1, "Bansky made the payment");
  assert.equal(await getPayment(app.kv, made[0].paymentId), null, "and nothing stored it");
  return made[0];
}

/**
 * What the store holds about these payment ids and references, and every webhook marked seen: what a webhook about
 * them could have written. Not the provider call log (the failed init's call is logged after its commit failed).
 */
async function storedAbout(kv: Deno.Kv, ...names: string[]): Promise<string[]> {
  const out: string[] = [];
  for await (const e of kv.list({ prefix: [] })) {
    if (String(e.key[0]).startsWith("provider_ops")) continue;
    const text = JSON.stringify([e.key, e.value], (_k, v) => typeof v === "bigint" ? String(v) : v);
    if (e.key[0] === "webhook_events_seen" || names.some((n) => text.includes(n))) out.push(text);
  }
  return out;
}

Deno.test("[webhook] a paid-orphan record under the reference a stored payment names (news that beat our commit of it), handled or not, neither acknowledges nor refuses that payment's news: the stored payment is looked at first, and its paid news applied", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  try {
    const [handled, waiting] = [await createPending(app, shop.url), await createPending(app, shop.url)];
    for (const p of [handled, waiting]) {
      const early: OrphanSighting = {
        provider: "bansky",
        accountId: "default",
        ref: p.ref,
        paymentId: p.id,
        paymentStored: false,
        storedRef: null,
        claimed: "succeeded",
        lastEventId: `evt_early_${p.id}`,
      };
      await recordPaidOrphanSighting(app.kv, early, Date.now());
    }
    await markOrphanHandled(app.server.ctx, { accountId: "default", ref: handled.ref, note: "its payment is stored" }, {
      actor: "ops@example.com",
    });
    for (const p of [handled, waiting]) {
      await settleAtProvider(app, p.ref, "paid");
      const res = await sendWebhook(app, { eventId: `evt_real_${p.id}`, id: p.id, ref: p.ref, status: "paid" });
      assert.deepEqual([res.status, res.body.outcome], [200, "applied"]);
      assert.equal((await getPayment(app.kv, p.id))?.status, "succeeded");
    }
    await waitFor("both postbacks", () => shop.received[1]);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[webhook] the console's paid-orphans page says whether a payment with each record's id is stored now, linking to it: one whose news beat our commit shows its payment naming that very reference", async () => {
  const { operatorBrowser } = await import("../fixtures/browser.ts");
  const app = await startTestApp({ standaloneSandbox: true });
  const shop = startShopReceiver();
  try {
    const [beat, retried] = [await createPending(app, shop.url), await createPending(app, shop.url)];
    const sighting = (
      s: Pick<OrphanSighting, "ref" | "paymentId" | "paymentStored" | "storedRef">,
    ): OrphanSighting => ({
      provider: "bansky",
      accountId: "default",
      claimed: "succeeded",
      lastEventId: `evt_${s.ref}`,
      ...s,
    });
    const seen = [
      // News that beat our commit: nothing was stored when it came, its payment is now.
      sighting({ ref: beat.ref, paymentId: beat.id, paymentStored: false, storedRef: null }),
      // A retry's second payment at Bansky: stored then and now, naming the first.
      sighting({
        ref: `bsk_second_${retried.ref}`,
        paymentId: retried.id,
        paymentStored: true,
        storedRef: retried.ref,
      }),
      sighting({ ref: "bsk_never_stored", paymentId: UNSTORED_ID, paymentStored: false, storedRef: null }),
    ];
    for (const s of seen) await recordPaidOrphanSighting(app.kv, s, Date.now());
    await markOrphanHandled(app.server.ctx, { accountId: "default", ref: seen[1].ref, note: "refunded at Bansky" }, {
      actor: "ops@example.com",
    });

    const b = await operatorBrowser(app);
    const page = await b.get("/admin/paid-orphans");
    assert.equal(page.status, 200);
    const row = (ref: string) => {
      const found = page.text.split("<tr").find((r) => r.includes(`<code>${ref}</code>`));
      assert.ok(found, `a row for ${ref}`);
      return found;
    };
    const link = (id: string) => `<a href="/admin/payments/${id}">its payment</a>`;
    assert.match(row(beat.ref), /data-stored-now="yes"/);
    assert.ok(
      row(beat.ref).includes(`stored now, and ${link(beat.id)} names this reference: its news beat our commit of it`),
      row(beat.ref),
    );
    assert.match(row(seen[1].ref), /data-stored-now="yes"/);
    assert.ok(row(seen[1].ref).includes(`stored, ${link(retried.id)} names <code>${retried.ref}</code>`));
    assert.match(row(seen[2].ref), /data-stored-now="no">not stored</);
    assert.ok(!row(seen[2].ref).includes("/admin/payments/"));
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[webhook] Bansky's news of a payment it made for an id of ours that was never stored (our commit failed) is acknowledged when it took no money and changes nothing; news that it was paid is refused, logged as an error naming both and counted for the operators' alert", async () => {
  const app = await startTestApp({ standaloneSandbox: true, env: { METRICS_TOKEN } });
  try {
    const declined = await unstoredAtBansky(app);
    const before = await storedAbout(app.kv, declined.paymentId, declined.ref);
    // Its page never reached a buyer; a decline on it is news Bansky sends us all the same.
    const decline = await fetch(`${declined.payUrl}/declined`, { method: "POST", redirect: "manual" });
    await decline.body?.cancel();
    await waitFor(
      "Bansky's webhook answered 2xx (before: 404, retried)",
      () => app.sandbox.webhooksAccepted || undefined,
    );
    assert.deepEqual(await storedAbout(app.kv, declined.paymentId, declined.ref), before);
    // Still open, expired or cancelled: no money either (signed as Bansky would).
    for (const status of ["pending", "expired", "cancelled"]) {
      const news = { eventId: `evt_unstored_${status}`, id: `${declined.paymentId}.0123456789ab`, ref: declined.ref };
      const res = await sendWebhook(app, { ...news, status });
      assert.equal(res.status, 200, `${status}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.outcome, "unchanged");
    }
    assert.deepEqual(await storedAbout(app.kv, declined.paymentId, declined.ref), before);
    assert.equal(app.sandbox.calls.status, 0, "Bansky was not asked about it");
    assert.equal(await paidOrphans(app), undefined, "news of no money is not counted");

    const paid = await unstoredAtBansky(app);
    const accepted = app.sandbox.webhooksAccepted;
    const { lines } = await capturingLog(async (lines) => {
      const pay = await fetch(`${paid.payUrl}/paid`, { method: "POST", redirect: "manual" });
      await pay.body?.cancel();
      await waitFor("the refusal logged", () => lines.find((l) => l.level === "error") && true);
      // Bansky retries within a second: stop it, and let a retry already sent finish, to count what was refused.
      app.sandbox.close();
      await sleep(300);
    });
    const refusals = lines.filter((l) => l.level === "error" && /no stored payment names/.test(l.msg)).length;
    assert.equal(await paidOrphans(app), refusals);
    const said = lines.find((l) => l.level === "error")!;
    assert.match(said.msg, /money at the provider on a payment of ours that no stored payment names/);
    assert.deepEqual([said.paymentId, said.ref, said.paymentStored, said.claimed], [
      paid.paymentId,
      paid.ref,
      false,
      "succeeded",
    ]);
    assert.doesNotMatch(JSON.stringify(lines), new RegExp(`${SANDBOX_SECRET}|${SANDBOX_TOKEN}`));
    assert.equal(app.sandbox.webhooksAccepted, accepted, "refused: Bansky keeps it and retries");
    assert.equal(await getPayment(app.kv, paid.paymentId), null);
    const signed = await sendWebhook(app, {
      eventId: "evt_unstored_paid",
      id: paid.paymentId,
      ref: paid.ref,
      status: "paid",
    });
    assert.equal(signed.status, 404);
    assert.equal(signed.body.error.code, "not_found");
    assert.equal(await paidOrphans(app), refusals + 1);
  } finally {
    await app.close();
  }
});

Deno.test("[webhook] news naming a payment id we never make (someone else's payment on the account) is acknowledged and ignored, paid or not", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  try {
    for (const status of ["paid", "expired"]) {
      const res = await sendWebhook(app, { eventId: `evt_foreign_${status}`, id: "order-77", ref: "bsk_x", status });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.outcome, "unchanged");
    }
    assert.deepEqual(await storedAbout(app.kv, "order-77", "bsk_x"), []);
  } finally {
    await app.close();
  }
});
