import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { describePayment, resendPostback } from "../lib/payments/admin.ts";
import { type AppError, ConflictError } from "../lib/errors.ts";
import { operatorBrowser, portalBrowser } from "../fixtures/browser.ts";
import { createShop, updateShopSettings } from "../lib/shops.ts";
import {
  addDeliveryOps,
  countAttentionDeliveries,
  getDeliveryEntry,
  isDeliveryDue,
  listAttentionDeliveries,
  listSupersedableDeliveries,
  storedDelivery,
} from "../lib/db/deliveries.ts";
import { getPayment } from "../lib/db/payments.ts";
import { runPaymentCheck } from "../lib/payments/janitor.ts";
import { newDelivery } from "../lib/relay/delivery.ts";
import { failedDelivery, storeAttentionDeliveries } from "../fixtures/deliveries.ts";
import { attemptDelivery, attemptHandedOver } from "../lib/relay/deliver.ts";
import { DELIVERY_LEASE_MS } from "../lib/relay/lease.ts";
import type { Delivery } from "../lib/relay/types.ts";
import { DEFAULT_POOL_LIMITS, firstAttemptLease, type PoolLimits, RelayPool, relayPool } from "../lib/relay/pool.ts";
import { DnsTimeoutError, type Resolver } from "../lib/relay/url_guard.ts";
import { strainsDestination } from "../lib/relay/schedule.ts";
import { parseConnect, PinnedProxy } from "../lib/relay/pinned_proxy.ts";
import { outboundProxySetting } from "../lib/outbound_proxy.ts";
import { testCertificates } from "../fixtures/tls.ts";
import { replayFailedDeliveries } from "../lib/relay/replay.ts";
import { searchAudit } from "../lib/db/audit.ts";
import { JobRunner } from "../lib/jobs.ts";
import {
  buyerSettles,
  callInit,
  paymentBody,
  recordCommits,
  recordDeliveryWrites,
  SANDBOX_TOKEN,
  sleep,
  startShopReceiver,
  startTestApp,
  sweepAt,
  type TestApp,
  type TestAppOptions,
  waitFor,
} from "../fixtures/app.ts";

/** Creates a payment whose postback goes to `postbackUrl`, and has the buyer pay it. */
async function paidPayment(app: TestApp, postbackUrl: string): Promise<string> {
  const init = await callInit(app, paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl }));
  assert.equal(init.status, 201, JSON.stringify(init.body));
  await buyerSettles(init.body.url, "paid");
  return init.body.id;
}

/** A shop that holds every postback's answer until `answer()`. */
function startHeldShop() {
  let answer!: () => void;
  const answered = new Promise<void>((r) => (answer = r));
  return { shop: startShopReceiver(async () => (await answered, new Response("ok"))), answer };
}

/** A paid payment whose postback's first attempt has reached `shop` and waits there for its answer. */
async function paidPaymentUnderWay(app: TestApp, shop: { url: string; received: unknown[] }): Promise<string> {
  const id = await paidPayment(app, shop.url);
  await waitFor("the attempt under way", () => (shop.received.length === 1 ? true : undefined));
  return id;
}

async function deliveryOf(app: TestApp, paymentId: string) {
  const { deliveries } = await describePayment(app.server.ctx, paymentId);
  return deliveries[0];
}

/** Stores a new delivery to `url` born leased until `leaseUntil`, as a payment's move does; answers it as stored. */
async function storeLeasedDelivery(app: TestApp, url: string, now: number, leaseUntil: number) {
  const delivery = newDelivery({
    paymentId: `pay_leased_${crypto.randomUUID()}`,
    shopId: app.shop.id,
    url,
    eventType: "payment.succeeded",
    body: JSON.stringify({ leased: true }),
    now,
    leaseUntil,
  });
  const op = app.kv.atomic();
  addDeliveryOps(op, delivery, { queue: false, now });
  const res = await op.commit();
  assert.ok(res.ok);
  return { delivery, versionstamp: res.versionstamp };
}

/** Stores `n` postbacks of a shop to `url` due at `dueAt` (not leased), ten to a commit; answers them in order. */
async function storeDueDeliveries(
  app: TestApp,
  url: string,
  n: number,
  tag: string,
  dueAt = Date.now(),
  shopId = app.shop.id,
) {
  const deliveries = Array.from({ length: n }, (_, i) =>
    newDelivery({
      paymentId: `pay_${tag}_${i}`,
      shopId,
      url,
      eventType: "payment.succeeded",
      body: JSON.stringify({ type: "payment.succeeded", data: { i } }),
      now: dueAt,
    }));
  for (let i = 0; i < deliveries.length; i += 10) {
    const op = app.kv.atomic();
    for (const d of deliveries.slice(i, i + 10)) addDeliveryOps(op, d, { queue: false, now: dueAt });
    assert.ok((await op.commit()).ok);
  }
  return deliveries;
}

/**
 * Three due postbacks to one shop, offered to a pool of one attempt per destination: once the first one's attempt
 * reached the shop (which holds its answer a while), the other two are parked.
 */
async function offerOneAtATime(app: TestApp, shop: ReturnType<typeof startShopReceiver>, tag: string) {
  const deliveries = await storeDueDeliveries(app, shop.url, 3, tag);
  const pool = new RelayPool(app.server.ctx, { total: 8, perDestination: 1, parked: 10 });
  const offers = deliveries.map((d) => pool.offer(d.id));
  await waitFor("the first attempt", () => (shop.received.length === 1 ? true : undefined));
  return { deliveries, offers };
}

/** What `promise` gives within `ms`, or `otherwise` (its timer cleared either way). */
async function within<T, U>(promise: Promise<T>, ms: number, otherwise: U): Promise<T | U> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<U>((r) => (timer = setTimeout(() => r(otherwise), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Counts the delivery records read through the store's getMany (the pool's reads, shared or not) until stop(). */
function countDeliveryReads(kv: Deno.Kv) {
  const getMany = kv.getMany;
  const counter = { count: 0, stop: () => (kv.getMany = getMany) };
  kv.getMany = ((keys: Deno.KvKey[], opts?: { consistency?: Deno.KvConsistencyLevel }) => {
    counter.count += keys.filter((k) => k[0] === "deliveries").length;
    return getMany.call(kv, keys, opts);
  }) as Deno.Kv["getMany"];
  return counter;
}

/**
 * Holds the next read of a delivery record (through get or getMany) after it was read, until `release()`: what the
 * reader does next, it does on what it read before whatever happens meanwhile. `held` resolves once one is held.
 */
function holdFirstDeliveryRead(kv: Deno.Kv) {
  const get = kv.get;
  const getMany = kv.getMany;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let hold!: () => void;
  const held = new Promise<void>((r) => (hold = r));
  let armed = true;
  const restore = () => {
    kv.get = get;
    kv.getMany = getMany;
  };
  const holdIfFirst = async <T>(keys: Deno.KvKey[], read: Promise<T>): Promise<T> => {
    const result = await read;
    if (armed && keys.some((k) => k[0] === "deliveries")) {
      armed = false;
      restore();
      hold();
      await gate;
    }
    return result;
  };
  kv.get =
    ((key: Deno.KvKey, opts?: { consistency?: Deno.KvConsistencyLevel }) =>
      holdIfFirst([key], get.call(kv, key, opts))) as Deno.Kv["get"];
  kv.getMany =
    ((keys: Deno.KvKey[], opts?: { consistency?: Deno.KvConsistencyLevel }) =>
      holdIfFirst(keys, getMany.call(kv, keys, opts))) as Deno.Kv["getMany"];
  return { held, release };
}

/** An app whose postback attempts wait 30 s for an answer: a shop held in a test does not time out meanwhile. */
const withPatientApp = (fn: (app: TestApp) => Promise<void>) => withApp({ env: { POSTBACK_TIMEOUT_MS: "30000" } }, fn);

async function withApp(opts: TestAppOptions, fn: (app: TestApp) => Promise<void>) {
  const app = await startTestApp(opts);
  try {
    await fn(app);
  } finally {
    await app.close();
  }
}

Deno.test("[relay] retries a 500 and delivers once the shop recovers, with one stable webhook-id", async () => {
  const shop = startShopReceiver((n) => new Response("down", { status: n <= 2 ? 500 : 200 }));
  await withApp({}, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("delivery", async () => ((await deliveryOf(app, id))?.status === "delivered" ? true : undefined));
    assert.equal(shop.received.length, 3);
    const ids = new Set(shop.received.map((r) => r.headers.get("webhook-id")));
    assert.equal(ids.size, 1);
    for (const r of shop.received) new Webhook(app.shop.webhookSecret).verify(r.body, Object.fromEntries(r.headers));
    const d = await deliveryOf(app, id);
    assert.deepEqual(d.attemptLog.map((a) => a.statusCode), [500, 500, 200]);
    assert.equal(d.attemptLog[0].responseStart, "down");
    assert.ok(d.attemptLog.every((a) => a.latencyMs >= 0 && a.at > 0));
  });
  await shop.close();
});

Deno.test("[relay] 410 Gone stops retrying at once", async () => {
  const shop = startShopReceiver(() => new Response("gone", { status: 410 }));
  await withApp({}, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("failure", async () => ((await deliveryOf(app, id))?.status === "failed" ? true : undefined));
    await sleep(500);
    assert.equal(shop.received.length, 1);
  });
  await shop.close();
});

Deno.test("[relay] a 2xx whose body breaks off midway is delivered, with what arrived of the answer", async () => {
  const shop = startShopReceiver(() => {
    let pulls = 0;
    const body = new ReadableStream({
      type: "bytes",
      async pull(controller) {
        if (pulls++ === 0) return controller.enqueue(new TextEncoder().encode("ok"));
        await sleep(20);
        controller.error(new Error("the shop crashed mid-body"));
      },
    });
    return new Response(body, { status: 200 });
  });
  await withApp({}, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("an attempt", async () => ((await deliveryOf(app, id))?.attemptLog.length ? true : undefined));
    const d = await deliveryOf(app, id);
    assert.equal(d.status, "delivered", JSON.stringify(d.attemptLog));
    assert.equal(d.attemptLog[0].statusCode, 200);
    assert.equal(d.attemptLog[0].responseStart, "ok");
  });
  await shop.close();
});

Deno.test("[relay] an answer of undeclared length is read in pieces and kept to its first 1 KiB", async () => {
  // Streamed (no content-length): the relay cannot take it whole, so it reads until it has 1 KiB and stops.
  const piece = new TextEncoder().encode("y".repeat(700));
  const shop = startShopReceiver(() => {
    let pulls = 0;
    const body = new ReadableStream({
      type: "bytes",
      pull(controller) {
        if (pulls++ < 100) controller.enqueue(piece.slice());
        else controller.close();
      },
    });
    return new Response(body, { status: 200 });
  });
  await withApp({}, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("delivery", async () => ((await deliveryOf(app, id))?.status === "delivered" ? true : undefined));
    const [attempt] = (await deliveryOf(app, id)).attemptLog;
    assert.equal(attempt.statusCode, 200);
    assert.equal(attempt.responseStart, "y".repeat(1024));
  });
  await shop.close();
});

