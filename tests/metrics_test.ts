/**
 * GET /metrics: off without METRICS_TOKEN, bearer-protected with it, and what
 * it counts, checked by Prometheus's own `promtool check metrics`.
 */
import assert from "node:assert/strict";
import { runBackfill } from "../lib/backfills/run.ts";
import { deleteBackfillState } from "../lib/db/backfills.ts";
import { scheduleJob } from "../lib/db/jobs.ts";
import {
  commitRefundUpdate,
  getRefund,
  getRefundEntry,
  getRefundReservation,
  insertRefund,
  readPendingRefunds,
} from "../lib/db/refunds.ts";
import { sequentialId, sortableId } from "../lib/ids.ts";
import { PENDING_REFUNDS_CAP } from "../lib/metrics.ts";
import { settleRefundByHand } from "../lib/refunds/admin.ts";
import { pendingRefundIndexBackfill } from "../lib/refunds/backfill.ts";
import type { Refund } from "../lib/refunds/types.ts";
import { refundEvents } from "../lib/refunds/view.ts";
import {
  buyerSettles,
  callInit,
  metricSample as sample,
  paymentBody,
  startShopReceiver,
  startTestApp,
  sweepAt,
  type TestApp,
  waitFor,
} from "../fixtures/app.ts";
import { createServiceAccount, startBigQueryFake } from "../fixtures/bigquery_fake.ts";

const TOKEN = "metrics-token-for-tests-0123456789";

