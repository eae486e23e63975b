/**
 * The BigQuery export, end to end: the real `@google-cloud/bigquery` client,
 * pointed by BIGQUERY_API_ENDPOINT at a local fake of the REST API
 * (tests/_bigquery_fake.ts) that checks the service account's signature and
 * each row against the table schema, and keeps rows by insertId as BigQuery
 * deduplicates them.
 */
import assert from "node:assert/strict";
import { analyticsStatus, backfillAnalytics, createAnalytics } from "../lib/analytics/mod.ts";
import { loadConfig } from "../lib/config.ts";
import { listActivity } from "../lib/db/activity.ts";
import { getPayment } from "../lib/db/payments.ts";
import { describePayment } from "../lib/payments/admin.ts";

/** The activity entries that become payment_events rows (provider calls and invoices have their own tables). */
async function paymentActivity(kv: Deno.Kv, opts: { limit: number }) {
  return (await listActivity(kv, opts)).filter((e) => e.ref.kind !== "operation" && e.ref.kind !== "invoice");
}
import { countScheduledJobs } from "../lib/db/jobs.ts";
import { JobRunner } from "../lib/jobs.ts";
import paymentsFields from "../docs/bigquery/payments.json" with { type: "json" };
import eventsFields from "../docs/bigquery/payment_events.json" with { type: "json" };
import operationsFields from "../docs/bigquery/provider_operations.json" with { type: "json" };
import invoicesFields from "../docs/bigquery/invoices.json" with { type: "json" };
import { describeBigQueryError } from "../lib/analytics/_errors.ts";
import { PartialFailureError } from "../lib/analytics/bigquery.ts";
import {
  type BigQueryFake,
  createServiceAccount,
  type ServiceAccount,
  startBigQueryFake,
  validateRow,
} from "../fixtures/bigquery_fake.ts";
import { chainApi, createTestInvoice } from "../fixtures/invoices.ts";
import {
  type AppProcess,
  buyerSettles,
  callInit,
  createShopWithCli,
  freePort,
  loopbackAppEnv,
  paymentBody,
  SANDBOX_SECRET,
  SANDBOX_TOKEN,
  spawnApp,
  startShopReceiver,
  startTestApp,
  stopApp,
  type TestApp,
  type TestAppOptions,
  waitFor,
  waitHealthy,
} from "../fixtures/app.ts";

const account = await createServiceAccount();

function bigqueryEnv(fake: BigQueryFake, sa: ServiceAccount = account, extra: Record<string, string> = {}) {
  return {
    BIGQUERY_PROJECT: "test-project",
    BIGQUERY_DATASET: "aimbrella_test",
    BIGQUERY_LOCATION: "EU",
    BIGQUERY_CREDENTIALS: sa.json,
    BIGQUERY_API_ENDPOINT: fake.url,
    BIGQUERY_TIMEOUT_MS: "400",
    ANALYTICS_INTERVAL_MS: "40",
    ANALYTICS_SETTLE_MS: "0",
    ...extra,
  };
}

/** The client keeps keep-alive sockets in a process-wide pool, so these tests cannot be resource-sanitized. */
const unsanitized = { sanitizeResources: false, sanitizeOps: false };

interface Harness {
  app: TestApp;
  fake: BigQueryFake;
}

/** An app with the export on, the fake with its tables made by the real `setup`, and cleanup afterwards. */
async function withExport(
  opts: { env?: Record<string, string>; app?: TestAppOptions; setup?: boolean },
  fn: (h: Harness) => Promise<void>,
) {
  const fake = startBigQueryFake(account);
  const app = await startTestApp({ ...opts.app, env: { ...bigqueryEnv(fake), ...opts.env } });
  try {
    if (opts.setup !== false) await app.server.ctx.analytics!.sink.setup();
    await fn({ app, fake });
  } finally {
    await app.close();
    await fake.close();
  }
}

/** Creates a payment with a postback, has the buyer pay, and waits for the shop to get the postback. */
async function paidPayment(app: TestApp, postbackUrl: string, body: Record<string, unknown> = {}): Promise<string> {
  const init = await callInit(app, paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl, ...body }));
  assert.equal(init.status, 201, JSON.stringify(init.body));
  await buyerSettles(init.body.url, "paid");
  return init.body.id;
}

/** Waits until every activity-log entry is in the fake's payment_events table, and the export says so. */
async function waitExported(h: Harness, timeoutMs = 10_000) {
  return await waitFor("the export to catch up", async () => {
    const entries = await paymentActivity(h.app.kv, { limit: 100_000 });
    const status = await analyticsStatus(h.app.server.ctx);
    const rows = h.fake.tables.size ? h.fake.table("payment_events").rows.size : 0;
    return status.backlog === 0 && rows === entries.length ? entries.length : undefined;
  }, timeoutMs);
}

/** The latest row per payment id, as the payments_latest view picks it. */
function latestPayments(fake: BigQueryFake): Map<string, Record<string, unknown>> {
  const latest = new Map<string, Record<string, unknown>>();
  for (const row of fake.table("payments").rows.values()) {
    const seen = latest.get(row.id as string);
    if (!seen || String(row.updated_at) > String(seen.updated_at)) latest.set(row.id as string, row);
  }
  return latest;
}