Deno.test("[relay] a short declared length beside chunked transfer does not make the relay read the whole answer", async () => {
  // A raw HTTP server: Content-Length says 5, Transfer-Encoding: chunked sends 2 MB (the client goes by the latter).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    for await (const conn of listener) {
      (async () => {
        await conn.read(new Uint8Array(64 * 1024));
        const enc = new TextEncoder();
        await conn.write(enc.encode("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"));
        const chunk = "z".repeat(64 * 1024);
        try {
          for (let i = 0; i < 32; i++) await conn.write(enc.encode(`${chunk.length.toString(16)}\r\n${chunk}\r\n`));
          await conn.write(enc.encode("0\r\n\r\n"));
        } catch {
          // The relay hung up after its first KiB.
        }
        conn.close();
      })();
    }
  })();
  const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/pb`;
  await withApp({}, async (app) => {
    const id = await paidPayment(app, url);
    await waitFor("an attempt", async () => ((await deliveryOf(app, id))?.attemptLog.length ? true : undefined));
    const [attempt] = (await deliveryOf(app, id)).attemptLog;
    assert.equal(attempt.statusCode, 200, JSON.stringify(attempt));
    assert.equal(attempt.responseStart, "z".repeat(1024));
  });
  listener.close();
  await served.catch(() => {});
});

Deno.test("[relay] a redirect counts as a failure and is not followed", async () => {
  const shop = startShopReceiver((n) =>
    n === 1
      ? new Response(null, { status: 302, headers: { location: "http://127.0.0.1:9/elsewhere" } })
      : new Response("ok")
  );
  await withApp({}, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("delivery", async () => ((await deliveryOf(app, id))?.status === "delivered" ? true : undefined));
    const d = await deliveryOf(app, id);
    assert.deepEqual(d.attemptLog.map((a) => a.statusCode), [302, 200]);
    assert.match(d.attemptLog[0].error!, /redirect 302 not followed/);
  });
  await shop.close();
});

Deno.test("[relay] 429 with Retry-After waits at least that long", async () => {
  const shop = startShopReceiver((n) =>
    n === 1 ? new Response("slow down", { status: 429, headers: { "retry-after": "1" } }) : new Response("ok")
  );
  await withApp({}, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("delivery", async () => ((await deliveryOf(app, id))?.status === "delivered" ? true : undefined));
    const gap = shop.received[1].at - shop.received[0].at;
    assert.ok(gap >= 950, `second attempt came after ${gap} ms`);
  });
  await shop.close();
});

Deno.test("[relay] a slow shop times out, a huge answer is cut to 1 KiB, and the schedule ends in failed", async () => {
  const shop = startShopReceiver(async (n) => {
    if (n === 1) await sleep(800);
    return new Response("x".repeat(100_000), { status: 500 });
  });
  await withApp({ env: { POSTBACK_TIMEOUT_MS: "300", POSTBACK_SCHEDULE: "0,0.1,0.1" } }, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("failure", async () => ((await deliveryOf(app, id))?.status === "failed" ? true : undefined));
    const d = await deliveryOf(app, id);
    assert.equal(d.attemptLog.length, 3);
    assert.equal(d.attemptLog[0].statusCode, null);
    assert.match(d.attemptLog[0].error!, /no answer within 300 ms/);
    assert.equal(d.attemptLog[1].responseStart.length, 1024);
  });
  await sleep(600); // let the slow handler finish before shutting the shop
  await shop.close();
});

Deno.test("[relay] an operator resend delivers a failed postback with the same webhook-id", async () => {
  let healthy = false;
  const shop = startShopReceiver(() => new Response("", { status: healthy ? 200 : 500 }));
  await withApp({ env: { POSTBACK_SCHEDULE: "0,0.1" } }, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("failure", async () => ((await deliveryOf(app, id))?.status === "failed" ? true : undefined));
    healthy = true;
    const d = await resendPostback(app.server.ctx, id, { actor: "test" });
    assert.equal(d.status, "delivered");
    assert.equal(d.attempts, 3);
    // Every resend reports its own attempt's result, even with the queue listener running beside it.
    for (let i = 0; i < 15; i++) {
      assert.equal((await resendPostback(app.server.ctx, id, { actor: "test" })).status, "delivered");
    }
    assert.equal(new Set(shop.received.map((r) => r.headers.get("webhook-id"))).size, 1);
  });
  await shop.close();
});

Deno.test("[relay] a resend's audit entry commits with the put-back of its postback, before the shop is called, whatever the shop then answers", async () => {
  const shop = startShopReceiver(() => new Response("", { status: 500 }));
  await withApp({ env: { POSTBACK_SCHEDULE: "0,0.1" } }, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("failure", async () => ((await deliveryOf(app, id))?.status === "failed" ? true : undefined));
    const failed = await deliveryOf(app, id);
    const sentBefore = shop.received.length;
    // The shop still refuses it: the resend is audited all the same, its answer being the attempt's own record.
    const recorded = recordCommits(app.kv);
    const d = await resendPostback(app.server.ctx, id, { actor: "ops@example.com" }).finally(recorded.stop);
    assert.equal(shop.received.length, sentBefore + 1, "sent once");
    assert.notEqual(d.status, "delivered");
    const audited = recorded.commits.filter((keys) => keys.includes("audit"));
    assert.equal(audited.length, 1, "one audit entry");
    assert.deepEqual(
      audited[0].filter((k) => k === "deliveries" || k === "payment_events" || k === "audit"),
      ["deliveries", "payment_events", "audit"],
      "in the commit that puts the postback back and adds it to the timeline",
    );
    const [entry] = await searchAudit(app.kv, { query: "postback.resend", limit: 1 });
    assert.equal(entry.actor, "ops@example.com");
    assert.equal(entry.target, id);
    assert.deepEqual(entry.before, { deliveryId: failed.id, status: "failed" });
    assert.deepEqual(entry.after, { deliveryId: failed.id, status: "pending" });
  });
  await shop.close();
});

Deno.test("[relay] an operator resend of a postback still retrying sends it now and keeps its place: refused again, it waits where it was", async () => {
  let down = true;
  const shop = startShopReceiver(() => new Response(down ? "down" : "ok", { status: down ? 503 : 200 }));
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_SCHEDULE: "0,0.1,3600,3600" } }, async (app) => {
    const ctx = app.server.ctx;
    const id = await paidPayment(app, shop.url);
    const waiting = await waitFor("two attempts, the next an hour away", async () => {
      const d = await deliveryOf(app, id);
      return d?.attempts === 2 ? d : undefined;
    });
    assert.deepEqual([waiting.status, waiting.scheduleStep], ["pending", 2]);
    // Resent while the shop is still down, twice: each is one attempt now, and the postback goes back to its step and
    // its hour-away try. Before, each resend started the schedule again (its next try 0.1 s away, then an hour, and
    // so on), so a shop that stayed down never ended failed.
    for (const n of [3, 4]) {
      const d = await resendPostback(ctx, id, { actor: "test" });
      assert.equal(d.attempts, n);
      assert.deepEqual([d.status, d.scheduleStep], ["pending", 2], `resend ${n - 2}: the same step`);
      assert.ok(d.nextAttemptAt >= waiting.nextAttemptAt, "its next try is no sooner than it was");
    }
    down = false;
    assert.equal((await resendPostback(ctx, id, { actor: "test" })).status, "delivered");
    assert.equal(new Set(shop.received.map((r) => r.headers.get("webhook-id"))).size, 1, "one webhook-id throughout");
  });
  await shop.close();
});

Deno.test("[relay] an operator resend while the postback's attempt is under way is refused, not sent a second time beside it", async () => {
  const { shop, answer } = startHeldShop();
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_TIMEOUT_MS: "15000" } }, async (app) => {
    const id = await paidPaymentUnderWay(app, shop);
    await assert.rejects(
      resendPostback(app.server.ctx, id, { actor: "test" }),
      (err: unknown) => err instanceof ConflictError && err.code === "postback_in_flight",
    );
    // The console says so on the payment's page.
    const b = await operatorBrowser(app);
    await b.get(`/admin/payments/${id}`);
    const page = await b.post(`/admin/payments/${id}/resend`, {});
    assert.equal(page.status, 422, "re-rendered with the refusal");
    assert.match(page.text, /Not resent: This postback is being sent right now/);
    await b.get("/admin/deliveries");
    const fromList = await b.post("/admin/deliveries/resend", { paymentId: id });
    assert.equal(fromList.status, 422, "the list re-rendered with the refusal");
    assert.match(fromList.text, /Not resent: This postback is being sent right now/);
    assert.match(fromList.text, /class="flash bad"/, "shown as a refusal, not a success");
    // So does the shop's portal.
    const staff = await portalBrowser(app);
    await staff.get(`/portal/payments/${id}`);
    const inPortal = await staff.post(`/portal/payments/${id}/resend`, {});
    assert.equal(inPortal.status, 422, "re-rendered with the refusal");
    assert.match(inPortal.text, /Not resent: This postback is being sent right now/);
    // Another shop's staff find no such payment, refusal or not.
    const other = await createShop(app.kv, { name: "Other" }, { allowLocalUrls: true, now: Date.now() });
    const stranger = await portalBrowser(app, other.shop.id);
    await stranger.get("/portal/payments");
    assert.equal((await stranger.post(`/portal/payments/${id}/resend`, {})).status, 404);
    answer();
    await waitFor("delivery", async () => ((await deliveryOf(app, id))?.status === "delivered" ? true : undefined));
    assert.equal(shop.received.length, 1, "the refused resend sent nothing");
    // Once the attempt is over, a resend goes out.
    assert.equal((await resendPostback(app.server.ctx, id, { actor: "test" })).status, "delivered");
    assert.equal(shop.received.length, 2);
  });
  await shop.close();
});

Deno.test("[relay] a resend clears a lease too far off to be an attempt's (a clock that jumped), and sends", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("delivery", async () => ((await deliveryOf(app, id))?.status === "delivered" ? true : undefined));
    // As a process whose clock ran an hour ahead would leave it: pending, leased for an hour.
    const entry = await getDeliveryEntry(app.kv, (await deliveryOf(app, id))!.id);
    const stale = { ...entry.value!, status: "pending" as const, leaseUntil: Date.now() + 3_600_000 };
    assert.ok((await app.kv.atomic().check(entry).set(entry.key, stale).commit()).ok);
    assert.equal((await resendPostback(app.server.ctx, id, { actor: "test" })).status, "delivered");
    assert.equal(shop.received.length, 2);
  });
  await shop.close();
});

Deno.test("[relay] a sweep takes a postback whose lease ends further ahead than a live attempt's can (a clock that ran ahead), and leaves a live one", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const [stale, live] = await storeDueDeliveries(app, shop.url, 2, "leased", Date.now() - 1);
    const lease = async (d: Delivery, until: number) => {
      const entry = await getDeliveryEntry(app.kv, d.id);
      const leased = { ...entry.value!, leaseUntil: until, leaseToken: crypto.randomUUID() };
      assert.ok((await app.kv.atomic().check(entry).set(entry.key, leased).commit()).ok);
    };
    // As a process whose clock ran an hour ahead would leave it, and as a live attempt elsewhere holds one.
    await lease(stale, Date.now() + 3_600_000);
    await lease(live, Date.now() + DELIVERY_LEASE_MS);
    await app.server.runner.sweep();
    await waitFor("the stale one", () => (shop.received.length === 1 ? true : undefined));
    await relayPool(app.server.ctx).idle();
    assert.deepEqual(shop.received.map((r) => r.headers.get("webhook-id")), [stale.id], "not the live one");
    assert.equal((await getDeliveryEntry(app.kv, stale.id)).value?.status, "delivered");
  });
  await shop.close();
});

Deno.test("[relay] a postback to a host the shop has taken off its allowed hosts is not sent, and goes once the host is back", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_SCHEDULE: "0,0.2,30" } }, async (app) => {
    const settings = (allowedHosts: string[]) =>
      updateShopSettings(app.kv, app.shop.id, { name: "Test shop", allowedHosts, defaultPostbackUrl: null }, {
        actor: "test",
        allowLocalUrls: true,
        now: Date.now(),
      });
    await settings(["127.0.0.1"]);
    const init = await callInit(app, paymentBody({ id: "o-hosts", postbackUrl: shop.url }));
    assert.equal(init.status, 201, JSON.stringify(init.body));
    await settings(["shop.example"]);
    await buyerSettles(init.body.url, "paid");
    await waitFor(
      "the first attempt",
      async () => ((await deliveryOf(app, init.body.id))?.attempts ? true : undefined),
    );
    const refused = (await deliveryOf(app, init.body.id))!;
    assert.match(refused.lastError ?? "", /host 127\.0\.0\.1 is not in the shop's allowed hosts/);
    assert.equal(shop.received.length, 0, "nothing sent to the host taken off");
    await settings(["127.0.0.1"]);
    await waitFor("delivery", async () => ((await deliveryOf(app, init.body.id))?.status === "delivered" || undefined));
    assert.equal(shop.received.length, 1);
  });
  await shop.close();
});

Deno.test("[relay] a replay that found a postback failed leaves it alone once an operator's resend has it under way: not sent a second time beside it", async () => {
  // The first attempt fails (a schedule of one attempt: failed at once); the resend's attempt waits for its answer.
  let answer!: () => void;
  const answered = new Promise<void>((r) => (answer = r));
  const shop = startShopReceiver(async (n) => {
    if (n === 1) return new Response("down", { status: 500 });
    await answered;
    return new Response("ok");
  });
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_SCHEDULE: "0", POSTBACK_TIMEOUT_MS: "15000" } }, async (app) => {
    const ctx = app.server.ctx;
    const id = await paidPayment(app, shop.url);
    await waitFor("failure", async () => ((await deliveryOf(app, id))?.status === "failed" ? true : undefined));
    const deliveryId = (await deliveryOf(app, id))!.id;
    // The replay reads the postback (failed) and is held right there, as a replay of many is between its reads and
    // its writes, while the shop's staff resend it.
    const reads = holdFirstDeliveryRead(app.kv);
    const replay = replayFailedDeliveries(ctx, app.shop.id, 0, { actor: "test" });
    await reads.held;
    const resend = resendPostback(ctx, id, { actor: "test" });
    await waitFor("the resend under way", () => (shop.received.length === 2 ? true : undefined));
    reads.release();
    assert.deepEqual(
      await replay,
      { queued: 0, inFlight: 1, resumeAfter: null },
      "being sent by the resend: left alone",
    );
    // Whatever the replay did had its chance to reach the shop: the pool is idle again.
    await app.server.runner.idle();
    await relayPool(ctx).idle();
    answer();
    assert.equal((await resend).status, "delivered", "the resend's outcome is recorded");
    assert.equal(shop.received.length, 2, "sent once by the resend, not again by the replay");
    assert.equal((await getDeliveryEntry(app.kv, deliveryId)).value?.status, "delivered");
  });
  await shop.close();
});

Deno.test("[relay] a replay puts back every failed postback of the shop since the time asked, however many older ones need attention, but not those answered 410 Gone", async () => {
  // The shop holds its answers: a replayed postback stays on the attention list while the replay goes on.
  const { shop, answer } = startHeldShop();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const now = Date.now();
    // More failed postbacks from a day ago than the console's attention listing reads (5,000), then one recent one.
    const failed = (tag: string, at: number, fields: Partial<Delivery> = {}) =>
      failedDelivery(at, { paymentId: `pay_${tag}`, shopId: app.shop.id, url: shop.url }, fields);
    const old = Array.from({ length: 5_001 }, (_, i) => failed(`old_${i}`, now - 86_400_000));
    const recent = failed("recent", now - 60_000);
    // One the shop turned away (410 Gone): sent again only by hand, as the runbook says. After the recent one, in
    // id order.
    const gone = failed("gone", now - 30_000, { attempts: 1, lastStatusCode: 410, lastError: null });
    await storeAttentionDeliveries(app.kv, [...old, recent, gone]);
    // The counts are taken over the newest 5,000, and say there may be more.
    assert.deepEqual(await countAttentionDeliveries(app.kv, app.shop.id), { failing: 0, failed: 5_000, more: true });
    const overview = (await (await operatorBrowser(app)).get("/admin")).text;
    assert.match(overview, /5,000\+\s*<\/strong>\s*failed/, "shown as at least 5,000");
    // The console's list (200 newest by update) shows the newest failures, not the first 5,000 ids' newest.
    const listed = (await listAttentionDeliveries(app.kv, { shopId: app.shop.id, limit: 200 })).map((d) => d.id);
    assert.deepEqual(listed.slice(0, 2), [gone.id, recent.id]);
    // In batches of a request each (the console's "Go on"), then the recent one: the newest ids come last.
    const since = now - 3_600_000;
    const first = await replayFailedDeliveries(app.server.ctx, app.shop.id, since, { actor: "test", batch: 1 });
    assert.deepEqual(first, { queued: 1, inFlight: 0, resumeAfter: recent.id });
    assert.deepEqual(
      await replayFailedDeliveries(app.server.ctx, app.shop.id, since, { actor: "test", batch: 1, after: recent.id }),
      {
        queued: 0,
        inFlight: 0,
        resumeAfter: null,
      },
    );
    await waitFor("the recent postback", () => (shop.received.length === 1 ? true : undefined));
    assert.equal(shop.received[0].headers.get("webhook-id"), recent.id);
    assert.equal((await getDeliveryEntry(app.kv, gone.id)).value?.status, "failed", "the gone one stays failed");
    answer();
  });
  answer();
  await shop.close();
});

Deno.test("[relay] the list of postbacks needing attention across shops shows each shop's newest, whichever shop's keys come first", async () => {
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const now = Date.now();
    const other = await createShop(app.kv, { name: "Other" }, { allowLocalUrls: true, now });
    const failed = (shopId: string, tag: string, createdAt: number) =>
      failedDelivery(createdAt, { paymentId: `pay_${tag}`, shopId });
    // The shop whose id sorts first has an older backlog longer than a listing reads (5,000 keys, once read first in
    // key order); the other shop one failure, the newest of all.
    const [first, second] = [app.shop.id, other.shop.id].sort();
    const since = now - 86_400_000;
    const backlog = Array.from({ length: 5_001 }, (_, i) => failed(first, `old${i}`, since + i));
    const newest = failed(second, "newest", now - 1_000);
    await storeAttentionDeliveries(app.kv, [...backlog, newest]);
    const listed = await listAttentionDeliveries(app.kv, { limit: 10 });
    assert.equal(listed.length, 10);
    assert.ok(listed.some((d) => d.id === newest.id), "the other shop's failure is listed");
    assert.ok(listed.every((d) => d.id === newest.id || d.createdAt >= since + 5_001 - 9), "with the newest others");
  });
});

Deno.test("[relay] the list of postbacks needing attention across shops reads about `limit` index entries, not `limit` per shop", async () => {
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const now = Date.now();
    const shops = [app.shop.id];
    for (let i = 0; i < 4; i++) {
      shops.push((await createShop(app.kv, { name: `S${i}` }, { allowLocalUrls: true, now })).shop.id);
    }
    // Each shop a backlog of 30, created in turn across shops.
    const all: Delivery[] = [];
    for (let n = 0; n < 30; n++) {
      shops.forEach((shopId, i) => {
        const createdAt = now - 100_000 + n * 100 + i;
        all.push(failedDelivery(createdAt, { paymentId: `pay_bound${i}_${n}`, shopId }));
      });
    }
    await storeAttentionDeliveries(app.kv, all);
    const list = app.kv.list;
    let read = 0;
    app.kv.list = ((selector, options) => {
      const iter = list.call(app.kv, selector, options);
      const next = iter.next.bind(iter);
      iter.next = async () => {
        const r = await next();
        if (!r.done && r.value.key[0] === "deliveries_attention") read++;
        return r;
      };
      return iter;
    }) as Deno.Kv["list"];
    let listed: Delivery[];
    try {
      listed = await listAttentionDeliveries(app.kv, { limit: 20 });
    } finally {
      app.kv.list = list;
    }
    const newest = all.toSorted((a, b) => b.createdAt - a.createdAt).slice(0, 20).map((d) => d.id).sort();
    assert.deepEqual(listed.map((d) => d.id).sort(), newest);
    assert.ok(read <= 20 + shops.length, `read ${read} index entries for 20 across ${shops.length} shops`);
  });
});

Deno.test("[relay] a claim whose commit stalled is claimed again before the postback goes, and one another worker took meanwhile is not sent", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const [stalled, taken] = await storeDueDeliveries(app, shop.url, 2, "stall", Date.now() - 1);
    // The clock as an attempt sees it: its claim is built now, and returns 5 s later (a store that stalled), with
    // less than the keeper's renewal margin left.
    const stallingClock = () => {
      let calls = 0;
      const start = Date.now();
      return { ...app.server.ctx, now: () => (calls++ === 0 ? start : Date.now() + 5_000) };
    };

    assert.ok(
      await attemptDelivery(stallingClock(), await getDeliveryEntry(app.kv, stalled.id) as Deno.KvEntry<Delivery>),
    );
    assert.deepEqual(shop.received.map((r) => r.headers.get("webhook-id")), [stalled.id], "claimed again, then sent");
    assert.equal((await getDeliveryEntry(app.kv, stalled.id)).value?.status, "delivered");

    // While the claim stalled, its lease ran out and another worker claimed the delivery.
    const atomic = app.kv.atomic;
    let competed = false;
    app.kv.atomic = () => {
      const op = atomic.call(app.kv);
      const commit = op.commit.bind(op);
      op.commit = async () => {
        const result = await commit();
        if (!competed) {
          competed = true;
          const ours = await getDeliveryEntry(app.kv, taken.id);
          const theirs = {
            ...ours.value!,
            leaseUntil: Date.now() + DELIVERY_LEASE_MS,
            leaseToken: crypto.randomUUID(),
          };
          assert.ok((await atomic.call(app.kv).check(ours).set(ours.key, theirs).commit()).ok);
        }
        return result;
      };
      return op;
    };
    try {
      const entry = await getDeliveryEntry(app.kv, taken.id) as Deno.KvEntry<Delivery>;
      assert.equal(await attemptDelivery(stallingClock(), entry), false);
    } finally {
      app.kv.atomic = atomic;
    }
    assert.ok(competed);
    assert.equal(shop.received.length, 1, "not sent beside the other worker's attempt");
  });
  await shop.close();
});

/**
 * Makes the next commit that records a postback attempt fail with a store error once: before it is stored, or
 * (`landed`) after, as a commit whose answer was lost. `failed` resolves once it has.
 */
function failNextOutcomeCommit(kv: Deno.Kv, opts: { landed: boolean }) {
  const atomic = kv.atomic;
  let fail!: () => void;
  const failed = new Promise<void>((r) => (fail = r));
  kv.atomic = () => {
    const op = atomic.call(kv);
    const set = op.set.bind(op);
    const commit = op.commit.bind(op);
    let recordsAttempt = false;
    op.set = (key, value, options) => {
      if (key[0] === "delivery_attempts") recordsAttempt = true;
      return set(key, value, options);
    };
    op.commit = async () => {
      if (!recordsAttempt) return await commit();
      kv.atomic = atomic;
      if (opts.landed) await commit();
      fail();
      throw new TypeError("store unavailable (test)");
    };
    return op;
  };
  return { failed };
}

Deno.test("[relay] an attempt's outcome that the store fails to take is tried again, and one that landed despite the error counts as stored", async () => {
  let answers = 0;
  const shop = startShopReceiver(() => new Response("", { status: ++answers === 2 ? 500 : 200 }));
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_SCHEDULE: "0,0.2,30" } }, async (app) => {
    // Not stored: tried again, so the shop's 2xx is recorded and nothing is sent twice.
    const first = failNextOutcomeCommit(app.kv, { landed: false });
    const [d] = await storeDueDeliveries(app, shop.url, 1, "outcome", Date.now() - 1);
    assert.ok(await attemptDelivery(app.server.ctx, await getDeliveryEntry(app.kv, d.id) as Deno.KvEntry<Delivery>));
    await first.failed;
    assert.equal((await getDeliveryEntry(app.kv, d.id)).value?.status, "delivered");
    assert.equal(shop.received.length, 1);

    // Stored, but the commit answered with an error: taken as stored, so the retry (the shop answered 500) is kicked
    // on its schedule instead of waiting for the cron's next run.
    const second = failNextOutcomeCommit(app.kv, { landed: true });
    const [e] = await storeDueDeliveries(app, shop.url, 1, "landed", Date.now() - 1);
    assert.ok(await attemptDelivery(app.server.ctx, await getDeliveryEntry(app.kv, e.id) as Deno.KvEntry<Delivery>));
    await second.failed;
    await waitFor(
      "the retry",
      async () => ((await getDeliveryEntry(app.kv, e.id)).value?.status === "delivered" || undefined),
      3_000,
    );
    assert.equal(shop.received.length, 3);
  });
  await shop.close();
});

/** Makes every commit that records a postback attempt fail with a store error for the next `ms` (a store away a moment). */
/** The store refuses commits of attempts' outcomes for `ms`, from the first one it refuses (not from now: on a busy machine the POST before it can take longer than that). */
function failOutcomeCommitsFor(kv: Deno.Kv, ms: number) {
  const atomic = kv.atomic;
  let until = Infinity;
  let failures = 0;
  kv.atomic = () => {
    const op = atomic.call(kv);
    const set = op.set.bind(op);
    const commit = op.commit.bind(op);
    let recordsAttempt = false;
    op.set = (key, value, options) => {
      if (key[0] === "delivery_attempts") recordsAttempt = true;
      return set(key, value, options);
    };
    op.commit = async () => {
      if (!recordsAttempt || Date.now() >= until) return await commit();
      if (!failures++) until = Date.now() + ms;
      throw new TypeError("store unavailable (test)");
    };
    return op;
  };
  return { failures: () => failures, restore: () => (kv.atomic = atomic) };
}

Deno.test("[relay] an attempt's outcome the store fails to take for a moment is stored once it is back, so the shop's 2xx costs it no second delivery", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const [d] = await storeDueDeliveries(app, shop.url, 1, "away", Date.now() - 1);
    // Away past the first retry (0.2 s later), back before the second (1 s after that).
    const away = failOutcomeCommitsFor(app.kv, 600);
    try {
      const entry = await getDeliveryEntry(app.kv, d.id) as Deno.KvEntry<Delivery>;
      assert.equal((await attemptDelivery(app.server.ctx, entry) || null)?.kind, "delivered");
    } finally {
      away.restore();
    }
    assert.ok(away.failures() > 1, "the store refused it more than once");
    assert.equal((await getDeliveryEntry(app.kv, d.id)).value?.status, "delivered");
    assert.equal(shop.received.length, 1);
  });
  await shop.close();
});

Deno.test("[relay] outcomes stored by a group commit that reported an error count as stored, though the group's write-by-write retry refuses them", async () => {
  // Each postback's first attempt fails (500), its retry is delivered.
  const seen = new Set<string>();
  const shop = startShopReceiver((_, req) => {
    const id = req.headers.get("webhook-id")!;
    const first = !seen.has(id);
    seen.add(id);
    return new Response("", { status: first ? 500 : 200 });
  });
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_SCHEDULE: "0,0.2,30" } }, async (app) => {
    const deliveries = await storeDueDeliveries(app, shop.url, 3, "grouped", Date.now() - 1);
    // The first outcome's commit is slow, so the next two wait for it and go as one group, which lands and reports
    // an error: the group committer then sends them write by write, and their checks fail on their own writes.
    const atomic = app.kv.atomic;
    let slowed = false;
    let failedGroup = false;
    app.kv.atomic = () => {
      const op = atomic.call(app.kv);
      const set = op.set.bind(op);
      const commit = op.commit.bind(op);
      let outcomes = 0;
      op.set = (key, value, options) => {
        if (key[0] === "delivery_attempts") outcomes++;
        return set(key, value, options);
      };
      op.commit = async () => {
        if (outcomes === 1 && !slowed) {
          slowed = true;
          await sleep(300);
        } else if (outcomes > 1 && !failedGroup) {
          failedGroup = true;
          await commit();
          throw new TypeError("store unavailable (test)");
        }
        return await commit();
      };
      return op;
    };
    try {
      const entries = await Promise.all(deliveries.map((d) => getDeliveryEntry(app.kv, d.id)));
      await Promise.all(entries.map((e) => attemptDelivery(app.server.ctx, e as Deno.KvEntry<Delivery>)));
    } finally {
      app.kv.atomic = atomic;
    }
    assert.ok(failedGroup, "two outcomes shared a commit");
    // Taken as stored, each retry is kicked on its schedule (0.2 s), not left to the cron's next run.
    await waitFor("the retries", async () => {
      const stored = await Promise.all(deliveries.map((d) => getDeliveryEntry(app.kv, d.id)));
      return stored.every((e) => e.value?.status === "delivered") || undefined;
    }, 3_000);
    assert.equal(shop.received.length, 6);
  });
  await shop.close();
});

Deno.test("[relay] with no queue, a retry due at once (a schedule step of 0 s) is kicked after its attempt has left the pool, not joined to it and dropped", async () => {
  const shop = startShopReceiver((n) => new Response("", { status: n === 1 ? 500 : 200 }));
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_SCHEDULE: "0,0,5" } }, async (app) => {
    const id = await paidPayment(app, shop.url);
    // No sweep runs here: only the retry's kick can send it again before the cron's next minute.
    await waitFor(
      "delivery",
      async () => ((await deliveryOf(app, id))?.status === "delivered" ? true : undefined),
      3_000,
    );
    assert.equal(shop.received.length, 2);
  });
  await shop.close();
});

/**
 * A payment whose postback host resolves to loopback when it is made; then `atSend` answers the lookups and the
 * payment is paid. Returns its postback after the first attempt (the next is a minute away) and its first attempt.
 */
async function firstAttemptAfterDnsChange(atSend: Resolver, env: Record<string, string> = {}) {
  let resolver: Resolver = () => Promise.resolve(["127.0.0.1"]);
  const shop = startShopReceiver();
  const port = new URL(shop.url).port;
  const opts = {
    resolve: (h: string, signal?: AbortSignal) => resolver(h, signal),
    env: { POSTBACK_SCHEDULE: "0,60", ...env },
  };
  try {
    let delivery: Awaited<ReturnType<typeof deliveryOf>> | undefined;
    await withApp(opts, async (app) => {
      const init = await callInit(app, paymentBody({ id: "o-dns", postbackUrl: `http://shop.test:${port}/pb` }));
      assert.equal(init.status, 201);
      resolver = atSend;
      await buyerSettles(init.body.url, "paid");
      await waitFor(
        "an attempt",
        async () => ((await deliveryOf(app, init.body.id))?.attemptLog.length ? true : undefined),
      );
      delivery = await deliveryOf(app, init.body.id);
    });
    assert.equal(shop.received.length, 0, "nothing was sent");
    assert.equal(delivery!.status, "pending", "the postback is retried on its schedule");
    return delivery!.attemptLog[0];
  } finally {
    await shop.close();
  }
}

