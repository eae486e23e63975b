/**
 * JOBS_QUEUE=off (Deno Deploy has no KV queues): postbacks must be delivered
 * and retried by the sweep of the due index. The in-process kick is only a
 * shortcut that dies with the process, so these tests also take it away (in
 * process) or kill the process that holds it (main.ts), and the KV is wrapped
 * so any use of a queue throws, as it would on a platform without queues.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { loadConfig } from "../lib/config.ts";
import { listDeliveriesByPayment, listDeliveryAttempts } from "../lib/db/deliveries.ts";
import { countScheduledJobs } from "../lib/db/jobs.ts";
import { getPayment } from "../lib/db/payments.ts";
import { createShop } from "../lib/shops.ts";
import type { Delivery, DeliveryAttempt } from "../lib/relay/types.ts";
import { createServer, type ServerParts } from "../server.ts";
import {
  type AppProcess,
  buyerSettles,
  createShopWithCli,
  freePort,
  loopbackAppEnv,
  paymentBody,
  type ReceivedPostback,
  serveOnLoopback,
  sleep,
  spawnApp,
  startShopReceiver,
  stopApp,
  type TestShop,
  waitFor,
  waitHealthy,
} from "../fixtures/app.ts";

/** A KV whose queue operations throw, as on a platform without KV queues; `used` records each try. */
function kvWithoutQueues(kv: Deno.Kv, used: string[]): Deno.Kv {
  const refuse = (what: string) => () => {
    used.push(what);
    throw new Error(`KV queues are not available here (${what})`);
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "enqueue" || prop === "listenQueue") return refuse(`kv.${prop}`);
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          op.enqueue = refuse("atomic().enqueue");
          return op;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

interface QueueOffApp {
  baseUrl: string;
  kv: Deno.Kv;
  server: ServerParts;
  shop: TestShop;
  queueUses: string[];
  close(): Promise<void>;
}

/**
 * The app in process with JOBS_QUEUE=off (or as `env` sets it), its embedded sandbox, and no sweep until the test runs
 * one; its KV is in memory whatever DENO_KV_PATH says.
 */
async function startQueueOffApp(opts: { kick: boolean; env?: Record<string, string> }): Promise<QueueOffApp> {
  const http = serveOnLoopback();
  const port = http.port;
  const baseUrl = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    ...loopbackAppEnv(port, ":memory:"),
    JOBS_QUEUE: "off",
    POSTBACK_SCHEDULE: "0,0.3,0.3,0.3,0.3",
    POSTBACK_TIMEOUT_MS: "2000",
    PROVIDER_TIMEOUT_MS: "2000",
    ...opts.env,
  });
  const rawKv = await Deno.openKv(":memory:");
  const queueUses: string[] = [];
  const kv = kvWithoutQueues(rawKv, queueUses);
  const server = await createServer(config, kv);
  // The kick is a timer in this process; without it only the sweep can send (as after a restart).
  if (!opts.kick) server.ctx.kick = () => {};
  http.handle((req, info) => server.app.fetch(req, info));
  const { shop, apiKey } = await createShop(kv, { name: "Queue-off shop", allowedHosts: [] }, {
    allowLocalUrls: true,
    now: Date.now(),
  });
  return {
    baseUrl,
    kv,
    server,
    shop: { id: shop.id, apiKey, webhookSecret: shop.webhookSecret },
    queueUses,
    async close() {
      await server.close();
      await http.server.shutdown();
      rawKv.close();
    },
  };
}