Deno.test({
  name: "[bigquery] setup creates the dataset, day-partitioned tables clustered by shop, and the dedup views",
  ...unsanitized,
  async fn() {
    await withExport({ setup: false }, async ({ app, fake }) => {
      const sink = app.server.ctx.analytics!.sink;
      const first = await sink.setup();
      assert.deepEqual(first, [
        "dataset test-project.aimbrella_test (EU) created",
        "table test-project.aimbrella_test.payments created",
        "table test-project.aimbrella_test.payment_events created",
        "table test-project.aimbrella_test.provider_operations created",
        "table test-project.aimbrella_test.invoices created",
        "table test-project.aimbrella_test.invoice_deposits created",
        "view test-project.aimbrella_test.payments_latest created",
        "view test-project.aimbrella_test.payment_events_unique created",
        "view test-project.aimbrella_test.provider_operations_unique created",
        "view test-project.aimbrella_test.invoices_latest created",
        "view test-project.aimbrella_test.invoice_deposits_latest created",
      ]);
      assert.equal(fake.datasets.get("test-project.aimbrella_test")?.location, "EU");
      const payments = fake.table("payments").body;
      assert.deepEqual(payments.schema?.fields, paymentsFields);
      assert.deepEqual(payments.timePartitioning, { type: "DAY", field: "created_at" });
      assert.deepEqual(payments.clustering, { fields: ["shop_id"] });
      const events = fake.table("payment_events").body;
      assert.deepEqual(events.schema?.fields, eventsFields);
      assert.deepEqual(events.timePartitioning, { type: "DAY", field: "at" });
      assert.deepEqual(events.clustering, { fields: ["shop_id", "payment_id"] });
      const operations = fake.table("provider_operations").body;
      assert.deepEqual(operations.schema?.fields, operationsFields);
      assert.deepEqual(operations.timePartitioning, { type: "DAY", field: "at" });
      assert.deepEqual(operations.clustering, { fields: ["shop_id", "account_id"] });
      assert.match(
        fake.table("payments_latest").body.view!.query,
        /FROM `test-project\.aimbrella_test\.payments` .*QUALIFY ROW_NUMBER\(\) OVER \(PARTITION BY id ORDER BY updated_at DESC\) = 1/,
      );
      assert.equal(fake.unauthorized, 0);

      assert.deepEqual(fake.table("invoices").body.schema?.fields, invoicesFields);

      // A column added to docs/bigquery/ after the first setup is appended by the next one: the newest, settled_at,
      // went at the end of its file, where setup appends it to a payments table made before it.
      const newest = paymentsFields.at(-1)!.name;
      assert.equal(newest, "settled_at");
      payments.schema!.fields = payments.schema!.fields.filter((f) => f.name !== newest);
      const stale = await sink.insert("payments", [{ insertId: "p1", json: { settled_at: null } }]).catch((e) => e);
      assert.match(describeBigQueryError(stale), /no such field: settled_at\. Run `deno task bq setup`/);
      // It names the table and the row, so an operator can find a row refused for good.
      assert.match(describeBigQueryError(stale), /rejected 1 row\(s\) of payments \(first: row 0, insertId p1\)/);
      // An invoices table set up before invoices had an email gets the column, in the place a new table has it.
      const invoices = fake.table("invoices").body;
      invoices.schema!.fields = invoices.schema!.fields.filter((f) => f.name !== "email");
      // Until then the export stops at that table (nothing lost), and its error says what to run.
      const refused = await sink.insert("invoices", [{ insertId: "i1", json: { email: null } }]).catch((e) => e);
      assert.match(describeBigQueryError(refused), /no such field: email\. Run `deno task bq setup`/);
      const second = await sink.setup();
      assert.equal(second[0], "dataset test-project.aimbrella_test (EU) exists");
      assert.equal(second[1], `table test-project.aimbrella_test.payments exists; added ${newest}`);
      assert.equal(second[2], "table test-project.aimbrella_test.payment_events exists");
      assert.equal(second[4], "table test-project.aimbrella_test.invoices exists; added email");
      assert.deepEqual(
        fake.table("payments").body.schema?.fields.map((f) => f.name),
        paymentsFields.map((f) => f.name),
      );
      assert.deepEqual(fake.table("invoices").body.schema?.fields, invoicesFields);
    });
  },
});

Deno.test({
  name: "[bigquery] provider calls of the operation log arrive in provider_operations, once each, without secrets",
  ...unsanitized,
  async fn() {
    await withExport({ env: { BANSKY_ORG_ID: "891027350515" }, app: { standaloneSandbox: true } }, async (h) => {
      const { app, fake } = h;
      const init = await callInit(app, paymentBody());
      await buyerSettles(init.body.url, "paid");
      const calls = await waitFor("the provider calls exported", async () => {
        const logged = (await listActivity(app.kv, { limit: 1000 })).filter((e) => e.ref.kind === "operation");
        const status = await analyticsStatus(app.server.ctx);
        const rows = fake.tables.size ? fake.table("provider_operations").rows.size : 0;
        return logged.length >= 2 && status.backlog === 0 && rows === logged.length ? logged : undefined;
      });
      const rows = [...fake.table("provider_operations").rows.values()];
      for (const row of rows) assert.equal(validateRow(operationsFields, row), null);
      const ops = rows.filter((r) => r.payment_id === init.body.id).map((r) => r.operation).sort();
      assert.deepEqual([...new Set(ops)], ["create", "status"]);
      const create = rows.find((r) => r.operation === "create")!;
      const entry = calls.find((e) => e.ref.kind === "operation" && e.ref.operation.operation === "create")!;
      assert.equal(create.id, entry.ref.kind === "operation" ? entry.ref.operation.id : "");
      assert.equal(create.activity_seq, entry.seq);
      assert.equal(create.shop_id, app.shop.id);
      assert.equal(create.account_id, "default");
      assert.equal(create.org_id, "891027350515");
      assert.equal(create.provider, "bansky");
      assert.equal(create.outcome, "ok");
      assert.equal(create.amount, 1000);
      assert.equal(create.currency, "EUR");
      assert.equal(typeof create.duration_ms, "number");
      assert.ok(!Number.isNaN(Date.parse(create.at as string)));
      assert.ok(!JSON.stringify(rows).includes(SANDBOX_TOKEN), "no provider token in a row");
      assert.ok(!JSON.stringify(rows).includes(SANDBOX_SECRET), "no webhook secret in a row");
    });
  },
});