Deno.test("[relay] the postback address is checked again at send time (DNS can change)", async () => {
  // The name now points inside our network.
  const attempt = await firstAttemptAfterDnsChange(() => Promise.resolve(["10.0.0.7"]));
  assert.match(attempt.error!, /resolves to a private address/);
});

Deno.test("[relay] a host lookup that hangs at send time ends with the attempt's timeout", async () => {
  // It hangs until the attempt gives up on it (it honours the attempt's signal).
  const hangs: Resolver = (_host, signal) =>
    new Promise((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason)));
  const attempt = await firstAttemptAfterDnsChange(hangs, { POSTBACK_TIMEOUT_MS: "300" });
  assert.equal(attempt.error, "no answer within 300 ms");
  assert.ok(attempt.latencyMs < 2_000, `the attempt took ${attempt.latencyMs} ms`);
});

Deno.test("[relay] a host lookup that times out at send time is a retry that says so", async () => {
  const attempt = await firstAttemptAfterDnsChange((host) => Promise.reject(new DnsTimeoutError(host, 5_000)));
  assert.equal(attempt.error, "postbackUrl host shop.test got no DNS answer within 5 s");
});

Deno.test("[relay] after a secret rotation postbacks carry both signatures for 24 hours", async () => {
  const { rotateShopSecret } = await import("../lib/shops.ts");
  const shop = startShopReceiver();
  await withApp({}, async (app) => {
    const { secret } = await rotateShopSecret(app.kv, app.shop.id, { actor: "test", now: Date.now() });
    await paidPayment(app, shop.url);
    const r = await waitFor("the postback", () => shop.received[0]);
    const headers = Object.fromEntries(r.headers);
    assert.equal(headers["webhook-signature"].split(" ").length, 2);
    new Webhook(secret).verify(r.body, headers);
    new Webhook(app.shop.webhookSecret).verify(r.body, headers);
  });
  await shop.close();
});