async function initPayment(baseUrl: string, apiKey: string, body: unknown) {
  const res = await fetch(`${baseUrl}/api/v1/init-payment`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  assert.equal(res.status, 201, JSON.stringify(json));
  return json as { id: string; url: string };
}

/** A shop that answers 500 to the first `failures` postbacks, then 200. */
function failingShop(failures: number) {
  const answers: number[] = [];
  const shop = startShopReceiver((n) => {
    const status = n <= failures ? 500 : 200;
    answers.push(status);
    return new Response(status === 200 ? "ok" : "not now", { status });
  });
  return { ...shop, answers };
}

/** A KV file in a temp dir and main.ts's environment for it (JOBS_QUEUE=off, warnings only), plus `extra`. */
async function mainEnv(prefix: string, extra: Record<string, string>) {
  const dir = await Deno.makeTempDir({ prefix });
  const port = freePort();
  const env: Record<string, string> = {
    ...loopbackAppEnv(port, `${dir}/kv.sqlite3`),
    LOG_LEVEL: "warn",
    JOBS_QUEUE: "off",
    ...extra,
  };
  return { dir, env, baseUrl: `http://127.0.0.1:${port}` };
}

/** Every copy verifies, carries one webhook-id and the same body; returns the parsed payload. */
function assertOneMessage(received: ReceivedPostback[], secret: string) {
  assert.ok(received.length > 0);
  const ids = new Set(received.map((r) => r.headers.get("webhook-id")));
  assert.equal(ids.size, 1, `several webhook-ids: ${[...ids].join(", ")}`);
  assert.equal(new Set(received.map((r) => r.body)).size, 1, "the body changed between attempts");
  const webhook = new Webhook(secret);
  const payloads = received.map((r) =>
    webhook.verify(r.body, Object.fromEntries(r.headers)) as { type: string; data: Record<string, unknown> }
  );
  return { webhookId: [...ids][0]!, payload: payloads[0] };
}

async function onlyDelivery(kv: Deno.Kv, paymentId: string): Promise<{ d: Delivery; log: DeliveryAttempt[] }> {
  const deliveries = await listDeliveriesByPayment(kv, paymentId);
  assert.equal(deliveries.length, 1);
  return { d: deliveries[0], log: await listDeliveryAttempts(kv, deliveries[0].id) };
}

Deno.test("[queue-off] with no queue and no kick, the sweep alone sends a postback and retries it on schedule (500, 500, 200)", async () => {
  const app = await startQueueOffApp({ kick: false });
  const shop = failingShop(2);
  try {
    const init = await initPayment(
      app.baseUrl,
      app.shop.apiKey,
      paymentBody({ id: "order-q1", postbackUrl: shop.url }),
    );
    await buyerSettles(init.url, "paid");
    await waitFor(
      "the payment to succeed",
      async () => (await getPayment(app.kv, init.id))?.status === "succeeded" || undefined,
    );

    // Nothing wakes the postback but a sweep: it waits in the due index.
    await sleep(300);
    assert.equal(shop.received.length, 0, "a postback went out with no sweep");
    assert.equal(await countScheduledJobs(app.kv, "postback"), 1);

    // Attempt 1, answered 500: retried 300 ms later, not before.
    assert.equal(await app.server.runner.sweep(), 1);
    assert.deepEqual(shop.answers, [500]);
    let { d } = await onlyDelivery(app.kv, init.id);
    assert.equal(d.status, "pending");
    assert.equal(d.attempts, 1);
    assert.equal(d.lastStatusCode, 500);
    assert.equal(await app.server.runner.sweep(), 0, "a sweep ran the retry before it was due");
    assert.equal(shop.received.length, 1);

    // Attempt 2, answered 500, once due.
    await sleep(Math.max(0, d.nextAttemptAt - Date.now()) + 20);
    assert.equal(await app.server.runner.sweep(), 1);
    assert.deepEqual(shop.answers, [500, 500]);
    ({ d } = await onlyDelivery(app.kv, init.id));
    assert.equal(d.attempts, 2);
    assert.equal(d.status, "pending");

    // Attempt 3, answered 200: delivered, out of the due index, and never sent again.
    await sleep(Math.max(0, d.nextAttemptAt - Date.now()) + 20);
    assert.equal(await app.server.runner.sweep(), 1);
    assert.deepEqual(shop.answers, [500, 500, 200]);
    const { d: done, log } = await onlyDelivery(app.kv, init.id);
    assert.equal(done.status, "delivered");
    assert.equal(done.attempts, 3);
    assert.equal(done.lastStatusCode, 200);
    assert.deepEqual(log.map((a) => [a.n, a.statusCode]), [[1, 500], [2, 500], [3, 200]]);
    assert.equal(log[1].error, "HTTP 500");
    assert.ok(log[1].at - log[0].at >= 300 && log[2].at - log[1].at >= 300, "a retry came before its schedule");
    assert.equal(await countScheduledJobs(app.kv, "postback"), 0);
    await sleep(350);
    assert.equal(await app.server.runner.sweep(), 0);
    assert.equal(shop.received.length, 3);

    const { webhookId, payload } = assertOneMessage(shop.received, app.shop.webhookSecret);
    assert.equal(webhookId, done.id);
    assert.equal(payload.type, "payment.succeeded");
    assert.equal(payload.data.id, "order-q1");
    assert.equal(payload.data.paymentId, init.id);
    assert.deepEqual(app.queueUses, [], "the app used a KV queue with JOBS_QUEUE=off");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[queue-off] with DENO_KV_PATH a KV Connect URL (a denokv server, which has no queues) and JOBS_QUEUE unset, no write holds an enqueue: a postback's failed attempt is recorded and retried, where that write failed whole", async () => {
  // An empty value is an unset variable: JOBS_QUEUE takes its default.
  const app = await startQueueOffApp({ kick: true, env: { DENO_KV_PATH: "http://127.0.0.1:4512", JOBS_QUEUE: "" } });
  // Answered 500 first: the attempt's record schedules its retry, a write that held an enqueue with queues on.
  const shop = failingShop(1);
  try {
    const init = await initPayment(
      app.baseUrl,
      app.shop.apiKey,
      paymentBody({ id: "order-kvc", postbackUrl: shop.url }),
    );
    await buyerSettles(init.url, "paid");
    await waitFor("the postback's retry", () => shop.answers.length === 2 || undefined);
    const { d, log } = await onlyDelivery(app.kv, init.id);
    assert.equal(d.status, "delivered");
    assert.deepEqual(log.map((a) => [a.n, a.statusCode]), [[1, 500], [2, 200]]);
    assert.deepEqual(app.queueUses, [], "a write held an enqueue");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[queue-off] kick and a frequent sweep racing: each attempt is made once (500, 500, 200 = 3 requests)", async () => {
  const app = await startQueueOffApp({ kick: true });
  const shop = failingShop(2);
  let sweeps: Promise<number> = Promise.resolve(0);
  // As main.ts's interval timer does.
  const timer = setInterval(() => (sweeps = app.server.runner.startSweep()), 50);
  try {
    const init = await initPayment(
      app.baseUrl,
      app.shop.apiKey,
      paymentBody({ id: "order-q2", postbackUrl: shop.url }),
    );
    await buyerSettles(init.url, "paid");
    await waitFor("the postback to be delivered", async () => {
      const [d] = await listDeliveriesByPayment(app.kv, init.id);
      return d?.status === "delivered" ? d : undefined;
    });
    await sleep(400); // Room for a stray extra attempt to show up.
    assert.deepEqual(shop.answers, [500, 500, 200]);
    const { d, log } = await onlyDelivery(app.kv, init.id);
    assert.equal(d.attempts, 3);
    assert.deepEqual(log.map((a) => [a.n, a.statusCode]), [[1, 500], [2, 500], [3, 200]]);
    assert.equal(assertOneMessage(shop.received, app.shop.webhookSecret).webhookId, d.id);
    assert.equal(await countScheduledJobs(app.kv, "postback"), 0);
    assert.deepEqual(app.queueUses, []);
  } finally {
    clearInterval(timer);
    await sweeps;
    await app.server.runner.idle();
    await shop.close();
    await app.close();
  }
});

Deno.test("[queue-off] main.ts with JOBS_QUEUE=off: a postback that failed before a crash is retried by the sweep after restart", async () => {
  const { dir, env, baseUrl } = await mainEnv("aimbrella-queue-off-", {
    JOBS_SWEEP_INTERVAL_MS: "200",
    POSTBACK_SCHEDULE: "0,2,1,1",
    POSTBACK_TIMEOUT_MS: "2000",
  });
  const shop = failingShop(2);
  let app: AppProcess | undefined;
  try {
    const creds = await createShopWithCli(env, "Queue-off shop", shop.url);
    app = spawnApp(env);
    await waitHealthy(baseUrl, app);
    // The shop's default postback URL (set by the CLI) is used: the body names no postbackUrl.
    const init = await initPayment(baseUrl, creds.apiKey, paymentBody({ id: "order-q3" }));
    await buyerSettles(init.url, "paid");

    // Attempt 1 (the kick after the webhook) fails; the retry is 2 s away, on a timer of this process: kill it.
    await waitFor("the first postback", () => shop.received[0]);
    await sleep(300);
    const killed = await stopApp(app, "SIGKILL");
    app = undefined;
    assert.equal(killed.signal, "SIGKILL", killed.stderr);
    assert.equal(shop.received.length, 1);

    app = spawnApp(env);
    await waitHealthy(baseUrl, app);
    // Attempt 2 (500) can only come from a sweep now; attempt 3 (200) one second later.
    await waitFor("the third postback", () => shop.received[2], 10_000);
    await sleep(500); // Room for a stray extra attempt to show up.
    const final = await stopApp(app, "SIGTERM");
    app = undefined;
    assert.deepEqual(shop.answers, [500, 500, 200]);
    const [first, second, third] = shop.received;
    assert.ok(second.at - first.at >= 1_900, `the retry came ${second.at - first.at} ms after the first attempt`);
    assert.ok(third.at - second.at >= 900, `the third attempt came ${third.at - second.at} ms after the second`);
    assert.equal(final.stderr.split("\n").filter((l) => l.includes('"level":"error"')).length, 0, final.stderr);

    // The stopped app's KV records all three attempts under one webhook-id.
    const kv = await Deno.openKv(env.DENO_KV_PATH);
    try {
      const { d, log } = await onlyDelivery(kv, init.id);
      assert.equal(d.status, "delivered");
      assert.equal(d.attempts, 3);
      assert.deepEqual(log.map((a) => [a.n, a.statusCode]), [[1, 500], [2, 500], [3, 200]]);
      assert.equal(await countScheduledJobs(kv, "postback"), 0);
      const { webhookId, payload } = assertOneMessage(shop.received, creds.webhookSecret);
      assert.equal(webhookId, d.id);
      assert.equal(payload.data.id, "order-q3");
    } finally {
      kv.close();
    }
  } finally {
    if (app) await stopApp(app, "SIGKILL");
    await shop.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * main.ts as a process whose first postback (of a paid payment) has reached a shop that holds its answer until
 * `answer()`; `end()` answers, kills the process if it still runs and removes its files.
 */
async function mainWithAttemptUnderWay(prefix: string) {
  const { dir, env, baseUrl } = await mainEnv(prefix, { POSTBACK_TIMEOUT_MS: "10000" });
  let answer!: () => void;
  const answered = new Promise<void>((r) => (answer = r));
  const shop = startShopReceiver(async () => (await answered, new Response("ok")));
  let app: AppProcess | undefined;
  const end = async () => {
    answer();
    if (app) await stopApp(app, "SIGKILL");
    await shop.close();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    app = spawnApp(env);
    const creds = await createShopWithCli(env, "Holding shop", shop.url);
    await waitHealthy(baseUrl, app);
    const init = await initPayment(baseUrl, creds.apiKey, paymentBody({ id: `order-${crypto.randomUUID()}` }));
    await buyerSettles(init.url, "paid");
    await waitFor("the attempt under way", () => shop.received[0]);
    return { env, baseUrl, app, shop, paymentId: init.id, answer, end };
  } catch (err) {
    await end();
    throw err;
  }
}

Deno.test("[shutdown] main.ts asked to stop (SIGTERM) lets the postback attempt under way end and records it, then exits", async () => {
  const { env, baseUrl, app, shop, paymentId, answer, end } = await mainWithAttemptUnderWay("aimbrella-stop-");
  try {
    app.child.kill("SIGTERM");
    // It no longer takes connections, and waits for the attempt under way.
    await stopBegun(baseUrl);
    assert.equal(await Promise.race([app.exited, sleep(500).then(() => null)]), null, "it waits for the attempt");
    answer();
    const exit = await app.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(exit.stderr.split("\n").filter((l) => l.includes('"level":"error"')).length, 0, exit.stderr);

    // The attempt's outcome is stored: nothing is left for the next process to send again.
    const kv = await Deno.openKv(env.DENO_KV_PATH);
    try {
      const { d } = await onlyDelivery(kv, paymentId);
      assert.equal(d.status, "delivered");
      assert.equal(d.attempts, 1);
      assert.equal(await countScheduledJobs(kv, "postback"), 0);
    } finally {
      kv.close();
    }
    assert.equal(shop.received.length, 1);
  } finally {
    await end();
  }
});

Deno.test("[shutdown] while the stop waits for a request still coming in, no new postback attempt starts", async () => {
  const { dir, env, baseUrl } = await mainEnv("aimbrella-stop-quiet-", { POSTBACK_SCHEDULE: "0,1" });
  // The shop fails the first attempt; its retry falls due a second later, during the stop.
  const shop = startShopReceiver((n) => new Response("", { status: n === 1 ? 500 : 200 }));
  let app: AppProcess | undefined = spawnApp(env);
  let slow: Deno.TcpConn | undefined;
  try {
    const creds = await createShopWithCli(env, "Quiet shop", shop.url);
    await waitHealthy(baseUrl, app);
    const init = await initPayment(baseUrl, creds.apiKey, paymentBody({ id: `order-${crypto.randomUUID()}` }));
    await buyerSettles(init.url, "paid");
    await waitFor("the first attempt", () => shop.received[0]);
    // A request whose body is still coming in: the stop waits for it (up to the body's 10-s read limit).
    slow = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(baseUrl).port) });
    await slow.write(new TextEncoder().encode(
      "POST /api/v1/init-payment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
        "Content-Length: 100\r\n\r\n{",
    ));
    await sleep(100);
    app.child.kill("SIGTERM");
    await sleep(2_500);
    assert.equal(shop.received.length, 1, "the retry due meanwhile waits for the next process");
    slow.close();
    slow = undefined;
    const exit = await app.exited;
    app = undefined;
    assert.equal(exit.code, 0, exit.stderr);
  } finally {
    slow?.close();
    if (app) await stopApp(app, "SIGKILL");
    await shop.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Waits until the app refuses connections: its stop has begun. */
function stopBegun(baseUrl: string) {
  return waitFor("the stop to begin", () => fetch(`${baseUrl}/healthz`).then((r) => r.body?.cancel(), () => true));
}

Deno.test("[shutdown] the same stop delivered twice is one stop; a second Ctrl-C a second later ends main.ts at once", async () => {
  const { baseUrl, app, end } = await mainWithAttemptUnderWay("aimbrella-stop-twice-");
  try {
    // A supervisor and `deno task` both passing one SIGTERM on: still a graceful stop.
    app.child.kill("SIGTERM");
    app.child.kill("SIGTERM");
    await stopBegun(baseUrl);
    assert.equal(await Promise.race([app.exited, sleep(1_200).then(() => null)]), null, "still waiting");
    // Ctrl-C, a second after the stop began: now.
    app.child.kill("SIGINT");
    const exit = await Promise.race([app.exited, sleep(3_000).then(() => null)]);
    assert.ok(exit, "it exits at once on a second ask");
    assert.equal(exit.code, 1, exit.stderr);
    assert.match(exit.stderr, /stopping at once, with work under way/);
  } finally {
    await end();
  }
});