Deno.test({
  name: "[bigquery] every event, postback attempt and the latest payment state arrive with the right schema",
  ...unsanitized,
  async fn() {
    const shop = startShopReceiver((n) => new Response("", { status: n === 1 ? 500 : 200 }));
    try {
      await withExport({}, async (h) => {
        const { app, fake } = h;
        const id = await paidPayment(app, shop.url, { name: "Ada {{projectId}}", email: "Ada@Example.com" });
        await waitFor(
          "the postback to be delivered on its second attempt",
          () => shop.received.length >= 2 || undefined,
        );
        await waitFor(
          "the delivered state in BigQuery",
          () => latestPayments(fake).get(id)?.postback_status === "delivered" || undefined,
        );
        // Counted after the last attempt's entry is in: the shop can see a postback before we record the attempt.
        const count = await waitExported(h);

        const events = [...fake.table("payment_events").rows.values()];
        assert.equal(events.length, count);
        for (const row of events) assert.equal(validateRow(eventsFields, row), null);
        for (const row of fake.table("payments").rows.values()) assert.equal(validateRow(paymentsFields, row), null);

        const types = events.filter((e) => e.payment_id === id).map((e) => e.type).sort();
        for (const t of ["created", "buyer_redirected", "webhook_received", "status_changed"]) {
          assert.ok(types.includes(t), `missing ${t} in ${types}`);
        }
        const change = events.find((e) => e.type === "status_changed")!;
        assert.deepEqual(JSON.parse(change.data as string), { from: "pending", to: "succeeded" });
        assert.equal(change.shop_id, app.shop.id);
        assert.ok(!Number.isNaN(Date.parse(change.at as string)));

        const attempts = events.filter((e) => e.type === "postback_attempt").sort((a, b) =>
          Number(a.attempt) - Number(b.attempt)
        );
        assert.deepEqual(attempts.map((a) => [a.attempt, a.status_code, a.error]), [[1, 500, "HTTP 500"], [
          2,
          200,
          null,
        ]]);
        assert.equal(typeof attempts[0].latency_ms, "number");
        assert.deepEqual(JSON.parse(attempts[0].data as string), { eventType: "payment.succeeded" });
        assert.equal(attempts[0].event_id, `${attempts[0].delivery_id}:1`);

        const p = latestPayments(fake).get(id)!;
        assert.equal(p.status, "succeeded");
        assert.equal(p.shop_id, app.shop.id);
        assert.equal(p.email, "Ada@Example.com", "ANALYTICS_EMAIL defaults to raw, as the spec asks");
        assert.equal(p.name, "Ada {{projectId}}", "the client's placeholder rewriting must not reach our rows");
        assert.equal(p.amount, 1000);
        assert.equal(p.currency, "EUR");
        assert.equal(p.postback_url, shop.url);
        assert.match(String(p.provider_ref), /\S/);
        assert.match(String(p.provider_url), /^http/);
        assert.equal(p.postback_status, "delivered");
        assert.equal(p.postback_attempts, 2);
        assert.equal(p.postback_last_status_code, 200);
        assert.ok(Date.parse(p.updated_at as string) >= Date.parse(p.finalized_at as string));

        // Each exported state of the payment is its own row under id:updated_at; none was sent twice.
        const copies = fake.table("payments").received.filter((r) => r.json.id === id);
        const ids = copies.map((r) => r.insertId);
        for (const insertId of ids) assert.match(insertId, new RegExp(`^${id}:\\d+$`));
        const status = await analyticsStatus(app.server.ctx);
        assert.equal(status.enabled, true);
        assert.equal(status.target, "test-project.aimbrella_test");
        assert.equal(status.backlog, 0);
        assert.equal(status.lastError, null);
        assert.ok(status.lastSuccessAt! > Date.now() - 10_000);
      });
    } finally {
      await shop.close();
    }
  },
});