Deno.test('[relay] a shop that refuses the connection reads as "connection refused", not a TypeError', async () => {
  // A port that was free a moment ago: nothing listens there, so the connection is refused.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await withApp({ env: { POSTBACK_SCHEDULE: "0,0.1" } }, async (app) => {
    const id = await paidPayment(app, `http://127.0.0.1:${port}/postback`);
    await waitFor("failure", async () => ((await deliveryOf(app, id))?.status === "failed" ? true : undefined));
    const d = await deliveryOf(app, id);
    assert.equal(d.attemptLog[0].error, "connection refused");
    assert.ok(!/TypeError|fetch failed/.test(d.lastError ?? ""), d.lastError ?? "");
  });
});

Deno.test("[relay] a shop that answers slowly only delays its own postbacks, in the pool and in the sweep; one delivery offered twice is sent once", async () => {
  const SLOW_MS = 1_000;
  // More than a sweep has slots for postbacks (128): a restart's backlog of one slow shop.
  const SLOW_BACKLOG = 160;
  const slow = startShopReceiver(async () => {
    await sleep(SLOW_MS);
    return new Response("ok");
  });
  const fast = startShopReceiver();
  await withApp({ env: { POSTBACK_TIMEOUT_MS: "10000" } }, async (app) => {
    // The slow shop's postbacks fell due first, then the fast one's: the sweep lists them in that order.
    const now = Date.now();
    const backlog = [
      ...await storeDueDeliveries(app, slow.url, SLOW_BACKLOG, "slow", now - 2_000),
      ...await storeDueDeliveries(app, fast.url, 10, "fast", now - 1_000),
    ];

    const started = Date.now();
    const sweep = app.server.runner.sweep();
    // The queue listener or a kick may offer the same delivery while the sweep has it: still one attempt.
    const twice = backlog[backlog.length - 1].id;
    await Promise.all([
      app.server.runner.run({ kind: "postback", id: twice }),
      app.server.runner.run({ kind: "postback", id: twice }),
    ]);
    await waitFor("the fast shop's postbacks", () => (fast.received.length >= 10 ? true : undefined), 5_000);
    const fastDoneMs = Date.now() - started;
    assert.ok(fastDoneMs < SLOW_MS, `the fast shop waited ${fastDoneMs} ms behind the slow one`);
    assert.ok(slow.received.length <= DEFAULT_POOL_LIMITS.perDestination, "the slow shop holds only its own share");

    // While the slow backlog is still on its way, the next sweep (cron, start-up) lists the index again and finds
    // work that fell due meanwhile, instead of waiting for the first sweep's end.
    await storeDueDeliveries(app, fast.url, 1, "later", Date.now() - 1);
    const again = Date.now();
    const secondSweep = app.server.runner.sweep();
    await waitFor("the later postback", () => (fast.received.length >= 11 ? true : undefined), 5_000);
    assert.ok(Date.now() - again < SLOW_MS, "the second sweep waited for the first one's slow backlog");

    assert.equal(await sweep, SLOW_BACKLOG + 10);
    await secondSweep;
    assert.equal(slow.received.length, SLOW_BACKLOG);
    assert.equal(fast.received.filter((r) => r.headers.get("webhook-id") === twice).length, 1);
    assert.equal(fast.received.length, 11);
  });
  await Promise.all([slow.close(), fast.close()]);
});

Deno.test("[relay] the cron's sweep waits for a hanging shop's backlog only a while: the next cron run is not held up and finds other shops' postbacks", async () => {
  const hanging = startHeldShop();
  const fast = startShopReceiver();
  await withPatientApp(async (app) => {
    // More than the hanging shop's share: some wait parked, and none ends while the shop hangs.
    const backlog = DEFAULT_POOL_LIMITS.perDestination + 6;
    await storeDueDeliveries(app, hanging.shop.url, backlog, "hanging", Date.now() - 1_000);
    const WAIT_MS = 300;
    let started = Date.now();
    await app.server.runner.cronSweep(WAIT_MS);
    const tookMs = Date.now() - started;
    assert.ok(tookMs < 5_000, "the cron run waited for the hanging shop's answers");
    assert.ok(tookMs >= WAIT_MS - 20, `the cron run returned after ${tookMs} ms with work under way`);
    const share = DEFAULT_POOL_LIMITS.perDestination;
    await waitFor("its share under way", () => (hanging.shop.received.length === share ? true : undefined));

    // A minute later, the next cron run: another shop's postback that fell due meanwhile goes out.
    await storeDueDeliveries(app, fast.url, 1, "meanwhile", Date.now() - 1);
    started = Date.now();
    await app.server.runner.cronSweep(WAIT_MS);
    assert.ok(Date.now() - started < 5_000);
    await waitFor("the other shop's postback", () => (fast.received.length === 1 ? true : undefined));
    assert.equal(hanging.shop.received.length, share, "the rest still wait for the hanging shop's share");

    // The runs left the hanging shop's postbacks to the pool, which sends each once when the shop answers.
    hanging.answer();
    await waitFor("the backlog", () => (hanging.shop.received.length === backlog ? true : undefined), 10_000);
    await app.server.runner.sweep();
    assert.equal(hanging.shop.received.length, backlog, "none sent twice");
    assert.equal(new Set(hanging.shop.received.map((r) => r.headers.get("webhook-id"))).size, backlog);

    // With nothing left hanging, a cron run returns once its work is done, not at its limit.
    await storeDueDeliveries(app, fast.url, 1, "idle", Date.now() - 1);
    started = Date.now();
    await app.server.runner.cronSweep(10_000);
    assert.ok(Date.now() - started < 2_000, "the cron run waited out its limit with nothing under way");
    assert.equal(fast.received.length, 2);
  });
  await Promise.all([hanging.shop.close(), fast.close()]);
});

Deno.test("[relay] sweeps that do not wait for every job (start-up, a timer, the cron's run) hold nothing on the postbacks they find still waiting", async () => {
  const hanging = startHeldShop();
  await withPatientApp(async (app) => {
    // Counts what is attached to each offered postback's end: a waiting sweep attaches one reaction per postback,
    // kept until that postback ends.
    const pool = relayPool(app.server.ctx);
    const offerTracked = pool.offerTracked.bind(pool);
    const counted = new WeakSet<Promise<void>>();
    let reactions = 0;
    let offers = 0;
    pool.offerTracked = (id: string) => {
      offers++;
      const offered = offerTracked(id);
      const done = offered.done;
      if (!counted.has(done)) {
        counted.add(done);
        const then = done.then.bind(done);
        done.then = ((...args: Parameters<typeof then>) => (reactions++, then(...args))) as typeof done.then;
      }
      return offered;
    };
    const backlog = DEFAULT_POOL_LIMITS.perDestination + 6;
    await storeDueDeliveries(app, hanging.shop.url, backlog, "hanging", Date.now() - 1_000);
    // Twenty timer ticks while the backlog waits for the shop: each lists the index and finds all of it again.
    for (let i = 0; i < 20; i++) assert.equal(await app.server.runner.startSweep(), backlog);
    assert.equal(offers, 20 * backlog, "every tick went through the counted offers");
    // The cron's run waits a while, by looking.
    await app.server.runner.cronSweep(300);
    assert.equal(offers, 21 * backlog);
    assert.equal(reactions, 0);
    // The count sees a sweep that waits for each job.
    const waiting = app.server.runner.sweep();
    await waitFor("the waiting sweep's reactions", () => (reactions === backlog ? true : undefined));

    hanging.answer();
    assert.equal(await waiting, backlog);
    assert.equal(hanging.shop.received.length, backlog);
  });
  await hanging.shop.close();
});

/**
 * Five shops that do not answer, two attempts each (more than a pool of 8 has room for), all under way in a pool
 * with `limits`; then a fast shop's postback is offered. Answers how long the fast one took, at most `patienceMs`
 * (null past that), and checks that every hanging postback was sent once after the shops answered.
 */
async function fastBesideHangingShops(limits: Partial<PoolLimits>, patienceMs: number) {
  const hanging = Array.from({ length: 5 }, () => startHeldShop());
  const fast = startShopReceiver();
  let tookMs: number | null = null;
  await withPatientApp(async (app) => {
    const pool = new RelayPool(app.server.ctx, { total: 8, perDestination: 2, ...limits });
    const stuck = [];
    for (const [i, h] of hanging.entries()) {
      stuck.push(...(await storeDueDeliveries(app, h.shop.url, 2, `hanging${i}`)).map((d) => pool.offer(d.id)));
    }
    await waitFor(
      "every hanging shop's attempts",
      () => hanging.every((h) => h.shop.received.length === 2) ? true : undefined,
    );

    const [later] = await storeDueDeliveries(app, fast.url, 1, "fast");
    const started = Date.now();
    const sent = pool.offer(later.id).then(() => Date.now() - started);
    tookMs = await within(sent, patienceMs, null);

    for (const h of hanging) h.answer();
    await Promise.all([...stuck, sent]);
    assert.equal(fast.received.length, 1);
    assert.equal(hanging.reduce((n, h) => n + h.shop.received.length, 0), 10, "each sent once");
  });
  await Promise.all([fast.close(), ...hanging.map((h) => h.shop.close())]);
  return tookMs;
}

Deno.test("[relay] attempts that run long are waited for beside the pool's total: more hanging shops than it has room for do not hold up a fast one", async () => {
  const tookMs = await fastBesideHangingShops({ longAfterMs: 100 }, 2_000);
  assert.notEqual(tookMs, null, "the fast shop waited for the hanging ones");
});

Deno.test("[relay] past the pool's limit of long-running attempts, they count against its total again", async () => {
  // Two of the ten may run long beside the total: the other eight fill it.
  assert.equal(await fastBesideHangingShops({ longAfterMs: 100, long: 2 }, 1_000), null);
});

Deno.test("[relay] a parked postback that is no longer due hands its destination's slot on to the next one", async () => {
  const shop = startShopReceiver(async () => {
    await sleep(300);
    return new Response("ok");
  });
  await withApp({}, async (app) => {
    const { deliveries: [a, b, c], offers } = await offerOneAtATime(app, shop, "parked");
    // b is settled elsewhere meanwhile (another process, an operator): when its turn comes it is not due.
    await app.kv.set(["deliveries", b.id], { ...b, status: "delivered" });
    assert.equal(
      await within(Promise.all(offers).then(() => "done"), 5_000, "stuck"),
      "done",
      "c still gets its attempt",
    );
    assert.deepEqual(shop.received.map((r) => r.headers.get("webhook-id")).sort(), [a.id, c.id].sort());
  });
  await shop.close();
});

Deno.test("[relay] a parked postback is attempted as it was read, without a second read; one written while it waited is read again and sent", async () => {
  const shop = startShopReceiver(async () => {
    await sleep(200);
    return new Response("ok");
  });
  await withApp({}, async (app) => {
    const reads = countDeliveryReads(app.kv);
    const { deliveries: [a, b, c], offers } = await offerOneAtATime(app, shop, "kept");
    // b is written again while it waits, still due (as an operator's resend leaves it): what was read is stale.
    await app.kv.set(["deliveries", b.id], (await getDeliveryEntry(app.kv, b.id)).value);
    try {
      await Promise.all(offers);
    } finally {
      reads.stop();
    }
    assert.deepEqual(shop.received.map((r) => r.headers.get("webhook-id")), [a.id, b.id, c.id]);
    // One read each when offered, and b's again after its claim found it changed; c, unchanged, is not read again.
    assert.equal(reads.count, 4);
  });
  await shop.close();
});

Deno.test("[relay] thousands of parked postbacks found not due when their turn comes (the clock stepped back) are passed over one after another, and stay due", async () => {
  // The shop answers the first attempt only once every other postback is parked.
  let answer!: () => void;
  const gate = new Promise<void>((r) => (answer = r));
  const shop = startShopReceiver(async () => {
    await gate;
    return new Response("ok");
  });
  await withApp({}, async (app) => {
    const deliveries = await storeDueDeliveries(app, shop.url, 3_001, "clock");
    const pool = new RelayPool(app.server.ctx, { total: 8, perDestination: 1, parked: 4_000 });
    const offers = deliveries.map((d) => pool.offerTracked(d.id));
    await Promise.all(offers.map((o) => o.taken));
    const now = app.server.ctx.now;
    app.server.ctx.now = () => Date.now() - 60_000;
    answer();
    await Promise.all(offers.map((o) => o.done));
    app.server.ctx.now = now;
    assert.equal(shop.received.length, 1);
    for (const d of [deliveries[1], deliveries[3_000]]) {
      assert.ok(isDeliveryDue((await getDeliveryEntry(app.kv, d.id)).value, Date.now()), "still due, for a sweep");
    }
  });
  await shop.close();
});

Deno.test("[relay] past the parking limit a postback is let go and stays due; with half the parking free again the pool asks for a sweep", async () => {
  const shop = startShopReceiver(async () => {
    await sleep(100);
    return new Response("ok");
  });
  await withApp({}, async (app) => {
    const ids = (await storeDueDeliveries(app, shop.url, 6, "overflow")).map((d) => d.id);

    // One attempt at a time and two parked: the other three are let go at once, still due, and nobody waits.
    const pool = new RelayPool(app.server.ctx, { total: 8, perDestination: 1, parked: 2 });
    let sweepsAskedFor = 0;
    pool.whenRoom(() => sweepsAskedFor++);
    const offers = ids.map((id) => pool.offerTracked(id));
    await Promise.all(offers.slice(3).map((o) => o.done));
    for (const id of ids.slice(3)) assert.ok(isDeliveryDue((await getDeliveryEntry(app.kv, id)).value, Date.now()));
    assert.equal(sweepsAskedFor, 0, "the parking is still full");
    await Promise.all(offers.map((o) => o.done));
    assert.equal(sweepsAskedFor, 1, "asked once, when a parked one left");
    // What a sweep then offers goes out.
    await Promise.all(ids.slice(3).map((id) => pool.offer(id)));
    assert.deepEqual(shop.received.map((r) => r.headers.get("webhook-id")), ids, "every one sent once, in order");
  });
  await shop.close();
});

