/**
 * Refunds over real HTTP with the Bansky sandbox: amounts reserved atomically
 * (concurrent over-refunds, two instances on one store), sync, async, late and
 * lost provider answers, refusals and failures that give the amount back, a
 * success the provider reverses, signed refund postbacks, idempotency and
 * errors.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import {
  getRefund,
  getRefundEntry,
  getRefundReservation,
  insertRefund,
  listRefundsByPayment,
} from "../lib/db/refunds.ts";
import { getPayment as getPaymentRecord } from "../lib/db/payments.ts";
import { readStats, utcDay } from "../lib/db/stats.ts";
import { createAccount, rotateAccountCredentials } from "../lib/accounts/mod.ts";
import { setShopRouting } from "../lib/accounts/routing.ts";
import { applyRefundResult } from "../lib/refunds/settle.ts";
import { recheckPaymentStatus } from "../lib/payments/admin.ts";
import { signBanskyWebhook } from "../lib/providers/bansky_wire.ts";
import { refundEvents } from "../lib/refunds/view.ts";
import type { Refund } from "../lib/refunds/types.ts";
import { sortableId } from "../lib/ids.ts";
import { countScheduledJobs } from "../lib/db/jobs.ts";
import { listActivity } from "../lib/db/activity.ts";
import { listOperations } from "../lib/db/operations.ts";
import { searchAudit } from "../lib/db/audit.ts";
import { RefundListResponse, RefundPostbackBody, RefundResponse, RefundView } from "../lib/refunds/api_schemas.ts";
import { PaymentResponse } from "../lib/payments/api_schemas.ts";
import {
  buyerSettles,
  callInit,
  paymentBody,
  type ReceivedPostback,
  recordDeliveryWrites,
  SANDBOX_SECRET,
  SANDBOX_TOKEN,
  startShopReceiver,
  startTestApp,
  sweepAt,
  type TestApp,
  type TestAppOptions,
  waitFor,
} from "../fixtures/app.ts";

async function withApp(opts: TestAppOptions, fn: (app: TestApp) => Promise<void>) {
  const app = await startTestApp(opts);
  try {
    await fn(app);
  } finally {
    await app.close();
  }
}

/** A payment paid by the buyer and settled here; with the shop's id and postback URL unless `postbackUrl` is null. */
async function paidPayment(app: TestApp, postbackUrl: string | null, amount = 1000): Promise<string> {
  const named = postbackUrl === null ? {} : { id: `o-${crypto.randomUUID()}`, postbackUrl };
  const init = await callInit(app, paymentBody({ ...named, amount }));
  assert.equal(init.status, 201, JSON.stringify(init.body));
  await buyerSettles(init.body.url, "paid");
  await waitFor(
    "payment succeeded",
    async () => ((await getPayment(app, init.body.id)).status === "succeeded" || undefined),
  );
  return init.body.id;
}

async function api(
  app: TestApp,
  method: string,
  path: string,
  body?: unknown,
  opts: { headers?: Record<string, string>; key?: string } = {},
) {
  const res = await fetch(`${app.baseUrl}/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${opts.key ?? app.shop.apiKey}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...opts.headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const refund = (app: TestApp, paymentId: string, body: unknown, headers?: Record<string, string>) =>
  api(app, "POST", `/payments/${paymentId}/refunds`, body, { headers });

async function getPayment(app: TestApp, id: string) {
  const res = await api(app, "GET", `/payments/${id}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  PaymentResponse.parse(res.body);
  return res.body.payment;
}

/** The postbacks of one type received so far, verified with the standardwebhooks library. */
function verified(app: TestApp, received: ReceivedPostback[], type: string) {
  const wh = new Webhook(app.shop.webhookSecret);
  return received
    .map((r) => wh.verify(r.body, Object.fromEntries(r.headers)) as { type: string; data: Record<string, unknown> })
    .filter((b) => b.type === type);
}

Deno.test("[refunds] a partial refund then the rest: the payment becomes partially_refunded then refunded, with signed refund.succeeded postbacks", async () => {
  const shop = startShopReceiver();
  await withApp({ standaloneSandbox: true }, async (app) => {
    const id = await paidPayment(app, shop.url);
    const first = await refund(app, id, { amount: 300, reason: "one item returned" });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal(first.body.status, "success");
    assert.match(first.body.refund.id, /^re_[A-Za-z0-9_-]{22}$/);
    RefundResponse.strict().parse(first.body);
    assert.deepEqual(
      Object.keys(first.body.refund).sort(),
      Object.keys(RefundView.shape).sort(),
      "no field undocumented",
    );
    assert.deepEqual(
      { ...first.body.refund, id: undefined, createdAt: undefined, settledAt: undefined },
      {
        id: undefined,
        paymentId: id,
        shopRefundId: null,
        amount: 300,
        currency: "EUR",
        status: "succeeded",
        reason: "one item returned",
        failureReason: null,
        createdAt: undefined,
        settledAt: undefined,
      },
    );
    let p = await getPayment(app, id);
    assert.equal(p.status, "partially_refunded");
    assert.equal(p.refundedAmount, 300);

    // No amount: all that is left.
    const rest = await refund(app, id, {});
    assert.equal(rest.status, 201, JSON.stringify(rest.body));
    assert.equal(rest.body.refund.amount, 700);
    assert.equal(rest.body.refund.status, "succeeded");
    p = await getPayment(app, id);
    assert.equal(p.status, "refunded");
    assert.equal(p.refundedAmount, 1000);

    const list = await api(app, "GET", `/payments/${id}/refunds`);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.refunds.map((r: { amount: number }) => r.amount), [300, 700]);
    RefundListResponse.strict().parse(list.body);

    const postbacks = await waitFor("two refund postbacks", () => {
      const got = verified(app, shop.received, "refund.succeeded");
      return got.length === 2 ? got : undefined;
    });
    for (const b of postbacks) RefundPostbackBody.strict().parse(b);
    const last = postbacks.find((b) => b.data.amount === 700)!;
    assert.equal(last.data.id, rest.body.refund.id);
    assert.deepEqual(last.data.payment, {
      id,
      shopTxId: p.shopTxId,
      status: "refunded",
      amount: 1000,
      refundedAmount: 1000,
    });
    const firstPostback = postbacks.find((b) => b.data.amount === 300)!;
    assert.deepEqual(firstPostback.data.payment, {
      id,
      shopTxId: p.shopTxId,
      status: "partially_refunded",
      amount: 1000,
      refundedAmount: 300,
    });
    // Refunded in full: nothing is left.
    const more = await refund(app, id, { amount: 1 });
    assert.equal(more.status, 409);
    assert.equal(more.body.error.code, "payment_not_refundable");
  });
  await shop.close();
});

Deno.test("[refunds] a second partial refund changes no status, so the timeline gets no status_changed for it", async () => {
  const shop = startShopReceiver();
  await withApp({}, async (app) => {
    const id = await paidPayment(app, shop.url);
    for (const amount of [100, 200]) assert.equal((await refund(app, id, { amount })).body.refund.status, "succeeded");
    const changes: string[] = [];
    for await (
      const e of app.kv.list<{ type: string; data: { from: string; to: string } }>({ prefix: ["payment_events", id] })
    ) {
      if (e.value.type === "status_changed") changes.push(`${e.value.data.from}->${e.value.data.to}`);
    }
    assert.deepEqual(changes, ["pending->succeeded", "succeeded->partially_refunded"]);
    assert.equal((await getPayment(app, id)).refundedAmount, 300);
  });
  await shop.close();
});