Deno.test({
  name: "[bigquery] settled_at dates a late payment by when its money came, not by its expiry; null when never paid",
  ...unsanitized,
  async fn() {
    // Bansky cannot stop money already on its way: the cancel at expiry is refused and the buyer still pays.
    await withExport({ app: { standaloneSandbox: true, knobs: { refuseCancels: true } } }, async ({ app, fake }) => {
      const MINUTE = 60_000;
      const ctx = app.server.ctx;
      const create = async (extra: Record<string, unknown> = {}) => {
        const init = await callInit(app, paymentBody(extra));
        assert.equal(init.status, 201, JSON.stringify(init.body));
        return init.body as { id: string; url: string };
      };
      const stored = (id: string, status: string) =>
        waitFor(`${id} ${status}`, async () => {
          const p = await getPayment(app.kv, id);
          return p?.status === status ? p : undefined;
        });
      const row = (id: string, status: string) =>
        waitFor(`${id}'s ${status} row`, () => {
          const r = latestPayments(fake).get(id);
          return r?.status === status ? r : undefined;
        });

      const onTime = await create();
      await buyerSettles(onTime.url, "paid");
      const declined = await create();
      await buyerSettles(declined.url, "declined");
      await stored(onTime.id, "succeeded");
      await stored(declined.id, "failed");

      const late = await create({ expiresIn: 60 });
      ctx.now = () => Date.now() + 61_000;
      await app.server.runner.sweep();
      const expired = await stored(late.id, "expired");
      // The money comes two minutes after the expiry (within the webhooks' 5-minute window).
      ctx.now = () => Date.now() + 61_000 + 2 * MINUTE;
      const res = await fetch(`${app.sandboxUrl}/payments/${expired.providerRef}/complete`, {
        method: "POST",
        headers: { authorization: `Bearer ${SANDBOX_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ outcome: "paid" }),
      });
      assert.equal(res.status, 200, await res.text());
      const lateRecord = await stored(late.id, "succeeded");
      assert.equal(lateRecord.late, true);

      const lateRow = await row(late.id, "succeeded");
      assert.equal(lateRow.finalized_at, new Date(expired.finalizedAt!).toISOString(), "finalized_at keeps the expiry");
      // The console's Settled time, from the same owner: when the money came.
      const { settled } = await describePayment(ctx, late.id);
      assert.equal(lateRow.settled_at, new Date(settled.at!).toISOString());
      assert.ok(Date.parse(lateRow.settled_at as string) - Date.parse(lateRow.finalized_at as string) >= 2 * MINUTE);

      const onTimeRow = await row(onTime.id, "succeeded");
      assert.ok(onTimeRow.finalized_at);
      assert.equal(onTimeRow.settled_at, onTimeRow.finalized_at, "a success on time settled when it was finalized");
      const declinedRow = await row(declined.id, "failed");
      assert.ok(declinedRow.finalized_at);
      assert.equal(declinedRow.settled_at, null, "no money came");
      for (const r of fake.table("payments").rows.values()) assert.equal(validateRow(paymentsFields, r), null);
    });
  },
});

/** Collects what the app prints (log lines go to console.log and console.error) while `fn` runs. */
async function captureConsole(fn: () => Promise<void>): Promise<string> {
  const lines: string[] = [];
  const saved = { log: console.log, error: console.error, warn: console.warn, info: console.info };
  const keep = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  Object.assign(console, { log: keep, error: keep, warn: keep, info: keep });
  try {
    await fn();
  } finally {
    Object.assign(console, saved);
  }
  return lines.join("\n");
}

async function hmacHex(secret: string, text: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    {
      name: "HMAC",
      hash: "SHA-256",
    },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test({
  name:
    "[bigquery] ANALYTICS_EMAIL=hash and omit fill the email column; no secret reaches a row, a log line or the status",
  ...unsanitized,
  async fn() {
    const hashSecret = "analytics-hash-secret-0123456789";
    const shop = startShopReceiver();
    let output = "";
    try {
      output = await captureConsole(() =>
        withExport({
          env: { ANALYTICS_EMAIL: "hash", ANALYTICS_HASH_SECRET: hashSecret },
          app: { standaloneSandbox: true },
        }, async (h) => {
          const { app, fake } = h;
          // Failures make the export log and record errors, which must stay clean too.
          fake.faults.push({ kind: "500" }, { kind: "partial" });
          const id = await paidPayment(app, shop.url, { email: "Buyer@Example.COM" });
          await waitExported(h);
          const expected = `hmac_sha256:${await hmacHex(hashSecret, "buyer@example.com")}`;
          assert.equal(latestPayments(fake).get(id)!.email, expected);

          const rows = JSON.stringify([...fake.tables.values()].map((t) => [...t.received]));
          const status = JSON.stringify(await analyticsStatus(app.server.ctx));
          const state = JSON.stringify((await app.kv.get(["analytics_export"])).value);
          const secrets = {
            privateKey: account.privateKeyPem.split("\n")[5],
            hashSecret,
            providerToken: SANDBOX_TOKEN,
            providerWebhookSecret: SANDBOX_SECRET,
            shopKey: app.shop.apiKey,
            shopSecret: app.shop.webhookSecret,
          };
          for (const [what, secret] of Object.entries(secrets)) {
            assert.ok(!rows.includes(secret), `${what} in a row`);
            assert.ok(!status.includes(secret), `${what} in the status`);
            assert.ok(!state.includes(secret), `${what} in the stored export state`);
          }
          assert.ok(!/Buyer@Example/i.test(rows), "the raw email in a row");
          assert.ok(!/eyJ[\w-]+\.[\w-]+\./.test(state), "a bearer token in the stored export state");
        })
      );
    } finally {
      await shop.close();
    }
    assert.match(output, /analytics export failed/, "the failures were logged (so the check below means something)");
    for (const secret of [account.privateKeyPem.split("\n")[5], hashSecret, SANDBOX_TOKEN]) {
      assert.ok(!output.includes(secret), "a secret in the logs");
    }
    assert.ok(!/eyJ[\w-]+\.[\w-]+\./.test(output), "a bearer token in the logs");

    const omit = startBigQueryFake(account);
    const app = await startTestApp({ env: bigqueryEnv(omit, account, { ANALYTICS_EMAIL: "omit" }) });
    try {
      await app.server.ctx.analytics!.sink.setup();
      const init = await callInit(app, paymentBody());
      const inv = await createTestInvoice(app, { email: "buyer@example.com" });
      await waitFor("the payment row", () => latestPayments(omit).get(init.body.id));
      assert.equal(latestPayments(omit).get(init.body.id)!.email, null);
      const invoiceRow = await waitFor("the invoice row", () => {
        return [...omit.table("invoices").rows.values()].find((r) => r.id === inv.id);
      });
      assert.equal(invoiceRow.email, null, "an invoice's email is left out as a payment's is");
    } finally {
      await app.close();
      await omit.close();
    }
  },
});

Deno.test({
  name: "[bigquery] 500s, timeouts and partial insertErrors are retried with back-off; nothing is lost or doubled",
  ...unsanitized,
  async fn() {
    let h!: Harness;
    const output = await captureConsole(() =>
      withExport({}, async (harness) => {
        h = harness;
        const { app, fake } = h;
        const table = "payment_events";
        fake.faults.push({ kind: "500", table }, { kind: "slow", holdMs: 900, table }, { kind: "partial", table });
        for (let i = 0; i < 3; i++) {
          const init = await callInit(app, paymentBody());
          assert.equal(init.status, 201);
          await buyerSettles(init.body.url, i === 1 ? "declined" : "paid");
        }
        await waitFor("every fault to be used", () => fake.faults.length === 0 || undefined);
        await waitExported(h);
        // Sent rows under one insertId are identical, so BigQuery's dedup (and the view) keep exactly one.
        for (const t of fake.tables.values()) {
          for (const r of t.received) assert.deepEqual(r.json, t.rows.get(r.insertId));
        }
        const events = fake.table("payment_events");
        assert.ok(events.received.length > events.rows.size, "the timed-out and partial batches were sent again");
        const entries = await paymentActivity(app.kv, { limit: 1000 });
        assert.deepEqual(
          [...events.rows.values()].map((r) => r.activity_seq).sort(),
          entries.map((e) => e.seq),
        );
        assert.equal((await analyticsStatus(app.server.ctx)).lastError, null);
      })
    );
    const failures = output.split("\n").filter((l) => l.includes("analytics export failed")).map((l) => JSON.parse(l));
    assert.deepEqual(failures.map((f) => f.failures), [1, 2, 3]);
    assert.deepEqual(failures.map((f) => f.retryInMs), [40, 80, 160], "exponential back-off from the interval");
    assert.match(failures[0].error, /^BigQuery HTTP 500: An internal error occurred/);
    assert.match(failures[1].error, /did not answer within 400 ms/);
    assert.match(
      failures[2].error,
      /^BigQuery rejected \d+ row\(s\) of \w+ \(first: row \d+, insertId [^)]+\): backendError/,
    );
  },
});

Deno.test({
  name:
    "[bigquery] with the queue off, a full batch's run asks for the next one at once and gets it (a kick from its own run)",
  ...unsanitized,
  async fn() {
    const env = { ANALYTICS_BATCH_SIZE: "2", ANALYTICS_INTERVAL_MS: "60000", JOBS_QUEUE: "off" };
    await withExport({ env }, async ({ app }) => {
      for (let i = 0; i < 4; i++) {
        const init = await callInit(app, paymentBody());
        await buyerSettles(init.body.url, "paid");
      }
      app.server.runner.kick({ kind: "analytics", id: "export" });
      // Far sooner than the interval: each full batch kicked the next.
      await waitFor(
        "the backlog exported",
        async () => ((await analyticsStatus(app.server.ctx)).backlog === 0 ? true : undefined),
        5_000,
      );
    });
  },
});

Deno.test({
  name: "[bigquery] batches hold at most ANALYTICS_BATCH_SIZE entries and a full batch runs again without waiting",
  ...unsanitized,
  async fn() {
    await withExport({ env: { ANALYTICS_BATCH_SIZE: "4", ANALYTICS_INTERVAL_MS: "1500" } }, async (h) => {
      const { app, fake } = h;
      // Each run sends its tables at once; held answers make them overlap, and the next run comes after them all.
      fake.insertHoldMs = 100;
      for (let i = 0; i < 6; i++) {
        const init = await callInit(app, paymentBody());
        await buyerSettles(init.body.url, "paid");
      }
      const count = await waitExported(h);
      assert.ok(count >= 24, `only ${count} activity entries`);
      // A batch's entries become payment_events and provider_operations rows (and payments rows besides). A run's
      // inserts are in flight together; an insert that came in after every one so far was answered starts the next.
      const inserts = fake.inserts.filter((c) => c.status === 200).toSorted((a, b) => a.receivedAt - b.receivedAt);
      const calls: { rows: number; at: number; answeredBy: number }[] = [];
      for (const c of inserts) {
        const rows = c.table === "payments" ? 0 : c.rows;
        const run = calls.at(-1);
        if (run && c.receivedAt <= run.answeredBy) {
          run.rows += rows;
          run.answeredBy = Math.max(run.answeredBy, c.at);
        } else calls.push({ rows, at: c.receivedAt, answeredBy: c.at });
      }
      assert.ok(calls.every((c) => c.rows <= 4), JSON.stringify(calls));
      // Some run found a backlog: its full batches followed each other at once, far less than the 1.5 s interval
      // apart. (Runs while the payments were still being made may have taken smaller batches first.)
      let streak = 1;
      let longest = 0;
      for (let i = 1; i < calls.length; i++) {
        const quick = calls[i - 1].rows === 4 && calls[i].rows === 4 && calls[i].at - calls[i - 1].at < 500;
        streak = quick ? streak + 1 : 1;
        longest = Math.max(longest, streak);
      }
      assert.ok(longest >= 3, JSON.stringify(calls));
    });
  },
});

Deno.test({
  name: "[bigquery] two workers at once never export the same batch: the lease lets one through",
  ...unsanitized,
  async fn() {
    const env = { JOBS_QUEUE: "off", ANALYTICS_INTERVAL_MS: "59000", BIGQUERY_TIMEOUT_MS: "3000" };
    await withExport({ env }, async ({ app, fake }) => {
      for (let i = 0; i < 2; i++) await callInit(app, paymentBody());
      fake.faults.push({ kind: "slow", holdMs: 300 });
      // A minute on: a run that came before the payments were all made (the start's, on a slow machine) put the next
      // one off by the interval, and the two below must both find the export due.
      const later = Date.now() + 60_000;
      app.server.ctx.now = () => later;
      const other = new JobRunner({ ...app.server.ctx });
      const job = { kind: "analytics" as const, id: "export" };
      await Promise.all([app.server.runner.run(job), other.run(job), app.server.runner.sweep(), other.sweep()]);
      assert.deepEqual(fake.inserts.map((c) => c.table).sort(), ["payment_events", "payments", "provider_operations"]);
      assert.equal(fake.table("payment_events").rows.size, (await paymentActivity(app.kv, { limit: 100 })).length);
      await other.stop();
    });
  },
});

Deno.test({
  name: "[bigquery] a key BigQuery refuses shows as the last error, and payments are still accepted at once",
  ...unsanitized,
  async fn() {
    const stranger = await createServiceAccount();
    const fake = startBigQueryFake(account);
    const app = await startTestApp({ env: bigqueryEnv(fake, stranger) });
    const output = await captureConsole(async () => {
      const started = Date.now();
      const init = await callInit(app, paymentBody());
      assert.equal(init.status, 201);
      assert.ok(Date.now() - started < 2000);
      const status = await waitFor("the export to fail", async () => {
        const s = await analyticsStatus(app.server.ctx);
        return s.failures >= 2 ? s : undefined;
      });
      assert.match(status.lastError!.message, /^BigQuery HTTP 401: Request had invalid authentication credentials/);
      assert.ok(status.backlog >= 1, "the payment's created event waits");
      assert.ok(fake.unauthorized >= 2);
      assert.equal(fake.inserts.length, 0);
    }).finally(async () => {
      await app.close();
      await fake.close();
    });
    assert.match(output, /"error":"BigQuery HTTP 401/);
  },
});

Deno.test({
  name: "[bigquery] without BIGQUERY_* the export is off, says so at start-up, and schedules nothing",
  async fn() {
    const app = await startTestApp();
    try {
      assert.match(app.server.integrations.bigquery, /^off \(set BIGQUERY_PROJECT/);
      await callInit(app, paymentBody());
      const status = await analyticsStatus(app.server.ctx);
      assert.deepEqual(
        { enabled: status.enabled, backlog: status.backlog, lastSuccessAt: status.lastSuccessAt },
        { enabled: false, backlog: 0, lastSuccessAt: null },
      );
      assert.equal((await app.kv.get(["analytics_export"])).versionstamp, null);
      assert.equal(await countScheduledJobs(app.kv, "analytics"), 0);
    } finally {
      await app.close();
    }
  },
});

Deno.test({
  name: "[bigquery] backfill sends a date range again under the same insertIds, leaving the live cursor alone",
  ...unsanitized,
  async fn() {
    await withExport({}, async (h) => {
      const { app, fake } = h;
      assert.match(app.server.integrations.bigquery, /^on \(test-project\.aimbrella_test, email raw\)$/);
      for (let i = 0; i < 2; i++) await callInit(app, paymentBody());
      const count = await waitExported(h);
      const cursor = (await app.kv.get<{ cursor: string }>(["analytics_export"])).value!.cursor;
      const before = fake.table("payment_events").received.length;
      const total = await backfillAnalytics(app.kv, app.server.ctx.analytics!, {
        from: Date.now() - 60 * 60_000,
        to: Date.now() + 60_000,
      });
      const all = await listActivity(app.kv, { limit: 1000 });
      assert.equal(total.entries, all.length, "payment entries and provider calls");
      const calls = all.filter((e) => e.ref.kind === "operation").length;
      assert.equal(calls, 2, "two create calls");
      assert.equal(
        fake.table("provider_operations").rows.size,
        calls,
        "re-sent provider calls under the same insertIds",
      );
      const events = fake.table("payment_events");
      assert.equal(events.received.length, before + count);
      assert.equal(events.rows.size, count, "every re-sent row had an insertId already there");
      for (const r of events.received) assert.deepEqual(r.json, events.rows.get(r.insertId));
      assert.equal((await app.kv.get<{ cursor: string }>(["analytics_export"])).value!.cursor, cursor);
    });
  },
});

Deno.test({
  name: "[bigquery] SIGKILLed mid-export (twice) and restarted: every activity entry arrives once, re-sent rows match",
  ...unsanitized,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "aimbrella-bq-" });
    const fake = startBigQueryFake(account);
    const receiver = startShopReceiver();
    const port = freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const env = {
      ...bigqueryEnv(fake, account, { BIGQUERY_TIMEOUT_MS: "500" }),
      ...loopbackAppEnv(port, `${dir}/kv.sqlite3`),
      // The dead process's lease (2 x timeout + 1 s) must run out before the new one takes the batch over.
      JOBS_SWEEP_INTERVAL_MS: "100",
      LOG_LEVEL: "error",
    };
    let app: AppProcess | undefined;
    try {
      await (await createAnalytics(loadConfig(env)))!.sink.setup();
      const shop = await createShopWithCli(env, "Export shop", receiver.url);
      const pay = async () => {
        const res = await fetch(`${baseUrl}/api/v1/init-payment`, {
          method: "POST",
          headers: { authorization: `Bearer ${shop.apiKey}`, "content-type": "application/json" },
          body: JSON.stringify(paymentBody({ id: `o-${crypto.randomUUID()}` })),
        });
        const body = await res.json();
        assert.equal(res.status, 201, JSON.stringify(body));
        await buyerSettles(body.url, "paid");
      };
      /** Starts the app, pays, and kills it while BigQuery holds an insert (having stored it, or not). */
      const crashMidExport = async (store: boolean) => {
        const hung = new Promise<void>((resolve) => (fake.onHang = resolve));
        fake.faults.push({ kind: "hang", store, table: "payment_events" });
        app = spawnApp(env);
        await waitHealthy(baseUrl, app);
        await pay();
        await pay();
        await hung;
        await stopApp(app); // before the app hears back, so before it can move its cursor
      };
      await crashMidExport(false); // lost in flight: must be sent again, or rows go missing
      await crashMidExport(true); // stored but unacknowledged: sent again, deduplicated by insertId
      app = spawnApp(env);
      await waitHealthy(baseUrl, app);
      await pay();

      const events = fake.table("payment_events");
      const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
      try {
        // The embedded sandbox died with the first process, so some webhooks never come: wait for the
        // activity log to stop growing rather than for a number of postbacks.
        let last = { count: -1, since: Date.now() };
        const seqs = await waitFor("every activity entry in BigQuery", async () => {
          const entries = await paymentActivity(kv, { limit: 10_000 });
          if (entries.length !== last.count) last = { count: entries.length, since: Date.now() };
          const exported = new Set([...events.rows.values()].map((r) => r.activity_seq));
          const settled = Date.now() - last.since > 800 && receiver.received.length >= 1;
          return settled && entries.every((e) => exported.has(e.seq)) ? entries.map((e) => e.seq) : undefined;
        }, 20_000);
        assert.equal(events.rows.size, seqs.length, "one row per entry after deduplication by insertId");
      } finally {
        kv.close();
      }
      assert.ok(events.received.length > events.rows.size, "the stored batch in flight at the kill was sent again");
      for (const t of fake.tables.values()) {
        for (const r of t.received) assert.deepEqual(r.json, t.rows.get(r.insertId), `re-sent ${r.insertId} differs`);
      }
    } finally {
      if (app) await stopApp(app);
      await receiver.close();
      await fake.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Runs `deno run -A cli/bq.ts ...args` with `env`; returns exit code and output. */
async function bqCli(env: Record<string, string>, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/bq.ts", ...args],
    cwd: new URL("..", import.meta.url),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout), stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test({
  name: "[bigquery] `bq setup`, `bq backfill --from --to` and `bq status` work from the command line",
  ...unsanitized,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "aimbrella-bq-cli-" });
    const fake = startBigQueryFake(account);
    const kvPath = `${dir}/kv.sqlite3`;
    try {
      // Activity recorded while the export was off, as before BigQuery was configured.
      const before = await startTestApp({ kvPath });
      for (let i = 0; i < 2; i++) await callInit(before, paymentBody());
      const count = (await paymentActivity(before.kv, { limit: 100 })).length;
      const all = (await listActivity(before.kv, { limit: 100 })).length;
      await before.close();

      const env = { ...bigqueryEnv(fake), DENO_KV_PATH: kvPath, DEMO: "0", JOBS_QUEUE: "off", LOG_LEVEL: "warn" };
      const setup = await bqCli(env, "setup");
      assert.equal(setup.code, 0, setup.stderr);
      assert.match(setup.stdout, /^table test-project\.aimbrella_test\.payments created$/m);
      assert.match(setup.stdout, /^view test-project\.aimbrella_test\.payments_latest created$/m);

      const today = new Date().toISOString().slice(0, 10);
      const backfill = await bqCli(env, "backfill", "--from", today, "--to", today);
      assert.equal(backfill.code, 0, backfill.stderr);
      assert.equal(JSON.parse(backfill.stdout).entries, all);
      assert.equal(fake.table("provider_operations").rows.size, all - count, "the provider calls, backfilled");
      assert.equal(fake.table("payment_events").rows.size, count);
      assert.equal(fake.table("payments").rows.size, 2);

      const status = await bqCli(env, "status");
      assert.equal(status.code, 0, status.stderr);
      assert.equal(JSON.parse(status.stdout).enabled, true);

      const bad = await bqCli(env, "backfill", "--from", "yesterday", "--to", today);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--from and --to must be dates/);
      const off = await bqCli({ DENO_KV_PATH: kvPath, DEMO: "0", LOG_LEVEL: "warn" }, "setup");
      assert.equal(off.code, 2);
      assert.match(off.stderr, /BigQuery is off/);
    } finally {
      await fake.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "[bigquery] a payment exported before anything else happened to it gets the row its record gives, then its later state",
  ...unsanitized,
  async fn() {
    await withExport({}, async (h) => {
      const { app, fake } = h;
      const init = await callInit(
        app,
        paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl: "http://127.0.0.1:9/pb" }),
      );
      const id = init.body.id as string;
      await waitExported(h);
      // The batch held only the creation, so its row came from the activity entry: it must be the record's row.
      const { getPayment } = await import("../lib/db/payments.ts");
      const { paymentRow } = await import("../lib/analytics/rows.ts");
      const expected = await paymentRow(
        (await getPayment(app.kv, id))!,
        { deliveries: [], events: [] },
        app.server.ctx.analytics!.email,
      );
      const rows = fake.table("payments").received.filter((r) => r.json.id === id);
      assert.deepEqual(rows.map((r) => [r.insertId, r.json]), [[expected.insertId, expected.json]]);

      await buyerSettles(init.body.url, "paid");
      await waitFor(
        "the settled state in BigQuery",
        () => latestPayments(fake).get(id)?.status === "succeeded" || undefined,
      );
      assert.equal(fake.table("payments").received.filter((r) => r.json.id === id)[0].json.status, "pending");
    });
  },
});

Deno.test({
  name: "[bigquery] an activity entry from an earlier version, carrying the payment as created, still gives its row",
  ...unsanitized,
  async fn() {
    await withExport({}, async (h) => {
      const { app, fake } = h;
      const { storedPayment } = await import("../fixtures/payments.ts");
      const { sortableId } = await import("../lib/ids.ts");
      const { paymentRow } = await import("../lib/analytics/rows.ts");
      const at = Date.now() - 60_000;
      const asCreated = storedPayment(at, { shopId: app.shop.id, name: "As created" });
      // The stored record changed since without an entry of its own: the row must be the one the entry carries.
      const stored = await app.kv.atomic()
        .set(["payments", asCreated.id], { ...asCreated, name: "Changed since" })
        .set(["activity", sortableId(at)], {
          kind: "event",
          paymentId: asCreated.id,
          shopId: asCreated.shopId,
          eventSeq: asCreated.seq,
          event: { type: "created", at, data: { amount: asCreated.amount, currency: asCreated.currency, ref: null } },
          payment: asCreated,
        })
        .commit();
      assert.ok(stored.ok);
      await waitExported(h);
      const expected = await paymentRow(asCreated, { deliveries: [], events: [] }, app.server.ctx.analytics!.email);
      const rows = fake.table("payments").received.filter((r) => r.json.id === asCreated.id);
      assert.deepEqual(rows.map((r) => [r.insertId, r.json]), [[expected.insertId, expected.json]]);
    });
  },
});

Deno.test({
  name: "[bigquery] invoices and their deposits arrive in their own tables with exact decimal amounts",
  ...unsanitized,
  async fn() {
    await withExport({}, async ({ app, fake }) => {
      const inv = await createTestInvoice(app, {
        coin: "ETH",
        network: "ethereum",
        amount: "1.000000000000000001",
        email: "Buyer@Example.com",
      });
      const chain = chainApi(app);
      await chain.deposit(inv.address, "1000000000000000001", undefined, "ETH");
      await chain.mine(24, "ethereum");
      const latest = await waitFor("the finished invoice row", () => {
        const rows = [...fake.table("invoices").rows.values()].filter((r) => r.id === inv.id);
        return rows.find((r) => r.status === "finished");
      });
      assert.equal(latest.amount, "1.000000000000000001", "18 decimals, no float in between");
      assert.equal(latest.paid_amount, "1.000000000000000001");
      assert.equal(latest.shop_id, app.shop.id);
      assert.equal(latest.email, "Buyer@Example.com", "ANALYTICS_EMAIL defaults to raw, as for payments");
      const deposits = await waitFor("the deposit row at 24 confirmations", () => {
        const rows = [...fake.table("invoice_deposits").rows.values()].filter((r) => r.invoice_id === inv.id);
        return rows.find((r) => r.confirmations === 24);
      });
      assert.equal(deposits.amount, "1.000000000000000001");
      assert.equal(deposits.late, false);
      assert.equal(deposits.deposit_id, `${inv.id}:${deposits.txid}`);
      for (const t of ["invoices", "invoice_deposits"]) {
        for (const row of fake.table(t).rows.values()) {
          assert.equal(validateRow(fake.table(t).body.schema!.fields, row), null, t);
        }
      }
    });
  },
});

Deno.test("[bigquery] a refused batch's error names the row refused for its own sake, not one stopped with it", () => {
  const rows = ["pay_a:1", "pay_b:2", "pay_c:3"].map((insertId) => ({ insertId, json: {} }));
  const err = new PartialFailureError("payments", [
    { index: 0, errors: [{ reason: "stopped", message: "" }] },
    { index: 1, errors: [{ reason: "invalid", message: "Cannot convert value to integer." }] },
    { index: 2, errors: [{ reason: "stopped", message: "" }] },
  ], rows);
  assert.equal(
    describeBigQueryError(err),
    "BigQuery rejected 3 row(s) of payments (first: row 1, insertId pay_b:2): invalid: Cannot convert value to integer.",
  );
});