Deno.test("[relay] when hanging shops' attempts time out together, the next ones in their slots still count as long-running: a fast shop is not held up meanwhile", async () => {
  const hanging = [startHeldShop(), startHeldShop()];
  const fast = startShopReceiver();
  await withApp({ env: { POSTBACK_TIMEOUT_MS: "1500" } }, async (app) => {
    // Two hanging shops fill a pool of 4 twice over; their attempts run long after 1 s and time out at 1.5 s.
    const pool = new RelayPool(app.server.ctx, { total: 4, perDestination: 2, longAfterMs: 1_000 });
    const stuck = [];
    for (const [i, h] of hanging.entries()) {
      stuck.push(...(await storeDueDeliveries(app, h.shop.url, 4, `hanging${i}`)).map((d) => pool.offer(d.id)));
    }
    // Their first attempts timed out, and the parked ones took over their slots.
    await waitFor("the second attempts", () => hanging.every((h) => h.shop.received.length === 4) ? true : undefined);
    const [later] = await storeDueDeliveries(app, fast.url, 1, "fast");
    const started = Date.now();
    await pool.offer(later.id);
    const tookMs = Date.now() - started;
    assert.ok(tookMs < 500, `the fast shop waited ${tookMs} ms for the hanging shops' new attempts to run long`);
    for (const h of hanging) h.answer();
    await Promise.all(stuck);
  });
  await Promise.all([fast.close(), ...hanging.map((h) => h.shop.close())]);
});

Deno.test("[relay] a shop that answers again after hanging has its attempts counted against the pool's total again", async () => {
  // One server for both shops, counting the requests it holds at once; the first two hang until `recover()`.
  let recover!: () => void;
  const recovered = new Promise<void>((r) => (recover = r));
  let holding = 0;
  let mostHeld = 0;
  let hungAnswered = 0;
  const server = startShopReceiver(async (n) => {
    holding++;
    mostHeld = Math.max(mostHeld, holding);
    try {
      await (n <= 2 ? recovered : sleep(40));
      return new Response("ok");
    } finally {
      holding--;
      if (n <= 2) hungAnswered++;
    }
  });
  const origin = new URL(server.url).origin;
  await withPatientApp(async (app) => {
    const pool = new RelayPool(app.server.ctx, { total: 2, perDestination: 2, longAfterMs: 1_000 });
    const other = await createShop(app.kv, { name: "Other" }, { allowLocalUrls: true, now: Date.now() });
    const backlog = await storeDueDeliveries(app, `${origin}/recovering`, 12, "recovering");
    const offers = backlog.map((d) => pool.offer(d.id));
    // Both attempts run long, and the shop answers again: its next attempts take their slots.
    await sleep(1_600);
    recover();
    // Counted once both long attempts have answered (a loaded machine can take longer than any fixed pause to get
    // there), and the next attempts have answered too: each long one hands its slot on as long-running, so for one
    // round of quick attempts (40 ms) four are held; then the quick answers put them back under the total.
    await waitFor("the long attempts answered", () => hungAnswered === 2 || undefined);
    await sleep(200);
    mostHeld = holding;
    const fast = await storeDueDeliveries(app, `${origin}/fast`, 6, "fast", Date.now(), other.shop.id);
    await Promise.all([...offers, ...fast.map((d) => pool.offer(d.id))]);
    assert.equal(server.received.length, 18);
    assert.ok(mostHeld <= 2, `${mostHeld} attempts at once in a pool of 2`);
  });
  await server.close();
});

Deno.test("[relay] a hanging shop's backlog holds only its share of the parking: another shop's postbacks still park and go out; half its parking free again asks for a sweep", async () => {
  const hanging = startHeldShop();
  const slow = startShopReceiver(async () => {
    await sleep(100);
    return new Response("ok");
  });
  await withPatientApp(async (app) => {
    const pool = new RelayPool(app.server.ctx, { total: 8, perDestination: 1, parked: 6, parkedPerDestination: 3 });
    let sweepsAskedFor = 0;
    pool.whenRoom(() => sweepsAskedFor++);
    // The hanging shop: one attempt under way, three parked, two let go (still due).
    const stuck = (await storeDueDeliveries(app, hanging.shop.url, 6, "hanging")).map((d) => pool.offerTracked(d.id));
    await Promise.all(stuck.map((o) => o.taken));
    // The other shop's backlog parks in the room left, and all of it goes out while the first shop still hangs.
    const others = await storeDueDeliveries(app, slow.url, 3, "other");
    await Promise.all(others.map((d) => pool.offer(d.id)));
    assert.deepEqual(slow.received.map((r) => r.headers.get("webhook-id")), others.map((d) => d.id));
    assert.equal(hanging.shop.received.length, 1);
    assert.equal(sweepsAskedFor, 0);

    hanging.answer();
    await Promise.all(stuck.map((o) => o.done));
    assert.equal(hanging.shop.received.length, 4);
    assert.equal(sweepsAskedFor, 1, "asked once, when half the hanging shop's parking was free");
  });
  await Promise.all([hanging.shop.close(), slow.close()]);
});

Deno.test("[relay] a shop whose postback URL names another shop's origin takes nothing from that shop's share", async () => {
  let answer!: () => void;
  const answered = new Promise<void>((r) => (answer = r));
  // One receiving server: it holds what comes to /held, and answers the rest at once.
  const server = startShopReceiver(async (_, req) => {
    if (new URL(req.url).pathname === "/held") await answered;
    return new Response("ok");
  });
  const origin = new URL(server.url).origin;
  await withPatientApp(async (app) => {
    const ctx = app.server.ctx;
    const other = await createShop(app.kv, { name: "Other" }, { allowLocalUrls: true, now: Date.now() });
    const pool = new RelayPool(ctx, { total: 8, perDestination: 1 });
    const others = await storeDueDeliveries(app, `${origin}/held`, 2, "other", Date.now(), other.shop.id);
    const held = others.map((d) => pool.offerTracked(d.id));
    await Promise.all(held.map((o) => o.taken));

    const [own] = await storeDueDeliveries(app, `${origin}/own`, 1, "own");
    const sent = await within(pool.offer(own.id).then(() => "sent"), 2_000, "held up");
    answer();
    await Promise.all(held.map((o) => o.done));
    assert.equal(sent, "sent");
    assert.equal(server.received.length, 3);
  });
  await server.close();
});

Deno.test("[relay] a new postback is born leased to the process that commits it, sent without a claim; if that process never sends it, a sweep does once the lease ran out", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    // Every write of a delivery record: its creation with the payment's move, and its outcome. No claim between.
    const recorded = recordDeliveryWrites(app.kv);
    const id = await paidPayment(app, shop.url);
    await waitFor("delivery", async () => ((await deliveryOf(app, id))?.status === "delivered" ? true : undefined));
    recorded.stop();
    assert.deepEqual(recorded.writes, ["pending", "delivered"]);

    // As if the process committing it died before its attempt: nobody was handed the delivery.
    const now = app.server.ctx.now();
    const { delivery: orphan } = await storeLeasedDelivery(app, shop.url, now, firstAttemptLease(app.server.ctx, now));
    await app.server.runner.sweep();
    assert.equal(shop.received.length, 1, "leased: not sent yet");
    const leaseMs = orphan.leaseUntil - now;
    app.server.ctx.now = () => Date.now() + leaseMs + 1;
    await app.server.runner.sweep();
    await waitFor("the orphan", () => (shop.received.length === 2 ? true : undefined));
    assert.equal(shop.received[1].headers.get("webhook-id"), orphan.id);
  });
  await shop.close();
});

Deno.test("[relay] a postback a sweep offers between its commit and its hand-over is still sent at once", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const now = app.server.ctx.now();
    const { delivery, versionstamp } = await storeLeasedDelivery(
      app,
      shop.url,
      now,
      firstAttemptLease(app.server.ctx, now),
    );
    const pool = new RelayPool(app.server.ctx);
    // The sweep's offer reads the stored entry (leased, so not due) while the committing code hands it over.
    const swept = pool.offer(delivery.id);
    pool.handOver(storedDelivery(delivery, versionstamp));
    const kicked = pool.offer(delivery.id);
    await Promise.all([swept, kicked]);
    assert.equal(shop.received.length, 1, "sent now, not after the lease");
  });
  await shop.close();
});

Deno.test("[relay] a postback handed over with a lease that no longer covers an attempt is claimed again and sent once", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const ctx = app.server.ctx;
    const now = ctx.now();
    // As if it waited in the pool: its first lease has 1 s left, too little for the lease keeper to renew it in time.
    const { delivery: d, versionstamp } = await storeLeasedDelivery(app, shop.url, now, now + 1_000);
    relayPool(ctx).handOver(storedDelivery(d, versionstamp));
    ctx.kick({ kind: "postback", id: d.id });
    await waitFor("the postback", () => (shop.received.length === 1 ? true : undefined), 3_000);
    assert.equal(shop.received[0].headers.get("webhook-id"), d.id);
    await waitFor(
      "its outcome",
      async () => ((await getDeliveryEntry(app.kv, d.id)).value?.status === "delivered" || undefined),
    );
  });
  await shop.close();
});

Deno.test("[relay] a running attempt leases its postback for seconds at a time, renewed as it runs, not for the attempt's whole timeout", async () => {
  const { shop, answer } = startHeldShop();
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_TIMEOUT_MS: "30000" } }, async (app) => {
    const id = await paidPaymentUnderWay(app, shop);
    const d = (await deliveryOf(app, id))!;
    const leaseLeft = d.leaseUntil - Date.now();
    assert.ok(leaseLeft > 0 && leaseLeft <= DELIVERY_LEASE_MS, `lease ${leaseLeft} ms, not the 30 s timeout`);
    answer();
    await waitFor("delivery", async () => ((await deliveryOf(app, id))?.status === "delivered" ? true : undefined));
  });
  await shop.close();
});

Deno.test("[relay] an attempt that outlasts its lease keeps renewing it: another worker cannot take the postback meanwhile, and the outcome is recorded", async () => {
  // The shop answers a little after a lease taken at the start would have run out.
  const holdMs = DELIVERY_LEASE_MS + 1_500;
  const shop = startShopReceiver(async () => {
    await sleep(holdMs);
    return new Response("ok");
  });
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_TIMEOUT_MS: "30000" } }, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor("the attempt under way", () => (shop.received.length === 1 ? true : undefined));
    const sentAt = shop.received[0].at;
    await sleep(sentAt + DELIVERY_LEASE_MS + 500 - Date.now());
    const entry = await getDeliveryEntry(app.kv, (await deliveryOf(app, id))!.id);
    assert.ok(entry.value!.leaseUntil > Date.now(), "the lease was renewed while the shop took its time");
    // Another worker reading it now finds it leased, and leaves it.
    assert.equal(await attemptDelivery(app.server.ctx, entry as Deno.KvEntry<Delivery>), false);
    await waitFor("delivery", async () => ((await deliveryOf(app, id))?.status === "delivered" ? true : undefined));
    assert.equal(shop.received.length, 1, "sent once");
    const after = (await deliveryOf(app, id))!;
    assert.equal(after.attemptLog.length, 1);
    assert.equal(after.attemptLog[0].statusCode, 200);
  });
  await shop.close();
});

Deno.test("[relay] a replay of a postback still retrying sends it now besides its schedule: a refused replay puts it back where it was, so replays neither restart nor use up its schedule", async () => {
  // The shop is down and asks for two hours each time (Retry-After, longer than the schedule's hour).
  let down = true;
  const shop = startShopReceiver(() =>
    down ? new Response("down", { status: 503, headers: { "retry-after": "7200" } }) : new Response("ok")
  );
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_SCHEDULE: "0,3600,3600" } }, async (app) => {
    const ctx = app.server.ctx;
    const id = await paidPayment(app, shop.url);
    /** The postback once its `n`th attempt is recorded. */
    const afterAttempt = (n: number) =>
      waitFor(`attempt ${n} recorded`, async () => {
        const d = await deliveryOf(app, id);
        return d?.attempts === n ? d : undefined;
      });
    const first = await afterAttempt(1);
    assert.deepEqual([first.status, first.scheduleStep], ["pending", 1]);
    assert.ok(first.nextAttemptAt > Date.now() + 7_000_000, "held back by the shop's Retry-After");

    // The operator's replay means "now": the shop's Retry-After does not hold it back. Refused again, the postback
    // goes back to its step, its next attempt as late as the shop now asks.
    for (const n of [2, 3]) {
      assert.deepEqual(await replayFailedDeliveries(ctx, app.shop.id, 0, { actor: "test" }), {
        queued: 1,
        inFlight: 0,
        resumeAfter: null,
      });
      const again = await afterAttempt(n);
      assert.deepEqual([again.status, again.scheduleStep], ["pending", 1], `attempt ${n}: the same step`);
      assert.ok(again.nextAttemptAt > Date.now() + 7_000_000, "the shop's new Retry-After is honoured");
    }

    // Back up: the next replay delivers it.
    down = false;
    assert.deepEqual(await replayFailedDeliveries(ctx, app.shop.id, 0, { actor: "test" }), {
      queued: 1,
      inFlight: 0,
      resumeAfter: null,
    });
    const delivered = await afterAttempt(4);
    assert.equal(delivered.status, "delivered");
    assert.equal(new Set(shop.received.map((r) => r.headers.get("webhook-id"))).size, 1, "one webhook-id throughout");
    assert.equal(shop.received.length, 4);
  });
  await shop.close();
});