Deno.test("[refunds] twenty concurrent partial refunds never accept more than the payment, pending ones counting as spent", async () => {
  const shop = startShopReceiver();
  await withApp({ standaloneSandbox: true, knobs: { asyncRefunds: true, webhookDelayMs: 300 } }, async (app) => {
    const id = await paidPayment(app, shop.url, 1000);
    const answers = await Promise.all(Array.from({ length: 20 }, () => refund(app, id, { amount: 150 })));
    const accepted = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status !== 201);
    assert.equal(accepted.length, 6, JSON.stringify(answers.map((a) => a.status)));
    assert.ok(accepted.every((a) => a.body.refund.status === "pending"), "the sandbox answers later");
    assert.ok(refused.every((a) => a.status === 422 && a.body.error.code === "refund_exceeds_payment"));
    // 100 is left while six are pending: more than that is refused, exactly that is accepted.
    assert.equal((await refund(app, id, { amount: 101 })).status, 422);
    const last = await refund(app, id, {});
    assert.equal(last.status, 201);
    assert.equal(last.body.refund.amount, 100);

    const p = await waitFor("all refunds settled", async () => {
      const p = await getPayment(app, id);
      return p.refundedAmount === 1000 ? p : undefined;
    });
    assert.equal(p.status, "refunded");
    const list = await api(app, "GET", `/payments/${id}/refunds`);
    assert.equal(list.body.refunds.length, 7);
    assert.ok(list.body.refunds.every((r: { status: string }) => r.status === "succeeded"));
    assert.equal(app.sandbox.calls.refund, 7, "one provider call per accepted refund");
    // Each refund's calls name it in the operation log, its status checks (after the provider's webhooks) too.
    const ops = (await listOperations(app.kv, { shopId: app.shop.id, limit: 100 })).filter((o) => o.paymentId === id);
    const checks = ops.filter((o) => o.operation === "refund_status");
    assert.ok(checks.length >= 7, `${checks.length} refund status checks`);
    const ids = new Set(list.body.refunds.map((r: { id: string }) => r.id));
    for (const o of [...checks, ...ops.filter((o) => o.operation === "refund")]) assert.ok(ids.has(o.refundId!), o.id);
  });
  await shop.close();
});

Deno.test("[refunds] an async refund that fails gives its amount back and sends a signed refund.failed", async () => {
  const shop = startShopReceiver();
  await withApp({ standaloneSandbox: true, knobs: { asyncRefunds: true, refundFailureRate: 1 } }, async (app) => {
    const id = await paidPayment(app, shop.url);
    const r = await refund(app, id, { amount: 1000, id: "rf-1" });
    assert.equal(r.status, 201);
    assert.equal(r.body.refund.status, "pending");
    assert.equal(r.body.refund.shopRefundId, "rf-1");
    // While pending, nothing is left to refund.
    assert.equal((await refund(app, id, { amount: 1 })).body.error.code, "refund_exceeds_payment");

    const [failed] = await waitFor("refund.failed postback", () => {
      const got = verified(app, shop.received, "refund.failed");
      return got.length ? got : undefined;
    });
    assert.equal(failed.data.id, r.body.refund.id);
    assert.equal(failed.data.status, "failed");
    assert.equal(typeof failed.data.failureReason, "string");
    assert.deepEqual(failed.data.payment, {
      id,
      shopTxId: failed.data.payment && (failed.data.payment as { shopTxId: string }).shopTxId,
      status: "succeeded",
      amount: 1000,
      refundedAmount: 0,
    });
    const p = await getPayment(app, id);
    assert.equal(p.status, "succeeded");
    assert.equal(p.refundedAmount, 0);
    const list = await api(app, "GET", `/payments/${id}/refunds`);
    assert.equal(list.body.refunds[0].status, "failed");
    assert.equal(await countScheduledJobs(app.kv, "refund"), 0, "a settled refund leaves no job behind");

    // The amount is back: with refunds working again, all of it can be refunded.
    app.sandbox.knobs.refundFailureRate = 0;
    app.sandbox.knobs.asyncRefunds = false;
    const again = await refund(app, id, {});
    assert.equal(again.status, 201);
    assert.equal(again.body.refund.amount, 1000);
    assert.equal(again.body.refund.status, "succeeded");
  });
  await shop.close();
});

Deno.test("[refunds] a refund the provider declines at once answers 201 failed, and the amount stays refundable", async () => {
  const shop = startShopReceiver();
  await withApp({ knobs: { refundFailureRate: 1 } }, async (app) => {
    const id = await paidPayment(app, shop.url);
    const r = await refund(app, id, { amount: 400 });
    assert.equal(r.status, 201);
    assert.equal(r.body.refund.status, "failed");
    assert.equal((await getPayment(app, id)).status, "succeeded");
    app.sandbox.knobs.refundFailureRate = 0;
    assert.equal((await refund(app, id, { amount: 1000 })).body.refund.status, "succeeded");
  });
  await shop.close();
});

Deno.test("[refunds] the shop's refund id and Idempotency-Key answer the same refund for the same body, 422 for another", async () => {
  const shop = startShopReceiver();
  await withApp({ standaloneSandbox: true }, async (app) => {
    const id = await paidPayment(app, shop.url);
    await Promise.all([0, 1, 2].map(() => refund(app, id, { amount: 100, id: "rf-a" })));
    const first = await refund(app, id, { amount: 100, id: "rf-a" });
    assert.equal(first.status, 200, "a retry answers 200 with the first refund");
    const list = await api(app, "GET", `/payments/${id}/refunds`);
    assert.equal(list.body.refunds.length, 1, "concurrent copies made one refund");
    assert.equal(first.body.refund.id, list.body.refunds[0].id);
    assert.equal(app.sandbox.calls.refund, 1);

    const other = await refund(app, id, { amount: 200, id: "rf-a" });
    assert.equal(other.status, 422);
    assert.equal(other.body.error.code, "idempotency_mismatch");
    assert.equal(other.body.error.message, "This id was already used for a refund with different details.");

    const k = { "idempotency-key": "k-1" };
    const a = await refund(app, id, { amount: 50 }, k);
    const b = await refund(app, id, { amount: 50 }, k);
    assert.equal(a.status, 201);
    assert.equal(b.status, 200);
    assert.equal(a.body.refund.id, b.body.refund.id);
    const keyReused = (await refund(app, id, { amount: 51 }, k)).body.error;
    assert.equal(keyReused.code, "idempotency_mismatch");
    assert.equal(keyReused.message, "This Idempotency-Key was already used for a refund with different details.");
    assert.equal((await getPayment(app, id)).refundedAmount, 150);
  });
  await shop.close();
});