async function scrape(app: TestApp, token = TOKEN) {
  const res = await fetch(`${app.baseUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Runs `promtool check metrics` on the text; returns what it printed (empty when it found nothing wrong). */
async function promtool(text: string): Promise<{ ok: boolean; output: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { ok: out.success, output: (dec.decode(out.stdout) + dec.decode(out.stderr)).trim() };
}

Deno.test("[metrics] without METRICS_TOKEN the route is off: /metrics answers 404", async () => {
  const app = await startTestApp();
  try {
    assert.equal(app.server.ctx.metrics, undefined);
    const res = await scrape(app);
    assert.equal(res.status, 404);
    assert.doesNotMatch(res.text, /aimbrellapay_/);
  } finally {
    await app.close();
  }
});

Deno.test("[metrics] a missing or wrong bearer token gets 401 in the API's error shape", async () => {
  const app = await startTestApp({ env: { METRICS_TOKEN: TOKEN } });
  try {
    const none = await fetch(`${app.baseUrl}/metrics`);
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
    assert.deepEqual(await none.json(), {
      status: "error",
      error: { code: "unauthorized", message: "Missing or wrong metrics token." },
    });
    const wrong = await scrape(app, TOKEN.slice(0, -1) + "x");
    assert.equal(wrong.status, 401);
    assert.doesNotMatch(wrong.text, /aimbrellapay_/);
  } finally {
    await app.close();
  }
});

Deno.test("[metrics] counts requests by route pattern, provider calls and postback attempts; promtool accepts the output", async () => {
  const receiver = startShopReceiver((n) => new Response(n === 1 ? "busy" : "ok", { status: n === 1 ? 500 : 200 }));
  const app = await startTestApp({ env: { METRICS_TOKEN: TOKEN } });
  try {
    const init = await callInit(app, paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl: receiver.url }));
    assert.equal(init.status, 201);
    await buyerSettles(init.body.url, "paid");
    await waitFor("the postback delivered on the second attempt", () => receiver.received.length >= 2 || undefined);
    const missing = await fetch(`${app.baseUrl}/no/such/${crypto.randomUUID()}`);
    await missing.body?.cancel();
    const view = await fetch(`${app.baseUrl}/api/v1/payments/${init.body.id}`, {
      headers: { authorization: `Bearer ${app.shop.apiKey}` },
    });
    assert.equal(view.status, 200);
    await view.body?.cancel();
    const badKey = await callInit(app, paymentBody(), { key: "sk_wrong" });
    assert.equal(badKey.status, 401);
    const style = await fetch(`${app.baseUrl}/static/style.css`);
    await style.body?.cancel();

    const { status, headers, text } = await waitFor("the delivered attempt counted", async () => {
      const r = await scrape(app);
      return sample(r.text, "aimbrellapay_postback_attempts_total", { outcome: "delivered" }) === 1 ? r : undefined;
    });
    assert.equal(status, 200);
    assert.match(headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const check = await promtool(text);
    assert.ok(check.ok, `promtool check metrics: ${check.output}`);
    assert.equal(check.output, "", "promtool found nothing to lint");

    const requests = "aimbrellapay_http_requests_total";
    assert.equal(sample(text, requests, { route: "/api/v1/init-payment", status: "201" }), 1);
    assert.equal(sample(text, requests, { route: "/api/v1/init-payment", status: "401" }), 1);
    assert.equal(sample(text, requests, { route: "unmatched", status: "404" }), 1);
    assert.equal(sample(text, requests, { route: "/integration/pay", status: "302" }), 1);
    assert.equal(sample(text, requests, { route: "/api/v1/payments/:id", status: "200" }), 1);
    // A parameter's regular expression stays out of the label (the route is /static/:name{[a-z0-9_.-]+}).
    assert.equal(sample(text, requests, { route: "/static/:name", status: "200" }), 1);
    assert.ok(!/route="[^"]*\{/.test(text), "no label carries a parameter's pattern");
    // Raw paths never become labels: neither the payment id nor the random 404 path.
    assert.ok(!text.includes(init.body.id), "no payment id in the metrics");
    assert.doesNotMatch(text, /\/no\/such\//);

    const hist = "aimbrellapay_http_request_duration_seconds";
    assert.equal(sample(text, `${hist}_count`, { route: "/api/v1/init-payment", status: "201" }), 1);
    assert.equal(sample(text, `${hist}_bucket`, { route: "/api/v1/init-payment", status: "201", le: "+Inf" }), 1);

    const calls = "aimbrellapay_provider_call_duration_seconds_count";
    assert.equal(sample(text, calls, { provider: "bansky", operation: "create", outcome: "ok" }), 1);
    assert.ok((sample(text, calls, { provider: "bansky", operation: "status", outcome: "ok" }) ?? 0) >= 1);
    assert.equal(sample(text, "aimbrellapay_postback_attempts_total", { outcome: "retrying" }), 1);
    assert.equal(sample(text, "aimbrellapay_postbacks_due"), 0);
    // The export is off: its gauges are absent rather than zero.
    assert.doesNotMatch(text, /aimbrellapay_bigquery_/);
  } finally {
    await app.close();
    await receiver.close();
  }
});

Deno.test("[metrics] the due-postback backlog is counted at scrape time, only what is due", async () => {
  const app = await startTestApp({ env: { METRICS_TOKEN: TOKEN, JOBS_QUEUE: "off" } });
  try {
    const now = Date.now();
    const op = app.kv.atomic();
    for (let i = 0; i < 3; i++) {
      scheduleJob(op, { kind: "postback", id: `dl_due_${i}` }, now - 1000, { queue: false, now });
    }
    scheduleJob(op, { kind: "postback", id: "dl_later" }, now + 3_600_000, { queue: false, now });
    assert.ok((await op.commit()).ok);
    const { text } = await scrape(app);
    assert.equal(sample(text, "aimbrellapay_postbacks_due"), 3);
  } finally {
    await app.close();
  }
});

const HOUR_MS = 3_600_000;

/** A paid payment of the test shop, through the API and the sandbox's pay page. */
async function paidPayment(app: TestApp, amount: number): Promise<string> {
  const init = await callInit(app, paymentBody({ amount }));
  assert.equal(init.status, 201);
  await buyerSettles(init.body.url, "paid");
  await waitFor("paid", async () => {
    const res = await fetch(`${app.baseUrl}/api/v1/payments/${init.body.id}`, {
      headers: { authorization: `Bearer ${app.shop.apiKey}` },
    });
    return (await res.json()).payment?.status === "succeeded" || undefined;
  });
  return init.body.id as string;
}

/** A refund of the whole payment through the shop's API; with the sandbox failing, it stays pending. */
async function refundAll(app: TestApp, paymentId: string): Promise<{ id: string; status: string }> {
  const res = await fetch(`${app.baseUrl}/api/v1/payments/${paymentId}/refunds`, {
    method: "POST",
    headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({}),
  });
  return (await res.json()).refund;
}

/** Rewrites a stored refund through the db layer, as if asked for and next checked at other times. */
async function moveRefund(app: TestApp, id: string, patch: Partial<Refund>) {
  const entry = (await getRefundEntry(app.kv, id)) as Deno.KvEntry<Refund>;
  assert.ok(await commitRefundUpdate(app.kv, entry, { ...entry.value, ...patch }, { queue: false, now: Date.now() }));
}

Deno.test("[metrics] the oldest pending refund's age is exact past the count's cap, though its next check comes after a thousand others', and it leaves the gauge once settled", async () => {
  const app = await startTestApp({ standaloneSandbox: true, env: { METRICS_TOKEN: TOKEN, JOBS_QUEUE: "off" } });
  try {
    const paymentId = await paidPayment(app, 900);
    app.sandbox.knobs.failureRate = 1;
    const stuck = await refundAll(app, paymentId);
    assert.equal(stuck.status, "pending");
    // Asked for 7 hours ago, and checked again in 5 (its backoff reached 6-hourly checks).
    const now = Date.now();
    await moveRefund(app, stuck.id, { createdAt: now - 7 * HOUR_MS, nextCheckAt: now + 5 * HOUR_MS });
    // As many newer refunds as the count reads, each checked again sooner: the first ones by next check.
    const newer = Array.from({ length: PENDING_REFUNDS_CAP }, (_, i): Refund => ({
      id: sequentialId("re", now),
      seq: sortableId(now),
      paymentId: sequentialId("pay", now),
      shopId: app.shop.id,
      shopRefundId: null,
      idempotencyKey: null,
      requestHash: "x",
      amount: 100,
      currency: "EUR",
      reason: null,
      status: "pending",
      providerRef: null,
      failureReason: null,
      requestedBy: "api",
      checks: 1,
      nextCheckAt: now + 60_000 + i,
      createdAt: now,
      updatedAt: now,
      settledAt: null,
    }));
    for (let i = 0; i < newer.length; i += 50) {
      await Promise.all(
        newer.slice(i, i + 50).map(async (refund) => {
          const reservation = await getRefundReservation(app.kv, refund.paymentId);
          const jobs = { queue: false, now };
          assert.ok(await insertRefund(app.kv, { refund, reservation, event: refundEvents(refund).requested, jobs }));
          // The provider's answer (none yet: ask again later) is stored, as a request's is: that puts it in the index.
          const entry = (await getRefundEntry(app.kv, refund.id)) as Deno.KvEntry<Refund>;
          assert.ok(await commitRefundUpdate(app.kv, entry, entry.value, jobs));
        }),
      );
    }

    const { text } = await scrape(app);
    assert.equal(sample(text, "aimbrellapay_refunds_pending"), PENDING_REFUNDS_CAP, "counting stops at the cap");
    const age = sample(text, "aimbrellapay_refunds_pending_oldest_age_seconds")!;
    assert.ok(age >= 7 * 3600 && age < 7 * 3600 + 120, `the oldest waited 7 hours, not ${age} s`);
    assert.equal((await readPendingRefunds(app.kv, 10_000)).count, PENDING_REFUNDS_CAP + 1);

    // An operator settles it by hand: it leaves the index, and the oldest is one of the newer ones.
    const settled = await settleRefundByHand(
      app.server.ctx,
      paymentId,
      stuck.id,
      { outcome: "failed", note: "Bansky support confirmed no refund" },
      { actor: "ops@example.com" },
    );
    assert.equal(settled.status, "failed");
    const after = (await scrape(app)).text;
    const newest = sample(after, "aimbrellapay_refunds_pending_oldest_age_seconds")!;
    assert.ok(newest < 120, `the newer refunds waited moments, not ${newest} s`);
    assert.equal((await readPendingRefunds(app.kv, 10_000)).count, PENDING_REFUNDS_CAP);
  } finally {
    await app.close();
  }
});

Deno.test("[backfill] refunds pending since before the pending index get into it, so the gauge's oldest age finds them", async () => {
  const app = await startTestApp({ standaloneSandbox: true, env: { METRICS_TOKEN: TOKEN, JOBS_QUEUE: "off" } });
  try {
    const settled = await refundAll(app, await paidPayment(app, 300));
    assert.equal(settled.status, "succeeded");
    const payments = [await paidPayment(app, 400), await paidPayment(app, 500), await paidPayment(app, 600)];
    app.sandbox.knobs.failureRate = 1;
    const pending = [];
    for (const id of payments) pending.push(await refundAll(app, id));
    assert.deepEqual(pending.map((r) => r.status), ["pending", "pending", "pending"]);
    await moveRefund(app, pending[1].id, { createdAt: Date.now() - 7 * HOUR_MS });
    // As the version before the index stored them: the refunds and their jobs as they are, the index's keys absent.
    for (const { id } of pending) {
      const { pendingIndexed: _, ...stored } = (await getRefund(app.kv, id))!;
      await app.kv.atomic().delete(["refunds_pending", stored.createdAt, id]).set(["refunds", id], stored).commit();
    }
    assert.equal(sample((await scrape(app)).text, "aimbrellapay_refunds_pending"), 0);

    // The store as the earlier version left it; two processes run the backfill at once.
    await deleteBackfillState(app.kv, "refund_pending_index");
    const runs = await Promise.all([
      runBackfill(app.server.ctx, pendingRefundIndexBackfill, { batchSize: 2 }),
      runBackfill(app.server.ctx, pendingRefundIndexBackfill, { batchSize: 2 }),
    ]);
    assert.equal(runs[0].written + runs[1].written, 3, "each pending refund indexed once, the settled one not");
    const { text } = await scrape(app);
    assert.equal(sample(text, "aimbrellapay_refunds_pending"), 3);
    const age = sample(text, "aimbrellapay_refunds_pending_oldest_age_seconds")!;
    assert.ok(age >= 7 * 3600 && age < 7 * 3600 + 120, `the oldest waited 7 hours, not ${age} s`);

    // Idempotent: once done, a run reads its progress; forgotten, a run from scratch finds nothing to add.
    assert.equal((await runBackfill(app.server.ctx, pendingRefundIndexBackfill)).written, 0);
    await deleteBackfillState(app.kv, "refund_pending_index");
    assert.equal((await runBackfill(app.server.ctx, pendingRefundIndexBackfill)).written, 0);

    // The provider answers again: the job settles them, and they leave the index.
    app.sandbox.knobs.failureRate = 0;
    await sweepAt(app, 20 * 60_000);
    const after = (await scrape(app)).text;
    assert.equal(sample(after, "aimbrellapay_refunds_pending"), 0);
    assert.equal(sample(after, "aimbrellapay_refunds_pending_oldest_age_seconds"), 0);
  } finally {
    await app.close();
  }
});

Deno.test("[metrics] refunds waiting on the provider are a count and the age of the oldest, read at scrape time; settled ones leave both", async () => {
  const app = await startTestApp({ standaloneSandbox: true, env: { METRICS_TOKEN: TOKEN, JOBS_QUEUE: "off" } });
  try {
    const paid = (amount: number) => paidPayment(app, amount);
    const refund = (paymentId: string) => refundAll(app, paymentId);
    const payments = [await paid(300), await paid(500), await paid(700)];
    const before = await scrape(app);
    assert.equal(sample(before.text, "aimbrellapay_refunds_pending"), 0);
    assert.equal(sample(before.text, "aimbrellapay_refunds_pending_oldest_age_seconds"), 0);

    // A refund that succeeded is not counted; the provider then stops answering, and two stay pending.
    assert.equal((await refund(payments[0])).status, "succeeded");
    app.sandbox.knobs.failureRate = 1;
    const stuck = await refund(payments[1]);
    const recent = await refund(payments[2]);
    assert.deepEqual([stuck.status, recent.status], ["pending", "pending"]);
    // One of them has waited 7 hours (as if asked for then).
    const entry = (await getRefundEntry(app.kv, stuck.id)) as Deno.KvEntry<Refund>;
    const sevenHours = 7 * 3_600_000;
    const older = { ...entry.value, createdAt: entry.value.createdAt - sevenHours };
    assert.ok(await commitRefundUpdate(app.kv, entry, older, { queue: false, now: Date.now() }));

    const { text } = await scrape(app);
    assert.equal(sample(text, "aimbrellapay_refunds_pending"), 2);
    const age = sample(text, "aimbrellapay_refunds_pending_oldest_age_seconds")!;
    assert.ok(age >= sevenHours / 1000 && age < sevenHours / 1000 + 120, `oldest waited 7 hours, not ${age} s`);
    const check = await promtool(text);
    assert.ok(check.ok, `promtool check metrics: ${check.output}`);

    // The provider answers again: the job settles both, and the gauges go back to nothing waiting.
    app.sandbox.knobs.failureRate = 0;
    await sweepAt(app, 20 * 60_000);
    const after = (await scrape(app)).text;
    assert.equal(sample(after, "aimbrellapay_refunds_pending"), 0);
    assert.equal(sample(after, "aimbrellapay_refunds_pending_oldest_age_seconds"), 0);
  } finally {
    await app.close();
  }
});

Deno.test({
  name: "[metrics] with the BigQuery export on, its backlog, lag and failures are gauges",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sa = await createServiceAccount();
    const fake = startBigQueryFake(sa);
    const app = await startTestApp({
      env: {
        METRICS_TOKEN: TOKEN,
        BIGQUERY_PROJECT: "test-project",
        BIGQUERY_DATASET: "aimbrella_test",
        BIGQUERY_LOCATION: "EU",
        BIGQUERY_CREDENTIALS: sa.json,
        BIGQUERY_API_ENDPOINT: fake.url,
        BIGQUERY_TIMEOUT_MS: "400",
        ANALYTICS_INTERVAL_MS: "40",
        ANALYTICS_SETTLE_MS: "0",
      },
    });
    try {
      await app.server.ctx.analytics!.sink.setup();
      const init = await callInit(app, paymentBody());
      assert.equal(init.status, 201);
      const text = await waitFor("an export run went through with nothing left", async () => {
        const r = await scrape(app);
        const done = sample(r.text, "aimbrellapay_bigquery_export_last_success_timestamp_seconds") ?? 0;
        return done > 0 && sample(r.text, "aimbrellapay_bigquery_export_backlog") === 0 ? r.text : undefined;
      });
      assert.equal(sample(text, "aimbrellapay_bigquery_export_lag_seconds"), 0);
      assert.equal(sample(text, "aimbrellapay_bigquery_export_failures"), 0);
      const check = await promtool(text);
      assert.ok(check.ok, `promtool check metrics: ${check.output}`);
    } finally {
      await app.close();
      await fake.close();
    }
  },
});

const ALERTS = "docs/internal/prometheus-alerts.yml";

/** Runs promtool with `args`; what it printed, and whether it succeeded. */
async function runPromtool(args: string[]): Promise<{ ok: boolean; output: string }> {
  const out = await new Deno.Command("promtool", { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: out.success, output: (dec.decode(out.stdout) + dec.decode(out.stderr)).trim() };
}

Deno.test("[metrics] the documented alerts are valid rules over metrics we export, and fire when they should: a failing shop endpoint, a stalled relay, a failing provider, a refund stuck at its provider, a buyer's payment no stored payment names", async () => {
  const check = await runPromtool(["check", "rules", ALERTS]);
  assert.ok(check.ok, check.output);
  // Every metric the rules read is one we document (and so export): a renamed metric breaks this, not the pager.
  const rules = await Deno.readTextFile(ALERTS);
  const table = await Deno.readTextFile("docs/internal/metrics.md");
  for (const [name] of rules.matchAll(/aimbrellapay_[a-z_]+/g)) {
    const base = name.replace(/_(count|sum|bucket)$/, "");
    assert.ok(table.includes(`\`${base}\``), `${name} is in metrics.md's table`);
  }
  const paidOrphanAlert = (provider: string, account: string) => ({
    exp_labels: { severity: "warning", provider, account },
    exp_annotations: {
      summary: `A buyer paid at ${provider} (account ${account}) on a payment no stored payment names; we refuse the ` +
        "news (see metrics.md, paid orphans)",
      runbook: "Open the console's Paid orphans page (or `deno task payment orphans`): each row is one payment at " +
        "the provider (ref), the id of ours it was made for, and whether a payment of the shop has that id (it then " +
        "names another ref). Look ref up at the provider (Stripe: the connected account's Checkout Session; Bansky: " +
        "its dashboard) and refund it there, or, if the shop wants the order, attach it by hand: give the shop the " +
        "reference, amount and buyer, and it fulfils the order itself. Then mark it handled there, with a note " +
        "saying what was done: the provider's retries are acknowledged from then on and the alert clears at the " +
        "next scrape.",
    },
  });
  const dir = await Deno.makeTempDir();
  try {
    // promtool's own unit tests: series as Prometheus would scrape them, a minute apart.
    const tests = {
      rule_files: [`${Deno.cwd()}/${ALERTS}`],
      evaluation_interval: "1m",
      tests: [{
        interval: "1m",
        input_series: [
          // A shop answering 500: two failed attempts a minute, while nothing is due (each waits for its next try).
          { series: 'aimbrellapay_postback_attempts_total{outcome="retrying"}', values: "0+2x30" },
          { series: 'aimbrellapay_postback_attempts_total{outcome="delivered"}', values: "0+50x30" },
          { series: "aimbrellapay_postbacks_due", values: "0x10 150x20" },
          {
            series: 'aimbrellapay_provider_call_duration_seconds_count{provider="bansky",outcome="ok"}',
            values: "0+8x30",
          },
          {
            series: 'aimbrellapay_provider_call_duration_seconds_count{provider="bansky",outcome="timeout"}',
            values: "0+2x30",
          },
          {
            series: 'aimbrellapay_provider_call_duration_seconds_count{provider="stripe",outcome="ok"}',
            values: "0+9x30",
          },
          // Two processes scrape the same store: a refund pending since minute 0 ages a minute a scrape, settles at
          // minute 400, and none waits after; the newer one (counted too) is younger.
          {
            series: 'aimbrellapay_refunds_pending_oldest_age_seconds{instance="a"}',
            values: "0+60x400 0x20",
          },
          {
            series: 'aimbrellapay_refunds_pending_oldest_age_seconds{instance="b"}',
            values: "0+60x400 0x20",
          },
          // A buyer paid on a Stripe session no payment names: its record appears at minute 30, and both processes
          // (reading the same store) count it until an operator marks it handled at minute 100.
          {
            series: 'aimbrellapay_paid_orphans_unhandled{provider="stripe",account="pa_s",instance="a"}',
            values: "_x30 1x68 stale",
          },
          {
            series: 'aimbrellapay_paid_orphans_unhandled{provider="stripe",account="pa_s",instance="b"}',
            values: "_x30 1x68 stale",
          },
          // One on the default Bansky account, nobody handles it for 7 hours (past any window), then someone does.
          {
            series: 'aimbrellapay_paid_orphans_unhandled{provider="bansky",account="default",instance="b"}',
            values: "1x420 stale",
          },
          // The per-process counter goes on counting refusals (a handled one's retries are not refusals): it no
          // longer decides the alert, so an account whose refusals only it shows fires nothing.
          {
            series: 'aimbrellapay_paid_orphan_webhooks_total{provider="bansky",account="pa_x",instance="a"}',
            values: "0+1x440",
          },
        ],
        alert_rule_test: [
          { eval_time: "5m", alertname: "AimbrellaPayPostbacksFailing", exp_alerts: [] },
          {
            eval_time: "20m",
            alertname: "AimbrellaPayPostbacksFailing",
            exp_alerts: [{
              exp_labels: { severity: "warning" },
              exp_annotations: { summary: "Postbacks are failing at a shop's endpoint (see failing-postbacks.md)" },
            }],
          },
          // Due for 5 minutes is not yet an alert; for 11 it is.
          { eval_time: "15m", alertname: "AimbrellaPayPostbacksPilingUp", exp_alerts: [] },
          {
            eval_time: "21m",
            alertname: "AimbrellaPayPostbacksPilingUp",
            exp_alerts: [{
              exp_labels: { severity: "critical" },
              exp_annotations: { summary: "Postbacks are due and not being sent" },
            }],
          },
          {
            eval_time: "20m",
            alertname: "AimbrellaPayProviderFailing",
            exp_alerts: [{
              exp_labels: { severity: "critical", provider: "bansky" },
              exp_annotations: { summary: "Calls to bansky are failing; the operation log says which account" },
            }],
          },
          // Waiting 5 hours is not yet an alert (the job asks every 6 hours by then); 6 h 10 min is, once, not per
          // process; settled, it stops.
          { eval_time: "300m", alertname: "AimbrellaPayRefundStuckAtProvider", exp_alerts: [] },
          {
            eval_time: "370m",
            alertname: "AimbrellaPayRefundStuckAtProvider",
            exp_alerts: [{
              exp_labels: { severity: "warning" },
              exp_annotations: {
                summary: "A refund has waited on its provider for over 6 hours (see accounts.md, refunds waiting on " +
                  "the provider)",
                runbook: 'Find the refund in the log ("refund still pending at its provider after 6 hours": ' +
                  "refundId, paymentId), ask the provider what it did with it (its dashboard, its support), then " +
                  "record that on the payment's page (Settle by hand, with a note saying how you know) or with " +
                  "`deno task payment settle-refund`: the alert clears at the next scrape.",
              },
            }],
          },
          { eval_time: "410m", alertname: "AimbrellaPayRefundStuckAtProvider", exp_alerts: [] },
          // Each account's unhandled orphans fire from the scrape that first shows them, once whatever the number of
          // processes, for as long as they wait, and clear at the scrape after the mark.
          {
            eval_time: "29m",
            alertname: "AimbrellaPayPaidOrphan",
            exp_alerts: [paidOrphanAlert("bansky", "default")],
          },
          {
            eval_time: "31m",
            alertname: "AimbrellaPayPaidOrphan",
            exp_alerts: [paidOrphanAlert("bansky", "default"), paidOrphanAlert("stripe", "pa_s")],
          },
          {
            eval_time: "101m",
            alertname: "AimbrellaPayPaidOrphan",
            exp_alerts: [paidOrphanAlert("bansky", "default")],
          },
          {
            eval_time: "410m",
            alertname: "AimbrellaPayPaidOrphan",
            exp_alerts: [paidOrphanAlert("bansky", "default")],
          },
          { eval_time: "421m", alertname: "AimbrellaPayPaidOrphan", exp_alerts: [] },
        ],
      }],
    };
    // JSON is YAML: promtool reads it as it is.
    await Deno.writeTextFile(`${dir}/alerts_test.yml`, JSON.stringify(tests));
    const run = await runPromtool(["test", "rules", `${dir}/alerts_test.yml`]);
    assert.ok(run.ok, run.output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