Deno.test("[relay] a replay sends a shop's postbacks still retrying now, not at their next try hours away; one being sent is left alone", async () => {
  let down = true;
  const shop = startShopReceiver(() => new Response(down ? "down" : "ok", { status: down ? 503 : 200 }));
  const app = await startTestApp({ env: { JOBS_QUEUE: "off", POSTBACK_SCHEDULE: "0,3600,3600" } });
  try {
    const init = await callInit(app, paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl: shop.url }));
    assert.equal(init.status, 201);
    await buyerSettles(init.body.url, "paid");
    const retrying = await waitFor("the first attempt refused", async () => {
      const [d] = await listAttentionDeliveries(app.kv, { shopId: app.shop.id, limit: 10 });
      return d?.status === "pending" && d.attempts === 1 ? d : undefined;
    });
    assert.ok(retrying.nextAttemptAt > Date.now() + 3_000_000, "its next try is an hour away");
    down = false;
    const replay = await replayFailedDeliveries(app.server.ctx, app.shop.id, 0, { actor: "test" });
    assert.deepEqual(replay, { queued: 1, inFlight: 0, resumeAfter: null });
    const delivered = await waitFor("sent now", async () => {
      const d = (await getDeliveryEntry(app.kv, retrying.id)).value!;
      return d.status === "delivered" ? d : undefined;
    });
    assert.equal(delivered.attempts, 2);
    assert.equal(shop.received.at(-1)!.headers.get("webhook-id"), retrying.id, "the same webhook-id");

    // One whose attempt is under way (its lease live) is left to that attempt: not sent a second time beside it.
    const now = Date.now();
    const sending = failedDelivery(now - 60_000, { paymentId: "pay_sending", shopId: app.shop.id, url: shop.url }, {
      status: "pending",
      attempts: 1,
      nextAttemptAt: now,
      leaseUntil: now + 10_000,
    });
    await storeAttentionDeliveries(app.kv, [sending]);
    assert.deepEqual(await replayFailedDeliveries(app.server.ctx, app.shop.id, 0, { actor: "test" }), {
      queued: 0,
      inFlight: 1,
      resumeAfter: null,
    }, "counted as left alone");
    assert.deepEqual((await getDeliveryEntry(app.kv, sending.id)).value, sending);
  } finally {
    await app.close();
    await shop.close();
  }
});

Deno.test("[relay] a replay that has run for seconds still sees the live lease of an attempt started meanwhile", async () => {
  const shop = startShopReceiver();
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const ctx = app.server.ctx;
    // The replay's first reading of the clock is 6 s old when it reaches this postback (a large backlog on hosted KV).
    const real = ctx.now;
    let calls = 0;
    ctx.now = () => (calls++ === 0 ? Date.now() - 6_000 : Date.now());
    // Meanwhile a worker claimed it for its retry: a live lease of DELIVERY_LEASE_MS.
    const now = Date.now();
    const sending = failedDelivery(now - 60_000, { paymentId: "pay_sending", shopId: app.shop.id, url: shop.url }, {
      status: "pending",
      attempts: 1,
      nextAttemptAt: now - 1_000,
      leaseUntil: now + DELIVERY_LEASE_MS,
      leaseToken: crypto.randomUUID(),
    });
    // An older failed one comes first (ids follow creation), and is replayed.
    const failed = failedDelivery(now - 120_000, { paymentId: "pay_failed", shopId: app.shop.id, url: shop.url });
    await storeAttentionDeliveries(app.kv, [failed, sending]);
    const replay = await replayFailedDeliveries(ctx, app.shop.id, 0, { actor: "test" });
    ctx.now = real;
    assert.deepEqual(replay, { queued: 1, inFlight: 1, resumeAfter: null }, "the failed one, not the one under way");
    assert.equal((await getDeliveryEntry(app.kv, sending.id)).value!.leaseUntil, sending.leaseUntil, "its lease kept");
    await waitFor("the failed one", () => shop.received[0]);
    await sleep(300);
    assert.deepEqual(shop.received.map((r) => r.headers.get("webhook-id")), [failed.id], "not sent beside the attempt");
  } finally {
    await app.close();
    await shop.close();
  }
});

Deno.test("[relay] a shop that answers 503 gets a few postbacks at once, remembered across its schedule's steps, and more again as it delivers", async () => {
  let down = true;
  let open = 0;
  /** How many attempts were at the shop, this one included, as each arrived. */
  const openOnArrival: number[] = [];
  const shop = startShopReceiver(async () => {
    openOnArrival.push(++open);
    await sleep(20);
    open--;
    return new Response(down ? "busy" : "ok", { status: down ? 503 : 200 });
  });
  // A schedule whose second step is an hour away: each postback here gets the one attempt this pool makes.
  await withApp({ env: { POSTBACK_SCHEDULE: "0,3600" } }, async (app) => {
    const pool = new RelayPool(app.server.ctx, { total: 64, perDestination: 16, minPerDestination: 2 });

    const failing = await storeDueDeliveries(app, shop.url, 60, "down");
    await Promise.all(failing.map((d) => pool.offer(d.id)));
    assert.equal(openOnArrival.length, 60);
    // The first wave went out before any answer; once answers said 503, the share shrank to its least.
    assert.equal(Math.max(...openOnArrival.slice(0, 16)), 16);
    assert.ok(Math.max(...openOnArrival.slice(16)) <= 2, `after the 503s: ${openOnArrival.slice(16)}`);

    // Back up. Its next postbacks start from the shrunk share (nothing was in flight between), and it grows by one
    // per postback delivered, up to the most.
    down = false;
    openOnArrival.length = 0;
    const after = await storeDueDeliveries(app, shop.url, 200, "up");
    await Promise.all(after.map((d) => pool.offer(d.id)));
    assert.equal(shop.received.length, 260, "each sent once");
    assert.ok(Math.max(...openOnArrival.slice(0, 2)) <= 2, `first: ${openOnArrival.slice(0, 2)}`);
    assert.equal(Math.max(...openOnArrival), 16, "it grew back to the most");
    const delivered = await Promise.all(after.map((d) => getDeliveryEntry(app.kv, d.id)));
    assert.ok(delivered.every((e) => e.value?.status === "delivered"));
  });
  await shop.close();
});

Deno.test("[relay] a shop that times out keeps its share: its attempts already wait beside the pool's work", async () => {
  let open = 0;
  const openOnArrival: number[] = [];
  const hanging = startShopReceiver(async () => {
    openOnArrival.push(++open);
    await sleep(400);
    open--;
    return new Response("too late");
  });
  await withApp({ env: { POSTBACK_SCHEDULE: "0,3600", POSTBACK_TIMEOUT_MS: "100" } }, async (app) => {
    const pool = new RelayPool(app.server.ctx, { total: 64, perDestination: 8, minPerDestination: 2 });
    const deliveries = await storeDueDeliveries(app, hanging.url, 24, "hanging");
    await Promise.all(deliveries.map((d) => pool.offer(d.id)));
    assert.equal(openOnArrival.length, 24);
    // The second and third waves were as wide as the first, the timed-out attempts' requests still open beside them.
    assert.ok(Math.max(...openOnArrival.slice(16)) > 8 + 2, `after the timeouts: ${openOnArrival.slice(8)}`);
    const stored = await Promise.all(deliveries.map((d) => getDeliveryEntry(app.kv, d.id)));
    assert.ok(stored.every((e) => e.value?.lastError === "no answer within 100 ms"));
  });
  await hanging.close();
});

/** A shop answering 200 over TLS as `shop.test` on loopback, with the test's own authority. */
async function startTlsShop() {
  const certs = await testCertificates("shop.test");
  const received: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: certs.cert, key: certs.key, onListen() {} },
    async (req) => (received.push(await req.text()), new Response("ok")),
  );
  return { url: `https://shop.test:${server.addr.port}/postback`, received, caCert: certs.caCert, server };
}

Deno.test("[relay] an https postback connects to the address our guard checked for its host, through the pinned proxy, TLS checked for the host's name", async () => {
  const shop = await startTlsShop();
  // shop.test is in no DNS the system knows: only our resolver names it, so fetch resolving it itself finds nothing.
  const resolve: Resolver = (host) => Promise.resolve(host === "shop.test" ? ["127.0.0.1"] : []);
  await withApp({ resolve, postbackCaCerts: [shop.caCert] }, async (app) => {
    const id = await paidPayment(app, shop.url);
    await waitFor(
      "the postback over TLS",
      async () => (await deliveryOf(app, id))?.status === "delivered" || undefined,
    );
    assert.equal(shop.received.length, 1);
    assert.match(shop.received[0], /"payment.succeeded"/);
  });
  await shop.server.shutdown();
});

Deno.test("[relay] a host that answers a private address when the postback connects (DNS rebinding) gets nothing, whatever it answered the check before", async () => {
  const shop = await startTlsShop();
  let lookups = 0;
  // Our check before the send sees loopback (allowed in development); the connection's lookup, a private address.
  const resolve: Resolver = (host) => {
    if (host !== "shop.test") return Promise.resolve([]);
    return Promise.resolve(++lookups <= 2 ? ["127.0.0.1"] : ["10.20.30.40"]);
  };
  await withApp({ resolve, postbackCaCerts: [shop.caCert] }, async (app) => {
    // The payment's own URL check (one lookup) and the send's (another) pass; the proxy's does not.
    const id = await paidPayment(app, shop.url);
    await waitFor("the refused attempt", async () => ((await deliveryOf(app, id))?.attempts ?? 0) >= 1 || undefined);
    const d = (await deliveryOf(app, id))!;
    assert.equal(d.status, "pending");
    assert.equal(
      d.lastError,
      "host shop.test resolves to a private address when connecting (refused by our address check)",
    );
    assert.equal(shop.received.length, 0);
    assert.ok(lookups >= 3, `looked up ${lookups} times`);
  });
  await shop.server.shutdown();
});

Deno.test("[relay] the pinned proxy tunnels only for this process: another program's CONNECT gets 407, a malformed one 400", async () => {
  const proxy = (await PinnedProxy.start({ allowLocal: true, resolve: () => Promise.resolve(["127.0.0.1"]) }))!;
  try {
    const port = proxy.port;
    const ask = async (request: string) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new TextEncoder().encode(request));
      const buf = new Uint8Array(256);
      const n = await conn.read(buf);
      conn.close();
      return new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\r\n")[0];
    };
    assert.equal(
      await ask("CONNECT shop.test:443 HTTP/1.1\r\nHost: shop.test:443\r\n\r\n"),
      "HTTP/1.1 407 Proxy Authentication Required",
    );
    assert.equal(await ask("GET http://shop.test/ HTTP/1.1\r\n\r\n"), "HTTP/1.1 400 Bad Request");
  } finally {
    proxy.close();
  }
  assert.deepEqual(parseConnect("CONNECT [::1]:8443 HTTP/1.1\r\n"), { host: "::1", port: 8443 });
  assert.deepEqual(parseConnect("CONNECT Shop.Test:443 HTTP/1.1"), { host: "shop.test", port: 443 });
  assert.equal(parseConnect("CONNECT shop.test:70000 HTTP/1.1"), null);
  assert.equal(parseConnect("CONNECT shop.test HTTP/1.1"), null);
});

/**
 * A port on loopback that takes no connection: its listener's backlog is full (filled here, never accepted), so a
 * connection to it waits for the system's time-out, as one to a host that drops our packets does.
 */
async function startUnansweringPort() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const filling: Deno.Conn[] = [];
  for (;;) {
    const gaveUp = new AbortController();
    const timer = setTimeout(() => gaveUp.abort(), 100);
    try {
      filling.push(await Deno.connect({ hostname: "127.0.0.1", port, signal: gaveUp.signal }));
    } catch {
      break;
    } finally {
      clearTimeout(timer);
    }
  }
  return {
    port,
    close() {
      for (const conn of filling) conn.close();
      listener.close();
    },
  };
}

/**
 * Loopback TCP sockets of this machine in one of `states` (Linux's /proc/net/tcp: "01" open, "02" still connecting,
 * "08" closed by the other side only), to or from the given ports: other tests' sockets (run in parallel in this
 * process) have other ports.
 */
function loopbackSockets(ports: { local?: number; remote?: number }, states: string[]): number {
  const port = (address: string) => parseInt(address.split(":")[1], 16);
  return Deno.readTextFileSync("/proc/net/tcp").trim().split("\n").slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter(([, local, remote, state]) =>
      states.includes(state) && (ports.local === undefined || port(local) === ports.local) &&
      (ports.remote === undefined || port(remote) === ports.remote)
    ).length;
}

Deno.test({
  name:
    "[relay] a postback whose attempt ends while the pinned proxy still connects (a host dropping our packets) leaves no connection behind",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const unanswering = await startUnansweringPort();
    const proxy = (await PinnedProxy.start({ allowLocal: true, resolve: () => Promise.resolve(["127.0.0.1"]) }))!;
    try {
      const post = () =>
        fetch(`https://shop.test:${unanswering.port}/postback`, {
          method: "POST",
          body: "{}",
          client: proxy.client,
          signal: AbortSignal.timeout(200),
        }).then((res) => res.body?.cancel(), () => {});
      await Promise.all([1, 2, 3, 4, 5].map(post));
      await sleep(300);
      // Before: the proxy went on connecting for 10 s after each attempt gave up, holding the attempt's connection,
      // and a connection it abandoned then stayed with the system (about two minutes).
      assert.equal(loopbackSockets({ remote: unanswering.port }, ["02"]), 0, "connections still being made");
      assert.equal(loopbackSockets({ local: proxy.port }, ["01", "08"]), 0, "attempts' connections held");
    } finally {
      proxy.close();
      unanswering.close();
    }
  },
});

Deno.test("[relay] a postback whose attempt ends while the pinned proxy still looks its host up abandons the lookup", async () => {
  let abandoned = 0;
  const lookups: string[] = [];
  // A name server that never answers, except to give up when asked to.
  const resolve: Resolver = (host, signal) => {
    lookups.push(host);
    return new Promise((_, reject) =>
      signal?.addEventListener("abort", () => (abandoned++, reject(signal.reason)), { once: true })
    );
  };
  const proxy = (await PinnedProxy.start({ allowLocal: true, resolve }))!;
  try {
    await fetch("https://shop.test:8443/postback", {
      method: "POST",
      body: "{}",
      client: proxy.client,
      signal: AbortSignal.timeout(200),
    }).catch(() => {});
    await waitFor("the lookup abandoned", () => (abandoned === 1 ? true : undefined), 2_000).catch(() => {});
    assert.deepEqual(lookups, ["shop.test"]);
    assert.equal(abandoned, 1);
  } finally {
    proxy.close();
  }
});