Deno.test("[refunds] errors: unknown or another shop's payment 404, unpaid 409, too much 422, bad body 400", async () => {
  await withApp({}, async (app) => {
    const shop = startShopReceiver();
    const id = await paidPayment(app, shop.url);
    await shop.close();
    assert.equal((await refund(app, id.slice(0, -1) + "x", {})).body.error.code, "not_found");
    assert.equal((await api(app, "GET", `/payments/pay_nope/refunds`)).status, 404);

    const { createShop } = await import("../lib/shops.ts");
    const other = await createShop(app.kv, { name: "Other", allowedHosts: [] }, {
      allowLocalUrls: true,
      now: Date.now(),
    });
    const theirs = await api(app, "POST", `/payments/${id}/refunds`, {}, { key: other.apiKey });
    assert.equal(theirs.status, 404);
    assert.equal(theirs.body.error.code, "not_found");
    assert.equal((await api(app, "GET", `/payments/${id}/refunds`, undefined, { key: other.apiKey })).status, 404);

    const pending = await callInit(app, paymentBody());
    const notPaid = await refund(app, pending.body.id, {});
    assert.equal(notPaid.status, 409);
    assert.equal(notPaid.body.error.code, "payment_not_refundable");

    const tooMuch = await refund(app, id, { amount: 1001 });
    assert.equal(tooMuch.status, 422);
    assert.equal(tooMuch.body.error.code, "refund_exceeds_payment");

    for (const body of [{ amount: 0 }, { amount: 1.5 }, { reason: "x".repeat(501) }, { id: "" }, { extra: 1 }]) {
      const bad = await refund(app, id, body);
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal(bad.body.error.code, "invalid_request");
    }
    assert.equal((await getPayment(app, id)).refundedAmount, 0, "nothing was refunded by the refused requests");
  });
});

Deno.test("[refunds] with the provider down the refund stays pending, and the job (sweep, JOBS_QUEUE=off) submits it later", async () => {
  await withApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const shop = startShopReceiver();
    const id = await paidPayment(app, shop.url);
    app.sandbox.knobs.failureRate = 1;
    const r = await refund(app, id, { amount: 250 });
    assert.equal(r.status, 201);
    assert.equal(r.body.refund.status, "pending");
    const stored = (await getRefundEntry(app.kv, r.body.refund.id)).value!;
    assert.equal(stored.providerRef, null);
    assert.equal(await countScheduledJobs(app.kv, "refund"), 1);
    // The console says it is waiting on the provider, how often it asked and when it asks next.
    const { operatorBrowser } = await import("../fixtures/browser.ts");
    const page = await (await operatorBrowser(app)).get(`/admin/payments/${id}`);
    assert.match(page.text, /Asked the provider 1 time so far; next at [^<]+\. The operation log has each answer\./);

    app.sandbox.knobs.failureRate = 0;
    await sweepAt(app, 20 * 60_000);
    const after = (await getRefundEntry(app.kv, r.body.refund.id)).value!;
    assert.equal(after.status, "succeeded");
    assert.ok(after.providerRef);
    assert.equal((await getPayment(app, id)).refundedAmount, 250);
    assert.equal(await countScheduledJobs(app.kv, "refund"), 0);
    await shop.close();
  });
});

Deno.test("[refunds] a refund its provider still holds pending 6 hours after it was asked for (the stuck-refund alert's threshold) is named in a warning with its refundId and paymentId at each check, so the operator the alert pages can find it", async () => {
  await withApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const id = await paidPayment(app, null);
    // Bansky holds the refund pending for an hour of real time: every check finds it pending.
    Object.assign(app.sandbox.knobs, { asyncRefunds: true, webhookDelayMs: 3_600_000 });
    const r = await refund(app, id, {});
    assert.equal(r.body.refund.status, "pending");
    const named = (lines: string[]) =>
      lines.map((l) => JSON.parse(l)).filter((l) => l.level === "warn" && l.refundId === r.body.refund.id);
    // An hour on the provider still says pending: nothing for an operator yet (the alert waits 6 hours too).
    const early = await capturingWarnings(() => sweepAt(app, 3_600_000));
    assert.deepEqual(named(early), []);
    const late = await capturingWarnings(() => sweepAt(app, 7 * 3_600_000));
    assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "pending");
    const [warning] = named(late);
    assert.ok(warning, `a warning names the refund: ${late.join("\n")}`);
    assert.equal(warning.paymentId, id);
  });
});

/** Runs `fn` with the warnings and errors the app logs (console.error) captured, one line each. */
async function capturingWarnings(fn: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const saved = console.error;
  console.error = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    await fn();
    return lines;
  } finally {
    console.error = saved;
  }
}

Deno.test("[refunds] a refunded payment the provider still calls paid (an operator's re-check, a late webhook) keeps its refund status and amount: only its refunds move it back to succeeded", async () => {
  await withApp({ standaloneSandbox: true }, async (app) => {
    const ctx = app.server.ctx;
    for (const [amount, status] of [[400, "partially_refunded"], [1000, "refunded"]] as const) {
      const id = await paidPayment(app, null);
      assert.equal((await refund(app, id, { amount })).body.refund.status, "succeeded");
      assert.equal((await getPayment(app, id)).status, status);
      // Bansky still says the payment is paid, as Stripe says a refunded session is: no news about its refunds.
      assert.equal(await recheckPaymentStatus(ctx, id, { actor: "ops@example.com" }), "unchanged");
      const ref = (await getPaymentRecord(app.kv, id))!.providerRef!;
      const body = JSON.stringify({ eventId: `evt_late_${id}`, id, ref, status: "paid" });
      const ts = Math.floor(Date.now() / 1000);
      const late = await fetch(`${app.baseUrl}/api/payment-verify`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "bansky-signature": signBanskyWebhook(SANDBOX_SECRET, ts, body),
        },
        body,
      });
      assert.equal(late.status, 200, await late.text());
      const p = (await getPaymentRecord(app.kv, id))!;
      assert.deepEqual([p.status, p.refundedAmount], [status, amount]);
    }
  });
});

Deno.test("[refunds] a refund Bansky made is final: no re-check is planned and none asks Bansky later (Bansky does not reverse a refund)", async () => {
  await withApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const id = await paidPayment(app, null);
    const r = await refund(app, id, {});
    assert.equal(r.body.refund.status, "succeeded");
    const stored = (await getRefund(app.kv, r.body.refund.id))!;
    assert.ok(!stored.recheckAt, "no re-check planned");
    assert.equal(await countScheduledJobs(app.kv, "refund_recheck"), 0);
    const asked = app.sandbox.calls.refundStatus;
    for (const days of [1, 5, 10, 30]) await sweepAt(app, days * 86_400_000 + 60_000);
    assert.equal(app.sandbox.calls.refundStatus, asked);
    assert.deepEqual(await getRefund(app.kv, r.body.refund.id), stored);
  });
});