Deno.test("[relay] a postback the pinned proxy refuses (DNS rebinding) does not shrink its destination's share: it never reached the shop", async () => {
  const shop = await startTlsShop();
  let lookups = 0;
  // The send's own check sees loopback (allowed in development); the proxy's lookup, a private address.
  const resolve: Resolver = (host) => {
    if (host !== "shop.test") return Promise.resolve([]);
    return Promise.resolve(++lookups <= 1 ? ["127.0.0.1"] : ["10.20.30.40"]);
  };
  await withApp({ resolve, postbackCaCerts: [shop.caCert] }, async (app) => {
    const [d] = await storeDueDeliveries(app, shop.url, 1, "rebinding");
    const outcome = await attemptDelivery(
      app.server.ctx,
      (await getDeliveryEntry(app.kv, d.id)) as Deno.KvEntry<Delivery>,
    );
    assert.ok(outcome && outcome.kind === "retry");
    assert.equal(
      outcome.error,
      "host shop.test resolves to a private address when connecting (refused by our address check)",
    );
    assert.equal(strainsDestination(outcome), false);
    assert.equal(shop.received.length, 0);
  });
  await shop.server.shutdown();
});

Deno.test("[relay] with an outbound proxy of the operator's (HTTPS_PROXY, ALL_PROXY), postbacks go through it, not the pinned one", () => {
  const env = (values: Record<string, string>) => (name: string) => values[name];
  assert.equal(outboundProxySetting(env({ HTTPS_PROXY: "http://proxy.internal:3128" })), "HTTPS_PROXY");
  assert.equal(outboundProxySetting(env({ all_proxy: "socks5://proxy.internal:1080" })), "all_proxy");
  // A plain-http proxy setting does not carry https postbacks.
  assert.equal(outboundProxySetting(env({ HTTP_PROXY: "http://proxy.internal:3128" })), null);
});

/**
 * A payment with a postback to `shop`, expired by the janitor while Bansky keeps its money on the way (refuseCancels).
 * Our clock stays past its expiry from then on (within the 5 minutes a webhook's timestamp may be off).
 */
async function expiredWithMoneyOnItsWay(app: TestApp, shop: { url: string }, clockAheadMs = 61_000) {
  const init = await callInit(
    app,
    paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl: shop.url, expiresIn: 60 }),
  );
  assert.equal(init.status, 201, JSON.stringify(init.body));
  const id: string = init.body.id;
  app.server.ctx.now = () => Date.now() + clockAheadMs;
  await runPaymentCheck(app.server.ctx, id);
  assert.equal((await getPayment(app.kv, id))?.status, "expired");
  return { id, ref: (await getPayment(app.kv, id))!.providerRef! };
}