Deno.test("[refunds] a refund Bansky refuses outright (4xx: the payment's account now reaches another merchant) fails at once: its amount is free again, the shop gets refund.failed, and the operation log has Bansky's reason", async () => {
  const shop = startShopReceiver();
  const orgA = { apiToken: "token-org-a", webhookSecret: "whsec-org-a" };
  await withApp({ standaloneSandbox: true, merchants: { orgA }, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const ctx = app.server.ctx;
    const account = await createAccount(ctx, {
      provider: "bansky",
      label: "Bansky org A",
      orgId: "891027350515",
      credentials: { apiUrl: app.sandboxUrl, ...orgA },
    }, { actor: "test" });
    await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: account.id }, { actor: "test" });
    const id = await paidPayment(app, shop.url);
    // The account's credentials now name another merchant, which does not know the payment: Bansky answers 404.
    const credentials = (token: { apiToken: string; webhookSecret: string }) => ({ apiUrl: app.sandboxUrl, ...token });
    const other = { apiToken: SANDBOX_TOKEN, webhookSecret: SANDBOX_SECRET };
    await rotateAccountCredentials(ctx, account.id, credentials(other), { actor: "test" });
    const r = await refund(app, id, { amount: 400 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.refund.status, "failed");
    assert.equal(r.body.refund.failureReason, "The provider refused the refund request.");
    assert.equal((await getRefundReservation(app.kv, id)).value, 0, "its amount is free again");
    assert.equal(await countScheduledJobs(app.kv, "refund"), 0, "no job asks again: the answer would be the same");
    const [failed] = await waitFor("refund.failed postback", () => {
      const got = verified(app, shop.received, "refund.failed");
      return got.length ? got : undefined;
    });
    assert.equal(failed.data.id, r.body.refund.id);
    const call = await waitFor(
      "the refused call logged",
      async () =>
        (await listOperations(app.kv, { shopId: app.shop.id, limit: 20 })).find((e) => e.operation === "refund"),
    );
    assert.equal(call.outcome, "error");
    assert.match(call.error!, /answered 404: not found$/);
    assert.ok(!call.error!.includes(SANDBOX_TOKEN), "never our token");

    // With the right credentials back, all of it can be refunded.
    await rotateAccountCredentials(ctx, account.id, credentials(orgA), { actor: "test" });
    const again = await refund(app, id, {});
    assert.equal(again.body.refund.amount, 1000);
    assert.equal(again.body.refund.status, "succeeded");
  });
  await shop.close();
});

Deno.test("[refunds] a 'failed' from the provider for a refund that succeeded, however it is read (a webhook, a status check), reverses it: the payment's refundedAmount and status go back down, the amount is free again, the stats take it back, the shop gets refund.failed and the timeline shows both", async () => {
  const shop = startShopReceiver();
  await withApp({ standaloneSandbox: true }, async (app) => {
    const id = await paidPayment(app, shop.url);
    assert.equal((await refund(app, id, { amount: 300 })).body.refund.status, "succeeded");
    const reversed = await refund(app, id, {});
    assert.equal(reversed.body.refund.status, "succeeded");
    assert.equal((await getPayment(app, id)).status, "refunded");
    await waitFor("the payment's and two refunds' postbacks", () => (shop.received.length === 3 ? true : undefined));
    const ref = (await getRefund(app.kv, reversed.body.refund.id))!.providerRef!;

    // What the refund job or a webhook's confirmation hands over when the provider now says the refund failed.
    const after = await applyRefundResult(app.server.ctx, reversed.body.refund.id, { ref, status: "failed" });
    assert.equal(after.status, "failed");
    assert.match(after.failureReason!, /reversed the refund after it had succeeded/);
    const p = await getPayment(app, id);
    assert.deepEqual([p.status, p.refundedAmount], ["partially_refunded", 300]);
    assert.equal((await getRefundReservation(app.kv, id)).value, 300);
    const [postback] = await waitFor("refund.failed postback", () => {
      const got = verified(app, shop.received, "refund.failed");
      return got.length ? got : undefined;
    });
    assert.equal(postback.data.id, reversed.body.refund.id);
    assert.equal(postback.data.status, "failed");
    assert.deepEqual(postback.data.payment, {
      id,
      shopTxId: p.shopTxId,
      status: "partially_refunded",
      amount: 1000,
      refundedAmount: 300,
    });
    RefundPostbackBody.strict().parse(postback);
    // A move back within the paid statuses is no new success: no second payment.succeeded.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(verified(app, shop.received, "payment.succeeded").length, 1);

    // Asked again (a duplicate webhook, another check), nothing changes.
    assert.equal(
      (await applyRefundResult(app.server.ctx, reversed.body.refund.id, { ref, status: "failed" })).status,
      "failed",
    );
    assert.equal(
      (await applyRefundResult(app.server.ctx, reversed.body.refund.id, { ref, status: "succeeded" })).status,
      "failed",
    );
    assert.equal((await getPayment(app, id)).refundedAmount, 300);

    const today = utcDay(Date.now());
    const stats = (await readStats(app.kv, today, today, app.shop.id)).find((s) => s.status === "refund")!;
    assert.deepEqual([stats.count, stats.amount], [1, 300], "only the refund that stands is counted");
    const types = (await listActivity(app.kv, { limit: 1000 })).flatMap(({ ref }) =>
      ref.kind === "event" && ref.paymentId === id && ref.event?.data.refundId === reversed.body.refund.id
        ? [ref.event!.type]
        : []
    );
    assert.deepEqual(types.sort(), ["refund_failed", "refund_requested", "refund_succeeded"]);
    const { operatorBrowser } = await import("../fixtures/browser.ts");
    const page = await (await operatorBrowser(app)).get(`/admin/payments/${id}`);
    assert.match(page.text, /refund succeeded/);
    assert.match(page.text, /refund failed.*reversed: true/);
    assert.match(page.text, /status changed.*from: refunded, to: partially_refunded/);
  });
  await shop.close();
});

Deno.test("[refunds] concurrent refunds of one payment from two app instances on one store never exceed the payment or disagree with the provider", async () => {
  const kvPath = await Deno.makeTempFile({ suffix: ".kv" });
  const a = await startTestApp({ standaloneSandbox: true, kvPath, env: { JOBS_QUEUE: "off" } });
  const b = await startTestApp({
    kvPath,
    env: {
      JOBS_QUEUE: "off",
      BANSKY_API_URL: a.sandboxUrl,
      BANSKY_API_TOKEN: SANDBOX_TOKEN,
      BANSKY_WEBHOOK_SECRET: SANDBOX_SECRET,
    },
  });
  try {
    const id = await paidPayment(a, null);
    const shots = Array.from(
      { length: 60 },
      (_, i) => api(i % 2 ? b : a, "POST", `/payments/${id}/refunds`, { amount: 37 }, { key: a.shop.apiKey }),
    );
    const answers = await Promise.all(shots);
    const byStatus: Record<number, number> = {};
    for (const r of answers) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    const accepted = answers.filter((r) => r.status === 201);
    const refunds = await listRefundsByPayment(a.kv, id);
    const p = (await getPaymentRecord(a.kv, id))!;
    assert.ok(accepted.length * 37 <= 1000);
    assert.equal(refunds.length, accepted.length, "every stored refund was answered 201 (none hidden behind an error)");
    assert.equal(p.refundedAmount, refunds.filter((r) => r.status === "succeeded").reduce((n, r) => n + r.amount, 0));
    assert.equal(
      (await getRefundReservation(a.kv, id)).value,
      refunds.reduce((n, r) => n + (r.status === "failed" ? 0 : r.amount), 0),
    );
    assert.equal(a.sandbox.calls.refund >= accepted.length, true);
    assert.ok(answers.every((r) => r.status === 201 || r.status === 422 || r.status === 409), JSON.stringify(byStatus));
  } finally {
    await b.close();
    await a.close();
    await Deno.remove(kvPath).catch(() => {});
  }
});