/** The late money arrives at Bansky, whose webhook makes the payment succeed late. */
async function lateMoney(app: TestApp, payment: { id: string; ref: string }) {
  const res = await fetch(`${app.sandboxUrl}/payments/${payment.ref}/complete`, {
    method: "POST",
    headers: { authorization: `Bearer ${SANDBOX_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ outcome: "paid" }),
  });
  await res.body?.cancel();
  assert.equal(res.status, 200);
  await waitFor(
    "the late success",
    async () => (await getPayment(app.kv, payment.id))?.status === "succeeded" || undefined,
  );
}

Deno.test("[relay] a payment.expired still retrying when the late payment.succeeded is made is superseded: it is never sent after it, so the shop's last word is payment.succeeded", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { refuseCancels: true },
    env: { POSTBACK_SCHEDULE: "0,3" },
  });
  // The shop's endpoint has a hiccup on the first postback only.
  const shop = startShopReceiver((n) => new Response(n === 1 ? "busy" : "ok", { status: n === 1 ? 503 : 200 }));
  try {
    const payment = await expiredWithMoneyOnItsWay(app, shop);
    // The payment.expired was refused; its retry is due 3 s later.
    const refused = await waitFor("the first attempt recorded", async () => {
      const d = await deliveryOf(app, payment.id);
      return d?.attempts === 1 ? d : undefined;
    });
    assert.equal(refused.status, "pending");
    await lateMoney(app, payment);
    await waitFor("payment.succeeded", () => shop.received.length >= 2 || undefined);
    // Well past the expired one's retry, the sweep finds nothing more to send.
    app.server.ctx.now = () => Date.now() + 61_000 + 10 * 60_000;
    await app.server.runner.sweep();
    await app.server.runner.idle();
    app.server.ctx.now = () => Date.now() + 61_000;
    const delivered = shop.received.map((r) => JSON.parse(r.body));
    assert.deepEqual(delivered.map((b) => b.type), ["payment.expired", "payment.succeeded"], "the first one got 503");
    assert.equal(delivered[1].data.late, true);
    assert.ok(delivered[1].timestamp > delivered[0].timestamp, "timestamps order a payment's postbacks");

    const { deliveries } = await describePayment(app.server.ctx, payment.id);
    const expired = deliveries.find((d) => d.eventType === "payment.expired")!;
    const succeeded = deliveries.find((d) => d.eventType === "payment.succeeded")!;
    assert.deepEqual([expired.status, expired.supersededBy, expired.attempts], ["superseded", succeeded.id, 1]);
    assert.equal(succeeded.status, "delivered");
    assert.deepEqual(await countAttentionDeliveries(app.kv, app.shop.id), { failing: 0, failed: 0, more: false });
    // A resend sends the newest that says where the payment stands; the superseded one is refused by name.
    assert.equal((await resendPostback(app.server.ctx, payment.id, { actor: "test" })).id, succeeded.id);
    await assert.rejects(
      resendPostback(app.server.ctx, payment.id, { actor: "test", deliveryId: expired.id }),
      (err: AppError) => err.status === 409 && err.code === "postback_superseded",
    );
    assert.deepEqual(shop.received.slice(2).map((r) => JSON.parse(r.body).type), ["payment.succeeded"]);
    // The console says why it was not sent again.
    const ops = await operatorBrowser(app);
    assert.match(
      (await ops.get(`/admin/payments/${payment.id}`)).text,
      new RegExp(`superseded</strong>.*${succeeded.id}`),
    );
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[relay] a payment.expired whose attempt was under way when the late payment.succeeded came, and then failed, is not retried after the success", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { refuseCancels: true },
    env: { POSTBACK_SCHEDULE: "0,3", POSTBACK_TIMEOUT_MS: "30000" },
  });
  // The shop's endpoint is slow on the first postback (the payment.expired) and then answers 503.
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const shop = startShopReceiver(async (n) => {
    if (n === 1) {
      await gate;
      return new Response("busy", { status: 503 });
    }
    return new Response("ok");
  });
  try {
    const payment = await expiredWithMoneyOnItsWay(app, shop);
    await waitFor("the payment.expired attempt under way", () => shop.received.length === 1 || undefined);
    await lateMoney(app, payment);
    await waitFor("payment.succeeded", () => shop.received.length >= 2 || undefined);
    // The slow attempt at payment.expired now ends with a 503: its retry is due 3 s later.
    release();
    await waitFor("the expired one's attempt recorded", async () => {
      const { deliveries } = await describePayment(app.server.ctx, payment.id);
      const expired = deliveries.find((d) => d.eventType === "payment.expired")!;
      return expired.attempts === 1 || undefined;
    });
    app.server.ctx.now = () => Date.now() + 61_000 + 10 * 60_000;
    await app.server.runner.sweep();
    await app.server.runner.idle();
    const types = shop.received.map((r) => JSON.parse(r.body).type);
    const { deliveries } = await describePayment(app.server.ctx, payment.id);
    assert.deepEqual(
      types,
      ["payment.expired", "payment.succeeded"],
      `nothing after the success; deliveries: ${JSON.stringify(deliveries.map((d) => [d.eventType, d.status]))}`,
    );
  } finally {
    release();
    await shop.close();
    await app.close();
  }
});

Deno.test("[relay] an operator's resend of a failed payment.expired racing the late success that supersedes it does not send it after the success", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { refuseCancels: true },
    env: { POSTBACK_SCHEDULE: "0" },
  });
  const shop = startShopReceiver((n) => new Response(n === 1 ? "down" : "ok", { status: n === 1 ? 500 : 200 }));
  try {
    const payment = await expiredWithMoneyOnItsWay(app, shop);
    const expired = await waitFor("the postback failed", async () => {
      const { deliveries } = await describePayment(app.server.ctx, payment.id);
      return deliveries[0]?.status === "failed" ? deliveries[0] : undefined;
    });
    // The operator's resend reads the payment's postbacks (payment.expired: failed) and is held right there.
    const reads = holdFirstDeliveryRead(app.kv);
    const resend = resendPostback(app.server.ctx, payment.id, { actor: "test", deliveryId: expired.id }).then(
      (d) => d.status,
      (err) => `refused: ${err.code ?? err.message}`,
    );
    await reads.held;
    await lateMoney(app, payment);
    await waitFor("payment.succeeded", () => shop.received.length >= 2 || undefined);
    reads.release();
    const outcome = await resend;
    await app.server.runner.idle();
    const types = shop.received.map((r) => JSON.parse(r.body).type);
    assert.deepEqual(types, ["payment.expired", "payment.succeeded"], `resend: ${outcome}`);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[relay] a payment.expired that failed for good is superseded by the late success too, so a replay of the shop's failed postbacks does not send it after the success", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { refuseCancels: true },
    env: { POSTBACK_SCHEDULE: "0" },
  });
  const shop = startShopReceiver((n) => new Response(n === 1 ? "down" : "ok", { status: n === 1 ? 500 : 200 }));
  try {
    const payment = await expiredWithMoneyOnItsWay(app, shop);
    await waitFor(
      "the postback failed",
      async () => (await deliveryOf(app, payment.id))?.status === "failed" || undefined,
    );
    await lateMoney(app, payment);
    await waitFor("payment.succeeded", () => shop.received.length >= 2 || undefined);
    const replay = await replayFailedDeliveries(app.server.ctx, app.shop.id, 0, { actor: "test" });
    assert.equal(replay.queued, 0);
    await app.server.runner.idle();
    assert.deepEqual(shop.received.map((r) => JSON.parse(r.body).type), ["payment.expired", "payment.succeeded"]);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[relay] a payment's postback whose attempt is under way is not superseded beside it: it is left to that attempt, until its lease runs out", async () => {
  await withApp({}, async (app) => {
    const now = Date.now();
    const { delivery } = await storeLeasedDelivery(app, "http://127.0.0.1:9/pb", now, now + DELIVERY_LEASE_MS);
    assert.deepEqual(await listSupersedableDeliveries(app.kv, delivery.paymentId, now), [], "held by its attempt");
    const later = await listSupersedableDeliveries(app.kv, delivery.paymentId, now + DELIVERY_LEASE_MS + 1);
    assert.deepEqual(later.map((e) => e.value.id), [delivery.id], "once the lease ran out (its process died)");
  });
});

Deno.test("[relay] a retry of a late payment.succeeded is never superseded by the payment.expired it came after, even when the expiry's process clock ran ahead (createdAt is not the order of meaning)", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { refuseCancels: true },
    env: { POSTBACK_SCHEDULE: "0,3" },
  });
  // payment.expired is delivered; the late payment.succeeded's first attempt meets a 503, its retry would be fine.
  const shop = startShopReceiver((n) => new Response(n === 2 ? "busy" : "ok", { status: n === 2 ? 503 : 200 }));
  try {
    // The janitor that expires the payment runs on a server whose clock is 61 s ahead of the one that takes the
    // provider's webhook a moment later (or the clock stepped back in between).
    const payment = await expiredWithMoneyOnItsWay(app, shop, 61_000);
    await waitFor("payment.expired delivered", () => shop.received.length === 1 || undefined);
    app.server.ctx.now = () => Date.now() + 50_000;
    await lateMoney(app, payment);
    await waitFor("payment.succeeded's first attempt", () => shop.received.length === 2 || undefined);
    await waitFor("its failure recorded", async () => {
      const { deliveries } = await describePayment(app.server.ctx, payment.id);
      return deliveries.find((d) => d.eventType === "payment.succeeded")?.attempts === 1 || undefined;
    });
    await sweepAt(app, 10 * 60_000);
    const { deliveries } = await describePayment(app.server.ctx, payment.id);
    const succeeded = deliveries.find((d) => d.eventType === "payment.succeeded")!;
    assert.deepEqual(
      shop.received.map((r) => JSON.parse(r.body).type),
      ["payment.expired", "payment.succeeded", "payment.succeeded"],
      `the paid order's success reaches the shop; deliveries: ${
        JSON.stringify(deliveries.map((d) => [d.eventType, d.status, d.supersededBy ?? null]))
      }`,
    );
    assert.equal(succeeded.status, "delivered");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[relay] an operator's resend by name of a payment.expired the shop got before the late success is refused (409 postback_superseded), not answered 200 while its delivered record is rewritten 'superseded'", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { refuseCancels: true } });
  const shop = startShopReceiver();
  try {
    const payment = await expiredWithMoneyOnItsWay(app, shop, 61_000);
    await waitFor("payment.expired delivered", () => shop.received.length === 1 || undefined);
    await lateMoney(app, payment);
    await waitFor("payment.succeeded delivered", () => shop.received.length === 2 || undefined);
    const expired = (await describePayment(app.server.ctx, payment.id)).deliveries.find((d) =>
      d.eventType === "payment.expired"
    )!;
    assert.equal(expired.status, "delivered");
    const outcome = await resendPostback(app.server.ctx, payment.id, { actor: "test", deliveryId: expired.id }).then(
      (d) => `200 ${d.status}`,
      (err) => `${err.status} ${err.code}`,
    );
    await app.server.runner.idle();
    const after = await describePayment(app.server.ctx, payment.id);
    const record = after.deliveries.find((d) => d.id === expired.id)!;
    const resentEvents = after.events.filter((e) => e.type === "postback_resent").length;
    assert.deepEqual(
      { outcome, status: record.status, resentEvents },
      { outcome: "409 postback_superseded", status: "delivered", resentEvents: 0 },
    );
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[relay] a payment.expired whose first attempt waited in the pool with its lease while the late success came is superseded, not sent after the success", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const now = Date.now();
    const made = (eventType: string, at: number, leaseUntil?: number) =>
      newDelivery({
        paymentId: "pay_AAAAAAAAAAAAAAAAAAAAAA",
        shopId: app.shop.id,
        url: shop.url,
        eventType,
        body: JSON.stringify({ type: eventType }),
        now: at,
        leaseUntil,
      });
    // The expiry's postback, born leased to the process that will send it (handed to its pool), and the late
    // success's, made before the pool got to the first one.
    const expired = made("payment.expired", now, firstAttemptLease(app.server.ctx, now));
    const succeeded = made("payment.succeeded", now + 1);
    const op = app.kv.atomic();
    addDeliveryOps(op, expired, { queue: false, now });
    addDeliveryOps(op, succeeded, { queue: false, now });
    assert.ok((await op.commit()).ok);
    const stored = await getDeliveryEntry(app.kv, expired.id);
    assert.equal(await attemptHandedOver(app.server.ctx, stored as Deno.KvEntry<Delivery>), false);
    assert.equal((await getDeliveryEntry(app.kv, expired.id)).value!.status, "superseded");
    assert.equal(shop.received.length, 0, "the expiry was not sent");
  });
  await shop.close();
});

Deno.test("[relay] a payment with more than ten postbacks (its refunds' too) still lists them all, is resent, and its payment.expired is still superseded before a retry", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const ctx = app.server.ctx;
    const id = await paidPayment(app, shop.url);
    await waitFor(
      "its postback delivered",
      async () => ((await deliveryOf(app, id))?.status === "delivered" || undefined),
    );
    // Ten refunds' postbacks beside it, delivered (a shop refunding an order item by item), and a payment.expired
    // that an attempt held when the late success came, retrying since: twelve postbacks of one payment.
    const now = Date.now();
    const op = app.kv.atomic();
    const store = (d: Delivery) => op.set(["deliveries", d.id], d).set(["deliveries_by_payment", id, d.id], d.id);
    for (let i = 0; i < 10; i++) {
      store(failedDelivery(now + i, { paymentId: id, shopId: app.shop.id, url: shop.url }, {
        eventType: "refund.succeeded",
        status: "delivered",
        attempts: 1,
        lastStatusCode: 200,
        lastError: null,
      }));
    }
    const expired = failedDelivery(now - 60_000, { paymentId: id, shopId: app.shop.id, url: shop.url }, {
      eventType: "payment.expired",
      status: "pending",
      attempts: 1,
      scheduleStep: 1,
      nextAttemptAt: now,
    });
    store(expired);
    assert.ok((await op.commit()).ok);

    const { deliveries } = await describePayment(ctx, id);
    assert.equal(deliveries.length, 12);
    const own = deliveries.find((d) => d.eventType === "payment.succeeded")!;
    assert.equal((await resendPostback(ctx, id, { actor: "test", deliveryId: own.id })).status, "delivered");
    assert.equal(shop.received.length, 2, "the payment.succeeded, then its resend");

    assert.equal(
      await attemptDelivery(ctx, (await getDeliveryEntry(app.kv, expired.id)) as Deno.KvEntry<Delivery>),
      false,
    );
    assert.equal((await getDeliveryEntry(app.kv, expired.id)).value!.status, "superseded");
    assert.equal(shop.received.length, 2, "the expiry was not sent after the success");
  });
  await shop.close();
});

Deno.test("[relay] a postback made while the process stops (a webhook answered during a deploy) is free for the next process's start-up sweep at once, not leased to the one stopping", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const init = await callInit(app, paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl: shop.url }));
    assert.equal(init.status, 201, JSON.stringify(init.body));
    // The stop begins: jobs and postbacks take nothing new, while requests already in (the provider's webhook) are
    // still answered.
    await app.server.runner.stop();
    await buyerSettles(init.body.url, "paid");
    const made = await waitFor("the postback made", async () => await deliveryOf(app, init.body.id));
    assert.equal(shop.received.length, 0, "the stopping process sends nothing");
    // The next process starts: its start-up sweep sends the postback at once, not after the stopping one's lease.
    const next = new JobRunner({ ...app.server.ctx });
    try {
      assert.equal(await next.sweep(), 1);
      assert.equal(shop.received.length, 1);
      assert.equal(shop.received[0].headers.get("webhook-id"), made.id);
    } finally {
      await next.stop();
    }
  });
  await shop.close();
});

Deno.test("[relay] a late payment.succeeded made on a server whose clock is behind the expiry's still has the later timestamp, so a shop keeping a payment's newest postback ships the order", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { refuseCancels: true } });
  const shop = startShopReceiver();
  try {
    // The janitor that expires the payment runs on a server whose clock is 61 s ahead of the one that takes the
    // provider's webhook a moment later.
    const payment = await expiredWithMoneyOnItsWay(app, shop, 61_000);
    await waitFor("payment.expired delivered", () => shop.received.length === 1 || undefined);
    app.server.ctx.now = () => Date.now();
    await lateMoney(app, payment);
    await waitFor("payment.succeeded delivered", () => shop.received.length === 2 || undefined);
    // The shop applies a payment's postback only when its timestamp is later than the last one's (postbacks.md).
    let applied: { type: string; timestamp: string } | null = null;
    for (const { body } of shop.received) {
      const postback = JSON.parse(body);
      if (!applied || Date.parse(postback.timestamp) > Date.parse(applied.timestamp)) applied = postback;
    }
    assert.equal(applied?.type, "payment.succeeded", "the shop ends on the success");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[relay] postbacks handed to the pool and not attempted yet when the process stops are given back, so the next process's start-up sweep sends them at once", async () => {
  const { shop, answer } = startHeldShop();
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_TIMEOUT_MS: "30000" } }, async (app) => {
    const ctx = app.server.ctx;
    const pool = new RelayPool(ctx, { perDestination: 1 });
    const handed: Delivery[] = [];
    for (let i = 0; i < 3; i++) {
      const now = ctx.now();
      const { delivery, versionstamp } = await storeLeasedDelivery(app, shop.url, now, firstAttemptLease(ctx, now));
      pool.handOver(storedDelivery(delivery, versionstamp));
      handed.push(delivery);
    }
    // The first is attempted (the shop holds its answer), the second waits behind the shop's share, the third's kick
    // has not come yet, when the stop begins (a deploy at a busy moment).
    const offers = handed.slice(0, 2).map((d) => pool.offer(d.id));
    await waitFor("the first attempt", () => shop.received.length === 1 || undefined);
    pool.stop();
    answer();
    await Promise.all(offers);
    await pool.idle();
    assert.equal((await getDeliveryEntry(app.kv, handed[0].id)).value?.status, "delivered");
    for (const d of handed.slice(1)) {
      const stored = (await getDeliveryEntry(app.kv, d.id)).value;
      assert.ok(isDeliveryDue(stored, Date.now()), `free for the next process at once: ${JSON.stringify(stored)}`);
    }
    assert.equal(shop.received.length, 1, "the stopping process sent nothing more");
  });
  await shop.close();
});

Deno.test("[relay] a postback whose commit ends after the process began to stop is given back, though it was made leased before the stop", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const ctx = app.server.ctx;
    const pool = new RelayPool(ctx);
    const now = ctx.now();
    // Made (and leased) before the stop began; its commit came back after.
    const { delivery, versionstamp } = await storeLeasedDelivery(app, shop.url, now, firstAttemptLease(ctx, now));
    await pool.stop();
    pool.handOver(storedDelivery(delivery, versionstamp));
    await pool.offer(delivery.id);
    await pool.idle();
    const stored = (await getDeliveryEntry(app.kv, delivery.id)).value;
    assert.ok(isDeliveryDue(stored, Date.now()), `free for the next process at once: ${JSON.stringify(stored)}`);
    assert.equal(shop.received.length, 0);
  });
  await shop.close();
});

Deno.test("[relay] a postback a killed process left leased is sent once the lease runs out, not at the cron's next run a minute later", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const now = app.server.ctx.now();
    // Its attempt was under way when the process was killed: its lease has a moment left when the next one starts.
    const { delivery } = await storeLeasedDelivery(app, shop.url, now, now + 500);
    // The start-up sweep finds it leased and leaves it.
    assert.equal(await app.server.runner.startSweep(), 1);
    assert.equal(shop.received.length, 0, "not beside the attempt its lease may still cover");
    await waitFor("the postback, once the lease ran out", () => shop.received[0], 3_000);
    assert.equal(shop.received[0].headers.get("webhook-id"), delivery.id);
  });
  await shop.close();
});

Deno.test("[relay] sweeps that find the same postback held by another's lease plan one look at it, not one each", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const ctx = app.server.ctx;
    const now = ctx.now();
    const { delivery } = await storeLeasedDelivery(app, shop.url, now, now + 1_000);
    const kick = ctx.kick;
    const looks: number[] = [];
    ctx.kick = (msg, delayMs) => {
      if (msg.id === delivery.id && (delayMs ?? 0) > 0) looks.push(delayMs!);
      kick(msg, delayMs);
    };
    // Several processes draining one store sweep it often, and each sweep finds the delivery still held.
    for (let i = 0; i < 3; i++) assert.equal(await app.server.runner.startSweep(), 1);
    assert.equal(looks.length, 1);
    await waitFor("the postback, once the lease ran out", () => shop.received[0], 3_000);
    assert.equal(shop.received.length, 1);
  });
  await shop.close();
});

Deno.test("[relay] a postback handed over while a sweep's read of it is out, when the stop begins, is given back too", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const ctx = app.server.ctx;
    const pool = new RelayPool(ctx);
    const now = ctx.now();
    const { delivery, versionstamp } = await storeLeasedDelivery(app, shop.url, now, firstAttemptLease(ctx, now));
    // A sweep lists the due index between the commit and its hand-over, and its read of the postback is out when the
    // hand-over comes, and then the stop (a deploy at a busy moment).
    const offered = pool.offer(delivery.id);
    pool.handOver(storedDelivery(delivery, versionstamp));
    const stopped = pool.stop();
    await offered;
    await stopped;
    await pool.idle();
    const stored = (await getDeliveryEntry(app.kv, delivery.id)).value;
    assert.ok(isDeliveryDue(stored, Date.now()), `free for the next process at once: ${JSON.stringify(stored)}`);
    assert.equal(shop.received.length, 0);
  });
  await shop.close();
});

Deno.test("[relay] where a queue exists, a postback given back at a stop is sent at once by a process still running, not at its cron's next run", async () => {
  const shop = startShopReceiver();
  await withApp({ env: { JOBS_QUEUE: "on" } }, async (app) => {
    const ctx = app.server.ctx;
    // The stopping process's pool; the app's own runner and its queue listener stand for another process still up.
    const stopping = new RelayPool(ctx);
    const now = ctx.now();
    const { delivery, versionstamp } = await storeLeasedDelivery(app, shop.url, now, firstAttemptLease(ctx, now));
    stopping.handOver(storedDelivery(delivery, versionstamp));
    await stopping.stop();
    // No sweep runs: only the queue's message can bring it to the running process.
    await waitFor("the postback, sent by the process still running", () => shop.received[0], 3_000);
    assert.equal(shop.received[0].headers.get("webhook-id"), delivery.id);
  });
  await shop.close();
});

Deno.test("[relay] a stopping process refuses queue messages, so the queue delivers them to a process still running", async () => {
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const runner = new JobRunner(app.server.ctx);
    await runner.stop();
    await assert.rejects(runner.onQueueMessage({ kind: "postback", id: "d-1" }));
  });
});

Deno.test("[relay] an operator resend of a postback still waiting for its first attempt is that first attempt: refused, it waits the schedule's next step, not sent again at once at the same step", async () => {
  const shop = startShopReceiver(() => new Response("down", { status: 503 }));
  await withApp({ env: { JOBS_QUEUE: "off", POSTBACK_SCHEDULE: "0,3600,3600" } }, async (app) => {
    const ctx = app.server.ctx;
    // The process sends nothing (it is stopping, say): the payment's postback is made and waits for its first attempt.
    await relayPool(ctx).stop();
    const id = await paidPayment(app, shop.url);
    const waiting = await waitFor("the postback made", async () => await deliveryOf(app, id));
    assert.deepEqual([waiting.status, waiting.attempts, waiting.scheduleStep], ["pending", 0, 0]);
    const before = Date.now();
    const d = await resendPostback(ctx, id, { actor: "test" });
    assert.equal(shop.received.length, 1);
    assert.deepEqual([d.status, d.attempts, d.scheduleStep], ["pending", 1, 1], "on to the schedule's next step");
    const stored = (await getDeliveryEntry(app.kv, d.id)).value!;
    assert.ok(stored.nextAttemptAt >= before + 3_600_000, `its next try an hour away: ${JSON.stringify(stored)}`);
  });
  await shop.close();
});

Deno.test("[relay] a replay's window is about when a postback last failed, not when it was made: one resent days after it was made and still retrying is in the default window", async () => {
  const shop = startShopReceiver(() => new Response("down", { status: 503 }));
  await withApp({ env: { JOBS_QUEUE: "off" } }, async (app) => {
    const ctx = app.server.ctx;
    const now = Date.now();
    // Made three days ago, failed, resent an hour ago: pending on its schedule again, its next try due now.
    const resent = failedDelivery(
      now - 3 * 86_400_000,
      { paymentId: "pay_resent", shopId: app.shop.id, url: shop.url },
      {
        status: "pending",
        attempts: 9,
        scheduleStep: 1,
        nextAttemptAt: now,
        updatedAt: now - 3_600_000,
      },
    );
    // Failed for good three days ago, and not touched since: out of the window.
    const old = failedDelivery(now - 3 * 86_400_000, { paymentId: "pay_old", shopId: app.shop.id, url: shop.url }, {
      updatedAt: now - 3 * 86_400_000 + 60_000,
    });
    await storeAttentionDeliveries(app.kv, [resent, old]);
    // Its try fails again now (the shop is still down): it stays on its schedule.
    assert.ok(await attemptDelivery(ctx, (await getDeliveryEntry(app.kv, resent.id)) as Deno.KvEntry<Delivery>));
    assert.equal((await getDeliveryEntry(app.kv, resent.id)).value?.status, "pending");
    // The console's default: as long ago as the schedule runs (28 hours).
    const since = now - 28 * 3_600_000;
    assert.deepEqual(await replayFailedDeliveries(ctx, app.shop.id, since, { actor: "test" }), {
      queued: 1,
      inFlight: 0,
      resumeAfter: null,
    });
    assert.equal((await getDeliveryEntry(app.kv, old.id)).value?.status, "failed", "the old failed one is left alone");
  });
  await shop.close();
});