Deno.test("[refunds] a provider that answers after our timeout: the refund stays pending, and the job's retry (same refund id) finds the one refund, never a second", async () => {
  await withApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const id = await paidPayment(app, null);
    app.sandbox.knobs.latencyMs = 2600; // PROVIDER_TIMEOUT_MS is 2000 in tests: we give up, Bansky goes on
    const r = await refund(app, id, { amount: 400 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.refund.status, "pending");
    await new Promise((res) => setTimeout(res, 1000)); // Bansky made the refund meanwhile
    app.sandbox.knobs.latencyMs = 0;
    await sweepAt(app, 120_000);
    assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "succeeded");
    assert.equal((await getPayment(app, id)).refundedAmount, 400);
    // The sandbox's own ledger: 400 refunded, once (a second refund would have made it 800).
    const rest = await refund(app, id, {});
    assert.equal(rest.body.refund.amount, 600);
    assert.equal(rest.body.refund.status, "succeeded", "Bansky agrees 600 is what is left");
  });
});

Deno.test("[refunds] a crash between the provider's answer and our commit: the job asks again with the same refund id and records the one refund", async () => {
  await withApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const id = await paidPayment(app, null);
    const p = (await getPaymentRecord(app.kv, id))!;
    const now = Date.now();
    // What createRefund stores before it calls the provider (the process then dies after the call).
    const stored: Refund = {
      id: `re_crash${crypto.randomUUID().replaceAll("-", "").slice(0, 14)}`,
      seq: sortableId(now),
      paymentId: id,
      shopId: p.shopId,
      shopRefundId: null,
      idempotencyKey: null,
      requestHash: "x",
      amount: 700,
      currency: p.currency,
      reason: null,
      status: "pending",
      providerRef: null,
      failureReason: null,
      requestedBy: "api",
      checks: 0,
      nextCheckAt: now + 60_000,
      createdAt: now,
      updatedAt: now,
      settledAt: null,
    };
    const reservation = await getRefundReservation(app.kv, id);
    const jobs = { queue: false, now };
    assert.ok(await insertRefund(app.kv, { refund: stored, reservation, event: refundEvents(stored).requested, jobs }));
    const landed = await fetch(`${app.sandboxUrl}/payments/${p.providerRef}/refunds`, {
      method: "POST",
      headers: { authorization: `Bearer ${SANDBOX_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ id: stored.id, amount: 700 }),
    });
    assert.equal(landed.status, 201);
    await landed.body?.cancel();
    await sweepAt(app, 61_000);
    assert.equal((await getRefund(app.kv, stored.id))!.status, "succeeded");
    assert.equal((await getPayment(app, id)).refundedAmount, 700);
    const rest = await refund(app, id, {});
    assert.equal(rest.body.refund.amount, 300);
    assert.equal(rest.body.refund.status, "succeeded");
  });
});

Deno.test("[refunds] an operator refunds from the payment's page after a confirmation step; CSV, stats, timeline and audit show it", async () => {
  const { operatorBrowser, Browser } = await import("../fixtures/browser.ts");
  const shop = startShopReceiver();
  await withApp({}, async (app) => {
    const id = await paidPayment(app, shop.url);
    const b = await operatorBrowser(app);
    const page = await b.get(`/admin/payments/${id}`);
    assert.match(page.text, new RegExp(`action="/admin/payments/${id}/refund"`), "the refund form is offered");
    assert.match(page.text, /name="amount"[^>]*value="10.00"/, "prefilled with what is left");

    // A bad amount says why and refunds nothing.
    const bad = await b.post(`/admin/payments/${id}/refund`, { amount: "1.234", reason: "" });
    assert.equal(bad.status, 422);
    assert.match(bad.text, /Give the amount in EUR/);

    await b.get(`/admin/payments/${id}`);
    const confirm = await b.post(`/admin/payments/${id}/refund`, { amount: "3.5", reason: "damaged" });
    assert.equal(confirm.status, 200);
    assert.match(confirm.text, /Refund <strong>3.50 EUR<\/strong>/);
    assert.equal(
      (await api(app, "GET", `/payments/${id}/refunds`)).body.refunds.length,
      0,
      "nothing before confirming",
    );

    // Without the CSRF token the confirmation is refused.
    const forged = new Browser(app);
    forged.cookies = new Map(b.cookies);
    const token = confirm.text.match(/name="token" value="([^"]+)"/)![1];
    const fields = { amount: "350", reason: "damaged", token };
    assert.equal((await forged.post(`/admin/payments/${id}/refund/confirm`, fields, { csrf: "nope" })).status, 403);

    const done = await b.post(`/admin/payments/${id}/refund/confirm`, fields);
    assert.equal(done.status, 303);
    assert.match(done.location!, /done=refund-succeeded/);
    // A double submit (same confirmation page) answers the same refund.
    assert.equal((await b.post(`/admin/payments/${id}/refund/confirm`, fields)).status, 303);
    const refunds = (await api(app, "GET", `/payments/${id}/refunds`)).body.refunds;
    assert.equal(refunds.length, 1);
    assert.equal(refunds[0].amount, 350);
    assert.equal(refunds[0].reason, "damaged");

    const after = await b.get(`/admin/payments/${id}?done=refund-succeeded`);
    assert.match(after.text, /Refunded\./);
    assert.match(after.text, /<dt>Refunded<\/dt><dd>3.50 EUR<\/dd>/);
    assert.match(after.text, /refund requested/);
    assert.match(after.text, /refund succeeded/);
    // Those entries are made from the refund record: the payment's event list stores no copy (fewer keys per
    // refund), and the activity log, which feeds BigQuery, has both.
    const stored: string[] = [];
    for await (const e of app.kv.list<{ type: string }>({ prefix: ["payment_events", id] })) stored.push(e.value.type);
    assert.deepEqual(stored.filter((t) => t.startsWith("refund_")), []);
    const activity = await listActivity(app.kv, { limit: 1000 });
    const exported = activity.flatMap(({ ref }) =>
      ref.kind === "event" && ref.paymentId === id && ref.event?.data.refundId === refunds[0].id
        ? [ref.event!.type]
        : []
    );
    assert.deepEqual(exported.sort(), ["refund_requested", "refund_succeeded"]);
    assert.match(after.text, /ops@example.com/, "who refunded is shown");

    const tooMuch = await b.post(`/admin/payments/${id}/refund/confirm`, { amount: "700", token: "rfk_other" });
    assert.equal(tooMuch.status, 422);
    assert.match(tooMuch.text, /Not refunded: Only 6.50 EUR/);

    const csv = await b.get(`/admin/payments.csv`);
    const [header, row] = csv.text.trim().split("\r\n");
    assert.ok(header.split(",").includes('"refundedAmount"') || header.split(",").includes("refundedAmount"));
    assert.ok(row.endsWith('"350"'), row);

    const overview = await b.get("/admin");
    assert.match(overview.text, /<dt>Refunds<\/dt><dd>1 \(3.50 EUR\)<\/dd>/);

    const audit = await b.get("/admin/audit?q=payment.refund");
    assert.match(audit.text, /payment\.refund/);
  });
  await shop.close();
});

Deno.test({
  name: "[refunds] the BigQuery export gives refunds rows of their own and the payment its refunded amount",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { createServiceAccount, startBigQueryFake } = await import("../fixtures/bigquery_fake.ts");
    const { analyticsStatus } = await import("../lib/analytics/mod.ts");
    const { listActivity } = await import("../lib/db/activity.ts");
    const account = await createServiceAccount();
    const fake = startBigQueryFake(account);
    const shop = startShopReceiver();
    const app = await startTestApp({
      env: {
        BIGQUERY_PROJECT: "test-project",
        BIGQUERY_DATASET: "aimbrella_test",
        BIGQUERY_LOCATION: "EU",
        BIGQUERY_CREDENTIALS: account.json,
        BIGQUERY_API_ENDPOINT: fake.url,
        BIGQUERY_TIMEOUT_MS: "400",
        ANALYTICS_INTERVAL_MS: "40",
        ANALYTICS_SETTLE_MS: "0",
      },
    });
    try {
      await app.server.ctx.analytics!.sink.setup();
      const id = await paidPayment(app, shop.url);
      const r = await refund(app, id, { amount: 300, reason: "one item" });
      assert.equal(r.body.refund.status, "succeeded");
      await waitFor("the export to catch up", async () => {
        // Provider calls are activity entries too; they become provider_operations rows, not payment_events.
        const entries = (await listActivity(app.kv, { limit: 100_000 })).filter((e) => e.ref.kind !== "operation");
        const status = await analyticsStatus(app.server.ctx);
        const rows = fake.tables.size ? fake.table("payment_events").rows.size : 0;
        return status.backlog === 0 && rows === entries.length ? true : undefined;
      });
      const events = [...fake.table("payment_events").rows.values()].filter((e) => e.payment_id === id);
      const refundRows = events.filter((e) => String(e.type).startsWith("refund_"));
      assert.deepEqual(
        refundRows.map((e) => [e.type, e.refund_id, e.amount]),
        [["refund_requested", r.body.refund.id, 300], ["refund_succeeded", r.body.refund.id, 300]],
      );
      assert.ok(events.filter((e) => !String(e.type).startsWith("refund_")).every((e) => e.refund_id === null));
      const payments = [...fake.table("payments").rows.values()].filter((p) => p.id === id);
      const latest = payments.reduce((a, b) => (String(b.updated_at) > String(a.updated_at) ? b : a));
      assert.equal(latest.status, "partially_refunded");
      assert.equal(latest.refunded_amount, 300);
    } finally {
      await app.close();
      await fake.close();
      await shop.close();
    }
  },
});

Deno.test("[refunds] a refund's postback is born leased to the process that settles it and sent without a claim", async () => {
  const shop = startShopReceiver();
  await withApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("the payment's postback", () => (shop.received.length === 1 ? true : undefined));
    // Every write of a delivery record from here: the refund postback's creation and its outcome, no claim between.
    const recorded = recordDeliveryWrites(app.kv);
    const res = await refund(app, id, { amount: 300 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await waitFor("the refund's postback", () => (shop.received.length === 2 ? true : undefined));
    await waitFor("its outcome", () => (recorded.writes.includes("delivered") ? true : undefined));
    recorded.stop();
    assert.equal(verified(app, shop.received, "refund.succeeded").length, 1);
    assert.deepEqual(recorded.writes, ["pending", "delivered"]);
  });
  await shop.close();
});

Deno.test("[refunds] a refund Bansky made whose answer was lost is not failed when the job's retry is refused (404: the account's credentials changed merchant meanwhile): the buyer has the money", async () => {
  const orgA = { apiToken: "token-org-a", webhookSecret: "whsec-org-a" };
  await withApp({ standaloneSandbox: true, merchants: { orgA }, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const ctx = app.server.ctx;
    const account = await createAccount(ctx, {
      provider: "bansky",
      label: "Bansky org A",
      orgId: "891027350515",
      credentials: { apiUrl: app.sandboxUrl, ...orgA },
    }, { actor: "test" });
    await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: account.id }, { actor: "test" });
    const id = await paidPayment(app, null);
    app.sandbox.knobs.latencyMs = 2600; // PROVIDER_TIMEOUT_MS is 2000 in tests: we give up, Bansky goes on
    const r = await refund(app, id, { amount: 400 });
    assert.equal(r.body.refund.status, "pending");
    await new Promise((res) => setTimeout(res, 1000)); // Bansky made the refund meanwhile
    app.sandbox.knobs.latencyMs = 0;
    // An operator rotates the account's credentials to another merchant's (by mistake, or the merchant moved).
    const credentials = (token: { apiToken: string; webhookSecret: string }) => ({ apiUrl: app.sandboxUrl, ...token });
    await rotateAccountCredentials(
      ctx,
      account.id,
      credentials({ apiToken: SANDBOX_TOKEN, webhookSecret: SANDBOX_SECRET }),
      {
        actor: "test",
      },
    );
    await sweepAt(app, 120_000);
    const after = (await getRefund(app.kv, r.body.refund.id))!;
    // Bansky refunded 400 to the buyer: a refused *retry* says nothing about whether the first call made it.
    assert.notEqual(after.status, "failed", `refund ${after.status}: ${after.failureReason}`);
  });
});

Deno.test("[refunds] docs/bigquery/README.md's refunded volume over the exported rows agrees with refunded_amount after a reversed refund", async () => {
  const { eventRow } = await import("../lib/analytics/rows.ts");
  await withApp({ standaloneSandbox: true }, async (app) => {
    const id = await paidPayment(app, null);
    assert.equal((await refund(app, id, { amount: 300 })).body.refund.status, "succeeded");
    const reversed = await refund(app, id, {});
    const ref = (await getRefund(app.kv, reversed.body.refund.id))!.providerRef!;
    await applyRefundResult(app.server.ctx, reversed.body.refund.id, { ref, status: "failed" });
    const p = await getPayment(app, id);
    assert.equal(p.refundedAmount, 300);
    // The rows the export makes of the payment's events, as payment_events_unique holds them.
    const rows = (await listActivity(app.kv, { limit: 1000 })).flatMap(({ seq, ref }) =>
      ref.kind === "event" && ref.paymentId === id && ref.event
        ? [eventRow({ activitySeq: seq, paymentId: id, shopId: app.shop.id }, seq, ref.event).json]
        : []
    );
    // The README's query, as it reads: succeeded refunds, less those a refund_failed row marks reversed.
    const readme = await Deno.readTextFile(new URL("../docs/bigquery/README.md", import.meta.url));
    assert.match(readme, /SUM\(IF\(type = 'refund_succeeded', amount, -amount\)\)/);
    assert.match(readme, /type = 'refund_failed' AND JSON_VALUE\(data, '\$\.reversed'\) = 'true'/);
    const reversedRow = (r: Record<string, unknown>) =>
      r.type === "refund_failed" && JSON.parse(String(r.data ?? "{}")).reversed === true;
    const documented = rows.reduce(
      (n, r) => n + (r.type === "refund_succeeded" ? Number(r.amount) : reversedRow(r) ? -Number(r.amount) : 0),
      0,
    );
    assert.equal(documented, p.refundedAmount);
  });
});

/** A paid payment with one refund its provider holds pending for an hour of real time (every check finds it so). */
async function stuckRefund(app: TestApp, postbackUrl: string | null, amount = 400) {
  const id = await paidPayment(app, postbackUrl);
  Object.assign(app.sandbox.knobs, { asyncRefunds: true, webhookDelayMs: 3_600_000 });
  const r = await refund(app, id, { amount, id: `rf-${crypto.randomUUID()}` });
  assert.equal(r.body.refund.status, "pending", JSON.stringify(r.body));
  Object.assign(app.sandbox.knobs, { asyncRefunds: false, webhookDelayMs: 0 });
  return {
    paymentId: id,
    refundId: r.body.refund.id as string,
    settle: `/admin/payments/${id}/refunds/${r.body.refund.id}/settle`,
  };
}

Deno.test("[refunds] an operator settles a refund stuck at its provider as not made, from the payment's page after a question: its amount is free again, the shop gets refund.failed saying an operator recorded it, and the audit log has who and their note, in the same write", async () => {
  const { operatorBrowser, portalBrowser, Browser } = await import("../fixtures/browser.ts");
  const shop = startShopReceiver();
  await withApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const { paymentId: id, refundId, settle } = await stuckRefund(app, shop.url);
    const b = await operatorBrowser(app);
    const page = await b.get(`/admin/payments/${id}`);
    assert.match(page.text, new RegExp(`<form method="post" action="${settle}"[^>]*data-busy="Recording…"`));
    assert.match(
      page.text,
      /data-confirm="Record this for refund re_[^"]+ of 4.00 EUR\? \{outcome\}\. Note: “\{note\}”/,
    );
    const note = "Bansky support confirmed no refund on 2026-11-30";

    // Without the page's script the question comes as a page of its own; nothing changes before it is answered.
    const asked = await b.post(settle, { outcome: "failed", note });
    assert.equal(asked.status, 200);
    assert.match(asked.text, /Please confirm/);
    assert.match(
      asked.text,
      new RegExp(`Record this for refund ${refundId} of 4.00 EUR\\? The provider made no refund`),
    );
    assert.match(asked.text, /name="confirm" value="yes"/);
    assert.equal((await getRefund(app.kv, refundId))!.status, "pending");

    // No outcome, or no note: said on the page, nothing recorded.
    await b.get(`/admin/payments/${id}`);
    const noNote = await b.post(settle, { outcome: "failed", note: "  ", confirm: "yes" });
    assert.equal(noNote.status, 422);
    assert.match(
      noNote.text,
      /Not recorded: Choose what the provider did with the refund, and say in the note how you know/,
    );
    const noOutcome = await b.post(settle, { outcome: "maybe", note, confirm: "yes" });
    assert.equal(noOutcome.status, 422);
    // Without the CSRF token it is refused.
    const forged = new Browser(app);
    forged.cookies = new Map(b.cookies);
    assert.equal(
      (await forged.post(settle, { outcome: "failed", note, confirm: "yes" }, { csrf: "nope" })).status,
      403,
    );
    assert.equal((await getRefund(app.kv, refundId))!.status, "pending");
    assert.deepEqual(await searchAudit(app.kv, { query: "refund.settle", limit: 10 }), []);

    const done = await b.post(settle, { outcome: "failed", note, confirm: "yes" });
    assert.equal(done.status, 303, done.text);
    assert.equal(done.location, `/admin/payments/${id}?done=settled-failed`);
    const after = (await getRefund(app.kv, refundId))!;
    assert.equal(after.status, "failed");
    assert.equal(
      after.failureReason,
      "An operator recorded, after checking with the provider, that the provider made no refund.",
    );
    assert.deepEqual(after.settledBy, { actor: "ops@example.com", note });
    assert.equal((await getRefundReservation(app.kv, id)).value, 0, "its amount is free again");
    assert.equal(await countScheduledJobs(app.kv, "refund"), 0, "no check is left: the stuck-refund gauge clears");
    const p = await getPayment(app, id);
    assert.equal(p.status, "succeeded");
    assert.equal(p.refundedAmount, 0);

    // The shop hears as from the provider: refund.failed, with the reason; never the operator or their note.
    const [failed] = await waitFor("refund.failed postback", () => {
      const got = verified(app, shop.received, "refund.failed");
      return got.length ? got : undefined;
    });
    RefundPostbackBody.parse(failed);
    assert.equal(failed.data.id, refundId);
    assert.equal(failed.data.failureReason, after.failureReason);
    assert.doesNotMatch(JSON.stringify(failed), /ops@example\.com|Bansky support/);
    const listed = (await api(app, "GET", `/payments/${id}/refunds`)).body.refunds[0];
    assert.equal(listed.status, "failed");
    assert.doesNotMatch(JSON.stringify(listed), /ops@example\.com|Bansky support/);
    // Nor does the shop's portal: its payment page says "AimbrellaPay" where the console names the operator.
    const staff = await portalBrowser(app);
    const portalPage = await staff.get(`/portal/payments/${id}`);
    assert.equal(portalPage.status, 200);
    assert.match(
      portalPage.text,
      /refund failed<\/strong> <span class="muted">refundId: re_[^,]+, amount: 400, by: AimbrellaPay/,
    );
    assert.doesNotMatch(portalPage.text, /ops@example\.com|Bansky support/);

    // One audit entry: who, which refund, from pending to failed, and the note.
    const audit = await searchAudit(app.kv, { query: "refund.settle", limit: 10 });
    assert.equal(audit.length, 1);
    assert.deepEqual(
      { actor: audit[0].actor, target: audit[0].target, before: audit[0].before, after: audit[0].after },
      {
        actor: "ops@example.com",
        target: id,
        before: { status: "pending" },
        after: { refund: refundId, status: "failed", note },
      },
    );
    const auditPage = await b.get("/admin/audit?q=refund.settle");
    assert.match(auditPage.text, /settled by hand, after checking with the provider, a refund of/);

    const shown = await b.get(`/admin/payments/${id}?done=settled-failed`);
    assert.match(shown.text, /Recorded: the refund failed, its amount can be refunded again; the shop is told\./);
    assert.match(shown.text, new RegExp(`Recorded by hand by ops@example.com: ${note}`));
    assert.match(
      shown.text,
      /refund failed<\/strong> <span class="muted">refundId: re_[^,]+, amount: 400, by: ops@example.com/,
    );
    assert.doesNotMatch(shown.text, new RegExp(`action="${settle}"`), "no form for a refund that is not pending");

    // Sent again (a second tab, a reload): refused, saying how it settled; nothing more is written or sent.
    const again = await b.post(settle, { outcome: "succeeded", note: "second try", confirm: "yes" });
    assert.equal(again.status, 422);
    assert.match(
      again.text,
      /Not recorded: This refund is not pending any more: it failed at [0-9-]+ [0-9:]+ UTC, recorded by ops@example.com \(&quot;Bansky support confirmed no refund on 2026-11-30&quot;\)\. Nothing was recorded or changed\./,
    );
    assert.equal((await searchAudit(app.kv, { query: "refund.settle", limit: 10 })).length, 1);
    assert.equal((await getRefund(app.kv, refundId))!.status, "failed");
  });
  await shop.close();
});

Deno.test("[refunds] an operator settles a refund stuck at its provider as made: the payment's refundedAmount and status move as for any success, the shop gets refund.succeeded, the stats count it", async () => {
  const { operatorBrowser } = await import("../fixtures/browser.ts");
  const shop = startShopReceiver();
  await withApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const { paymentId: id, refundId, settle } = await stuckRefund(app, shop.url);
    const b = await operatorBrowser(app);
    await b.get(`/admin/payments/${id}`);
    const note = "Seen as refunded in the Bansky dashboard on 2026-11-30";
    const done = await b.post(settle, { outcome: "succeeded", note, confirm: "yes" });
    assert.equal(done.status, 303, done.text);
    assert.equal(done.location, `/admin/payments/${id}?done=settled-succeeded`);
    const after = (await getRefund(app.kv, refundId))!;
    assert.equal(after.status, "succeeded");
    assert.equal(after.failureReason, null);
    assert.equal(after.recheckAt ?? null, null, "Bansky does not reverse a refund: no re-check");
    const p = await getPayment(app, id);
    assert.equal(p.status, "partially_refunded");
    assert.equal(p.refundedAmount, 400);
    assert.equal((await getRefundReservation(app.kv, id)).value, 400);
    const today = utcDay(Date.now());
    const stats = (await readStats(app.kv, today, today, app.shop.id)).find((s) => s.status === "refund")!;
    assert.deepEqual([stats.count, stats.amount], [1, 400], "counted as any refund that succeeded");
    const [succeeded] = await waitFor("refund.succeeded postback", () => {
      const got = verified(app, shop.received, "refund.succeeded");
      return got.length ? got : undefined;
    });
    RefundPostbackBody.parse(succeeded);
    assert.equal(succeeded.data.id, refundId);
    assert.deepEqual(
      (succeeded.data.payment as { status: string; refundedAmount: number }).status,
      "partially_refunded",
    );
    assert.equal((succeeded.data.payment as { refundedAmount: number }).refundedAmount, 400);
    const [entry] = await searchAudit(app.kv, { query: refundId, limit: 10 });
    assert.deepEqual(entry.after, { refund: refundId, status: "succeeded", note });
    const shown = await b.get(`/admin/payments/${id}?done=settled-succeeded`);
    assert.match(shown.text, /Recorded: the refund succeeded; the shop is told\./);
  });
  await shop.close();
});

Deno.test("[refunds] an operator's record loses to the provider's answer that settles the refund while it is written: nothing of it is stored, the shop hears only the provider's outcome, and the page says how the refund settled", async () => {
  const { operatorBrowser } = await import("../fixtures/browser.ts");
  const shop = startShopReceiver();
  await withApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const { paymentId: id, refundId, settle } = await stuckRefund(app, shop.url);
    const ctx = app.server.ctx;
    const ref = (await getRefund(app.kv, refundId))!.providerRef;
    const b = await operatorBrowser(app);
    await b.get(`/admin/payments/${id}`);
    // The provider's webhook lands between the operator's read and their commit: the commit finds the refund changed.
    const atomic = app.kv.atomic.bind(app.kv);
    let raced = false;
    app.kv.atomic = () => {
      const op = atomic();
      const set = op.set.bind(op);
      const commit = op.commit.bind(op);
      let recording = false;
      op.set = (key, value, options) => {
        if (key[0] === "audit" && (value as { action?: string }).action === "refund.settle") recording = true;
        return set(key, value, options);
      };
      op.commit = async () => {
        if (recording && !raced) {
          raced = true;
          app.kv.atomic = atomic;
          await applyRefundResult(ctx, refundId, { ref, status: "succeeded" });
        }
        return await commit();
      };
      return op;
    };
    let res;
    try {
      res = await b.post(settle, { outcome: "failed", note: "Bansky support said no refund", confirm: "yes" });
    } finally {
      app.kv.atomic = atomic;
    }
    assert.ok(raced, "the provider's answer came during the operator's write");
    assert.equal(res.status, 422);
    assert.match(
      res.text,
      /Not recorded: This refund is not pending any more: it succeeded at [0-9-]+ [0-9:]+ UTC, by the provider's own answer\. Nothing was recorded or changed\./,
    );
    const after = (await getRefund(app.kv, refundId))!;
    assert.equal(after.status, "succeeded");
    assert.equal(after.settledBy, undefined);
    assert.equal((await getPayment(app, id)).refundedAmount, 400);
    assert.deepEqual(await searchAudit(app.kv, { query: "refund.settle", limit: 10 }), []);
    await waitFor("refund.succeeded postback", () => verified(app, shop.received, "refund.succeeded")[0]);
    assert.deepEqual(verified(app, shop.received, "refund.failed"), []);
  });
  await shop.close();
});

Deno.test("[refunds] a provider's webhook that says otherwise than an operator's record leaves the record as it is (the shop was told) and warns, naming the refund and who recorded it", async () => {
  const shop = startShopReceiver();
  await withApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const { paymentId: id, refundId } = await stuckRefund(app, shop.url);
    const ctx = app.server.ctx;
    const { settleRefundByHand } = await import("../lib/refunds/admin.ts");
    const { handleRefundWebhook } = await import("../lib/refunds/settle.ts");
    await settleRefundByHand(ctx, id, refundId, { outcome: "failed", note: "Bansky support: no refund" }, {
      actor: "ops@example.com",
    });
    const ref = (await getRefund(app.kv, refundId))!.providerRef!;
    const notice = { kind: "refund" as const, eventId: "evt_late", refundId, ref, claimedStatus: "succeeded" as const };
    let outcome = "";
    const lines = await capturingWarnings(async () => {
      outcome = await handleRefundWebhook(ctx, notice, "default");
    });
    assert.equal(outcome, "duplicate");
    assert.equal((await getRefund(app.kv, refundId))!.status, "failed");
    const [warning] = lines.map((l) => JSON.parse(l)).filter((l) => l.level === "error" && l.refundId === refundId);
    assert.ok(warning, lines.join("\n"));
    assert.deepEqual([warning.paymentId, warning.recorded, warning.recordedBy, warning.claimed, warning.by], [
      id,
      "failed",
      "ops@example.com",
      "succeeded",
      "webhook",
    ]);
  });
  await shop.close();
});

Deno.test("[refunds] a provider's answer to a check under way when an operator recorded the refund as not made, saying it was made, leaves the record as it is and logs the error a webhook's would", async () => {
  const shop = startShopReceiver();
  await withApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } }, async (app) => {
    const { paymentId: id, refundId } = await stuckRefund(app, shop.url);
    const ctx = app.server.ctx;
    const { settleRefundByHand } = await import("../lib/refunds/admin.ts");
    const ref = (await getRefund(app.kv, refundId))!.providerRef!;
    // The job's check asked the provider just before the operator's record; its answer comes after it.
    await settleRefundByHand(ctx, id, refundId, { outcome: "failed", note: "Bansky support: no refund" }, {
      actor: "ops@example.com",
    });
    const lines = await capturingWarnings(() => applyRefundResult(ctx, refundId, { ref, status: "succeeded" }));
    const after = (await getRefund(app.kv, refundId))!;
    assert.equal(after.status, "failed", "the operator's record stands: the shop was told");
    assert.equal((await getRefundReservation(app.kv, id)).value, 0);
    const [error] = lines.map((l) => JSON.parse(l)).filter((l) => l.level === "error" && l.refundId === refundId);
    assert.ok(error, `an error names the refund: ${lines.join("\n")}`);
    assert.equal(error.msg, "provider disagrees with the outcome an operator recorded for a refund: check it there");
    assert.deepEqual([error.paymentId, error.recorded, error.recordedBy, error.claimed, error.by], [
      id,
      "failed",
      "ops@example.com",
      "succeeded",
      "answer",
    ]);

    // An answer that agrees, or says it is still pending, is no news: nothing is logged.
    for (const status of ["failed", "pending"] as const) {
      const quiet = await capturingWarnings(() => applyRefundResult(ctx, refundId, { ref, status }));
      assert.deepEqual(quiet.filter((l) => JSON.parse(l).level === "error"), [], status);
    }
  });
  await shop.close();
});
