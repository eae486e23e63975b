import assert from "node:assert/strict";
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { buyerSettles, callInit, paymentBody, recordCommits, startTestApp, waitFor } from "../fixtures/app.ts";
import { Browser, operatorBrowser, portalBrowser } from "../fixtures/browser.ts";
import { formatTime } from "../components/admin_layout.tsx";
import { getShop } from "../lib/db/shops.ts";
import { getPayment } from "../lib/db/payments.ts";
import { searchAudit } from "../lib/db/audit.ts";
import { createAccount } from "../lib/accounts/mod.ts";
import { rotateShopSecret } from "../lib/shops.ts";

Deno.test("[console] pages need a session; sign-in sets a __Host- cookie and sign-out revokes it", async () => {
  const app = await startTestApp();
  try {
    const anon = new Browser(app);
    const page = await anon.get("/admin/payments");
    assert.equal(page.status, 303);
    assert.equal(page.location, "/admin/login?next=%2Fadmin%2Fpayments");

    const b = await operatorBrowser(app);
    const cookie = [...b.cookies.keys()].find((k) => k === "__Host-apay_session");
    assert.ok(cookie);
    const overview = await b.get("/admin");
    assert.equal(overview.status, 200);
    assert.match(overview.text, /Last 30 days/);
    assert.match(overview.text, /BigQuery export/);
    assert.match(overview.headers.get("content-security-policy")!, /script-src 'self'/);
    const handbook = await b.get("/internal/deploy");
    assert.equal(handbook.status, 200);
    assert.match(handbook.text, /Deploying/);
    assert.equal((await anon.get("/internal")).status, 303, "the handbook needs a session");
    const stolen = b.cookies.get("__Host-apay_session")!;

    await b.get("/admin");
    assert.equal((await b.post("/admin/logout", {})).status, 303);
    const thief = new Browser(app);
    thief.cookies.set("__Host-apay_session", stolen);
    assert.equal((await thief.get("/admin")).status, 303, "a signed-out session token no longer works");
  } finally {
    await app.close();
  }
});

Deno.test("[console] a form post without the CSRF token or from another site is refused", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    await b.get("/admin/shops");
    const noToken = await b.post("/admin/shops", { name: "Evil" }, { csrf: "" });
    assert.equal(noToken.status, 403);
    // Same origin, a token of the right shape, but not the one in our cookie.
    const wrongToken = await b.post("/admin/shops", { name: "Evil" }, {
      csrf: b.csrf().replace(/.$/, (c) => c === "A" ? "B" : "A"),
    });
    assert.equal(wrongToken.status, 403);
    const crossSite = await b.post("/admin/shops", { name: "Evil" }, { origin: "https://evil.example" });
    assert.equal(crossSite.status, 403);
    await b.get("/admin/shops");
    assert.ok(!b.lastHtml.includes("Evil"), "nothing was created");
  } finally {
    await app.close();
  }
});

Deno.test("[console] the sixth failed sign-in within 15 minutes gets 429", async () => {
  const app = await startTestApp();
  try {
    await createOperatorAccount(app.server.ctx, "ops@example.com");
    const b = new Browser(app);
    await b.get("/admin/login");
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      statuses.push((await b.post("/admin/login", { email: "ops@example.com", password: "nope" })).status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
  } finally {
    await app.close();
  }
});

Deno.test("[console] creating a shop shows its key once, escapes names, and the key works", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    await b.get("/admin/shops");
    const bad = await b.post("/admin/shops", { name: "", allowedHosts: "not a host!" });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /class="error"/);
    const created = await b.post("/admin/shops", { name: "<script>alert(1)</script>", allowedHosts: "127.0.0.1" });
    assert.equal(created.status, 201);
    assert.ok(!created.text.includes("<script>alert(1)</script>"));
    assert.match(created.text, /&lt;script>alert\(1\)&lt;\/script>/);
    const key = created.text.match(/apay_sk_[A-Za-z0-9_-]+/)![0];
    const res = await callInit(app, paymentBody(), { key });
    assert.equal(res.status, 201);
    const list = await b.get("/admin/shops");
    assert.ok(!list.text.includes(key), "the key is never shown again");
  } finally {
    await app.close();
  }
});

Deno.test("[console] payments list filters, pages with a cursor, exports CSV and shows a timeline", async () => {
  const app = await startTestApp();
  try {
    for (let i = 0; i < 7; i++) {
      await callInit(
        app,
        paymentBody({ id: `o-${i}`, postbackUrl: "http://127.0.0.1:9/pb", currency: i % 2 ? "USD" : "EUR" }),
      );
    }
    const b = await operatorBrowser(app);
    const all = await b.get(`/admin/payments?shopId=${app.shop.id}`);
    assert.equal((all.text.match(/href="\/admin\/payments\/pay_/g) ?? []).length, 7);
    const usd = await b.get(`/admin/payments?currency=usd`);
    assert.equal((usd.text.match(/href="\/admin\/payments\/pay_/g) ?? []).length, 3);
    const one = await b.get(`/admin/payments?shopId=${app.shop.id}&shopTxId=o-4`);
    assert.equal((one.text.match(/href="\/admin\/payments\/pay_/g) ?? []).length, 1);
    const csv = await b.get(`/admin/payments.csv?currency=EUR`);
    assert.match(csv.headers.get("content-type")!, /text\/csv/);
    assert.equal(csv.text.trim().split("\r\n").length, 1 + 4);
    const id = all.text.match(/href="\/admin\/payments\/(pay_[^"]+)"/)![1];
    const detail = await b.get(`/admin/payments/${id}`);
    assert.match(detail.text, /ref: bsk_/);
    assert.match(detail.text, /created/);
  } finally {
    await app.close();
  }
});

Deno.test("[console] failing postbacks are listed, replayed for a shop since a time, and the audit log finds it", async () => {
  let healthy = false;
  const { startShopReceiver, buyerSettles, waitFor } = await import("../fixtures/app.ts");
  const shop = startShopReceiver(() => new Response("", { status: healthy ? 200 : 500 }));
  const app = await startTestApp({ env: { POSTBACK_SCHEDULE: "0,0.1" } });
  try {
    const init = await callInit(app, paymentBody({ id: "o-fail", postbackUrl: shop.url }));
    await buyerSettles(init.body.url, "paid");
    const { describePayment } = await import("../lib/payments/admin.ts");
    await waitFor("the postback to fail", async () => {
      const { deliveries } = await describePayment(app.server.ctx, init.body.id);
      return deliveries[0]?.status === "failed" ? true : undefined;
    });
    const b = await operatorBrowser(app);
    const list = await b.get("/admin/deliveries");
    assert.match(list.text, new RegExp(init.body.id));
    assert.match(list.text, /HTTP 500/);

    // The replay form takes no shop for granted; the browser's question names the shop and the time chosen (the
    // page's script fills them in: tests/browser_test.ts).
    const replayForm = list.text.slice(list.text.indexOf('action="/admin/deliveries/replay"'));
    assert.match(
      replayForm,
      /<select name="shopId" required id="replay-shop"><option value selected>Choose a shop…<\/option>/,
    );
    assert.doesNotMatch(replayForm.slice(0, replayForm.indexOf("</select>")), /value="shop_[^"]*" selected/);
    assert.match(
      replayForm,
      /data-confirm="Send the failed and retrying postbacks of \{shopId\} whose last attempt failed since \{since\} UTC now\?/,
    );
    const filtered = await b.get(`/admin/deliveries?shopId=${app.shop.id}`);
    const chosen = filtered.text.slice(filtered.text.indexOf('action="/admin/deliveries/replay"'));
    assert.match(chosen, new RegExp(`<option value="${app.shop.id}" selected>Test shop</option>`), "the shop filtered");
    // Sent without a shop (a browser that skipped `required`, a post by hand): the list again, with the form as sent.
    const noShop = await b.post("/admin/deliveries/replay", { shopId: "", since: "2026-01-01T00:00", confirm: "yes" });
    assert.equal(noShop.status, 400);
    assert.match(noShop.text, /<h1>Deliveries<\/h1>/, "the page the form is on, not the error page");
    assert.ok(noShop.text.includes(init.body.id), "with its list");
    assert.match(noShop.text, /role="alert">Not replayed: choose a shop and a time\.<\/p>/);
    const sentForm = noShop.text.slice(noShop.text.indexOf('action="/admin/deliveries/replay"'));
    assert.match(
      sentForm,
      /<select name="shopId" required id="replay-shop" aria-invalid="true" aria-describedby="replay-shop-error" autofocus>/,
      "the shop is marked for screen readers and takes the keyboard",
    );
    assert.match(sentForm, /<small id="replay-shop-error" class="error">Choose the shop whose failed postbacks/);
    assert.match(
      sentForm,
      /name="since" value="2026-01-01T00:00" required id="replay-since" aria-describedby="replay-since-hint"\/>/,
      "the time typed is kept",
    );
    const noTime = await b.post("/admin/deliveries/replay", { shopId: app.shop.id, since: "soon", confirm: "yes" });
    assert.equal(noTime.status, 400);
    const timeForm = noTime.text.slice(noTime.text.indexOf('action="/admin/deliveries/replay"'));
    assert.match(timeForm, new RegExp(`<option value="${app.shop.id}" selected>Test shop</option>`), "the shop kept");
    assert.match(timeForm, /id="replay-since" aria-invalid="true"/);
    assert.doesNotMatch(timeForm, /id="replay-shop" aria-invalid/);
    // A well-formed id of no shop (deleted meanwhile, typed by hand): said on the list, nothing replayed or audited.
    const ghost = "shop_" + "0".repeat(26);
    for (const confirm of ["", "yes"]) {
      const unknown = await b.post("/admin/deliveries/replay", { shopId: ghost, since: "2026-01-01T00:00", confirm });
      assert.equal(unknown.status, 422);
      assert.match(unknown.text, /role="alert">Not replayed: there is no such shop\.<\/p>/);
      assert.match(unknown.text, /<h1>Deliveries<\/h1>/);
    }
    const audited = await searchAudit(app.kv, { query: "postback.replay", limit: 10 });
    assert.equal(audited.filter((e) => e.action === "postback.replay").length, 0, "nothing audited");
    assert.equal(shop.received.length, 2, "nothing sent");

    healthy = true;
    const since = new Date(Date.now() - 60_000).toISOString().slice(0, 16);
    const ask = await b.post("/admin/deliveries/replay", { shopId: app.shop.id, since });
    assert.match(
      ask.text,
      /Send the failed and retrying postbacks of Test shop whose last attempt failed since/,
      "asks first",
    );
    // On a page of its own, away from the form, the question names the shop and the time it asks about.
    assert.ok(ask.text.includes(`since ${since.replace("T", " ")}:00 UTC now?`), "names the time");
    assert.equal(shop.received.length, 2, "nothing sent yet");
    const replay = await b.post("/admin/deliveries/replay", { shopId: app.shop.id, since, confirm: "yes" });
    assert.equal(replay.status, 303);
    assert.match(
      (await b.get(replay.location!)).text,
      /role="status">Sent 1 postback again\. They are being tried now/,
    );
    await waitFor(
      "the replayed postback",
      () => (shop.received.at(-1) && healthy && shop.received.length >= 3 ? true : undefined),
    );
    await waitFor("delivery", async () => {
      const { deliveries } = await describePayment(app.server.ctx, init.body.id);
      return deliveries[0].status === "delivered" ? true : undefined;
    });
    assert.ok(!(await b.get("/admin/deliveries")).text.includes(init.body.id), "no longer needs attention");

    await b.get(`/admin/payments/${init.body.id}`);
    const recheck = await b.post(`/admin/payments/${init.body.id}/recheck`, {});
    assert.equal(recheck.status, 303);
    assert.match(recheck.location!, /done=recheck-unchanged/);

    const audit = await b.get("/admin/audit?q=postback.replay");
    assert.match(audit.text, /postback\.replay/);
    assert.ok(!audit.text.includes("payment.recheck"), "the search filters");
  } finally {
    await app.close();
    await shop.close();
  }
});

Deno.test("[console] a replay of a long backlog goes a batch a request, and Go on takes it from where it stopped", async () => {
  const { startShopReceiver, waitFor } = await import("../fixtures/app.ts");
  const { failedDelivery, storeAttentionDeliveries } = await import("../fixtures/deliveries.ts");
  const { REPLAY_BATCH } = await import("../lib/relay/replay.ts");
  // The shop holds its answers until both requests are done: the replayed postbacks stay on the attention list, so a
  // Go on that started again from the first would find them (and the test tell).
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const shop = startShopReceiver(async () => (await gate, new Response("ok")));
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const now = Date.now();
    const backlog = Array.from(
      { length: REPLAY_BATCH + 1 },
      (_, i) => failedDelivery(now - 60_000 + i, { paymentId: `pay_backlog_${i}`, shopId: app.shop.id, url: shop.url }),
    );
    await storeAttentionDeliveries(app.kv, backlog);
    const b = await operatorBrowser(app);
    await b.get("/admin/deliveries");
    const since = new Date(now - 120_000).toISOString().slice(0, 16);
    const first = await b.post("/admin/deliveries/replay", { shopId: app.shop.id, since, confirm: "yes" });
    assert.equal(first.status, 200);
    assert.match(first.text, new RegExp(`Sent ${REPLAY_BATCH} postbacks again\\. .* More are left to look at\\.`));
    const after = first.text.match(/name="after" value="([^"]+)"/)?.[1];
    assert.equal(after, backlog[REPLAY_BATCH - 1].id, "Go on starts after the last one looked at");
    const rest = await b.post("/admin/deliveries/replay", { shopId: app.shop.id, since, after, confirm: "yes" });
    assert.equal(rest.status, 303);
    assert.equal(rest.location, "/admin/deliveries?done=replayed-1-0");
    open();
    await waitFor(
      "every replayed postback",
      () => (shop.received.length === backlog.length ? true : undefined),
      20_000,
    );
    assert.equal(new Set(shop.received.map((r) => r.headers.get("webhook-id"))).size, backlog.length, "each once");
    // A place to go on from that is not a postback id never reaches the store.
    await b.get("/admin/deliveries");
    const bad = await b.post("/admin/deliveries/replay", {
      shopId: app.shop.id,
      since,
      after: "x".repeat(3000),
      confirm: "yes",
    });
    assert.equal(bad.status, 400);
  } finally {
    open();
    await app.close();
    await shop.close();
  }
});

Deno.test("[console] a replay says how many postbacks it left alone because they were being sent at that moment", async () => {
  const { startShopReceiver, waitFor } = await import("../fixtures/app.ts");
  const { failedDelivery, storeAttentionDeliveries } = await import("../fixtures/deliveries.ts");
  const shop = startShopReceiver();
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const now = Date.now();
    const to = (paymentId: string) => ({ paymentId, shopId: app.shop.id, url: shop.url });
    // Two failed ones, and two retrying ones whose attempts are under way (a live lease): those are left to them.
    const failed = [failedDelivery(now - 50_000, to("pay_failed_1")), failedDelivery(now - 40_000, to("pay_failed_2"))];
    const sending = [1, 2].map((i) =>
      failedDelivery(now - 30_000 + i, to(`pay_sending_${i}`), {
        status: "pending",
        attempts: 1,
        nextAttemptAt: now,
        leaseUntil: now + 10_000,
        leaseToken: crypto.randomUUID(),
      })
    );
    await storeAttentionDeliveries(app.kv, [...failed, ...sending]);
    const b = await operatorBrowser(app);
    await b.get("/admin/deliveries");
    const since = new Date(now - 120_000).toISOString().slice(0, 16);
    const recorded = recordCommits(app.kv);
    const replay = await b.post("/admin/deliveries/replay", { shopId: app.shop.id, since, confirm: "yes" })
      .finally(recorded.stop);
    assert.equal(replay.status, 303);
    assert.equal(replay.location, "/admin/deliveries?done=replayed-2-2");
    // The click is audited once, in a write of its own before any postback is put back: the operator's command.
    const audits = recorded.commits.filter((keys) => keys.includes("audit"));
    assert.equal(audits.length, 1);
    assert.ok(!audits[0].includes("deliveries"), `the command alone: ${audits[0]}`);
    const firstPutBack = recorded.commits.findIndex((keys) => keys.includes("deliveries"));
    assert.ok(recorded.commits.indexOf(audits[0]) < firstPutBack, "before anything is put back");
    assert.match(
      (await b.get(replay.location!)).text,
      /role="status">Sent 2 postbacks again; 2 were being sent already and were left alone\. They are being tried now/,
    );
    const audited = await searchAudit(app.kv, { query: "postback.replay", limit: 10 });
    assert.deepEqual(
      audited.map((e) => ({ actor: e.actor, target: e.target, after: e.after })),
      [{ actor: "ops@example.com", target: app.shop.id, after: { since: `${since}:00.000Z` } }],
    );
    await waitFor("the failed ones", () => (shop.received.length === 2 ? true : undefined));
    const sent = shop.received.map((r) => r.headers.get("webhook-id")).sort();
    assert.deepEqual(sent, failed.map((d) => d.id).sort(), "not those being sent");
    // One left alone reads in the singular; a link from before the count (replayed-N) says none were.
    assert.match(
      (await b.get("/admin/deliveries?done=replayed-1-1")).text,
      /Sent 1 postback again; 1 was being sent already and was left alone\./,
    );
    assert.match((await b.get("/admin/deliveries?done=replayed-3")).text, /role="status">Sent 3 postbacks again\./);
    assert.match(
      (await b.get("/admin/deliveries?done=replayed-0-0")).text,
      /No postback was sent again: none needed it\./,
    );
    assert.doesNotMatch((await b.get("/admin/deliveries?done=replayed-3-x")).text, /role="status"/);
  } finally {
    await app.close();
    await shop.close();
  }
});

Deno.test("[console] right after a replay the list marks its postbacks due or being sent, not retrying later; the subject column names payments and invoices; the time comes filled in", async () => {
  const { startShopReceiver } = await import("../fixtures/app.ts");
  const { failedDelivery, storeAttentionDeliveries } = await import("../fixtures/deliveries.ts");
  // The shop holds its answers until the end: the replayed attempts are under way while the page is made.
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const shop = startShopReceiver(async () => (await gate, new Response("ok")));
  const app = await startTestApp({ env: { JOBS_QUEUE: "off", POSTBACK_TIMEOUT_MS: "20000" } });
  try {
    const now = Date.now();
    const to = (paymentId: string) => ({ paymentId, shopId: app.shop.id, url: shop.url });
    const hourLater = now + 3_600_000;
    const retrying = failedDelivery(now - 20_000, to("pay_retrying_000000000001"), {
      status: "pending",
      attempts: 3,
      scheduleStep: 3,
      nextAttemptAt: hourLater,
      lastError: "connection refused",
    });
    const invoiceId = "inv_" + "A".repeat(22);
    const failed = failedDelivery(now - 10_000, to(invoiceId), { eventType: "invoice.finished" });
    await storeAttentionDeliveries(app.kv, [retrying, failed]);
    const b = await operatorBrowser(app);

    const list = (await b.get("/admin/deliveries")).text;
    assert.match(list, /<th>Payment or invoice<\/th>/, "named for both");
    assert.match(list, new RegExp(`<td data-label="Invoice"><a href="/admin/invoices/${invoiceId}">`));
    assert.match(list, /<td data-label="Payment"><a href="\/admin\/payments\/pay_retrying_000000000001">/);
    assert.ok(list.includes(`<td data-label="Next retry">${formatTime(hourLater)}</td>`), "waiting for its time");
    // The time to replay from comes filled in: as long ago as the schedule runs (here under an hour: an hour), to
    // the hour, in UTC.
    const hourAgo = (t: number) => new Date(Math.floor((t - 3_600_000) / 3_600_000) * 3_600_000).toISOString();
    const since = list.match(/name="since" value="([^"]*)"/)?.[1];
    assert.ok([hourAgo(now), hourAgo(Date.now())].some((v) => v.slice(0, 16) === since), since);
    assert.match(list, /id="replay-since-hint" class="muted">Filled in with an hour ago: every postback still on its/);

    const replay = await b.post("/admin/deliveries/replay", { shopId: app.shop.id, since: since!, confirm: "yes" });
    assert.equal(replay.location, "/admin/deliveries?done=replayed-2-0");
    const after = (await b.get(replay.location!)).text;
    assert.match(
      after,
      /role="status">Sent 2 postbacks again\. They are being tried now, so the list below shows them as due now or being sent, with the error of the attempt before: reload in a moment to see which were delivered\.<\/p>/,
    );
    const nextTries = [...after.matchAll(/<td data-label="Next retry">([^<]*)<\/td>/g)].map((m) => m[1]);
    assert.equal(nextTries.length, 2);
    for (const next of nextTries) assert.match(next, /^(being sent now|due now)$/, "not its old time, nor 'gave up'");
  } finally {
    open();
    await app.close();
    await shop.close();
  }
});

Deno.test("[console] Resend on a failing postback's row sends that postback, not the payment's newest one", async () => {
  const { startShopReceiver, buyerSettles, waitFor } = await import("../fixtures/app.ts");
  const { describePayment } = await import("../lib/payments/admin.ts");
  // The shop takes refund postbacks but not the payment's own, until it is fixed.
  let fixed = false;
  const shop = startShopReceiver(() => {
    const refundNews = /"type":"refund\./.test(shop.received.at(-1)!.body);
    return new Response("", { status: fixed || refundNews ? 200 : 500 });
  });
  const app = await startTestApp({ env: { POSTBACK_SCHEDULE: "0" } });
  try {
    const init = await callInit(app, paymentBody({ id: "o-two-postbacks", postbackUrl: shop.url }));
    await buyerSettles(init.body.url, "paid");
    const deliveries = async () => (await describePayment(app.server.ctx, init.body.id)).deliveries;
    const paymentPostback = await waitFor("the payment's postback to fail", async () => {
      const failed = (await deliveries()).find((d) => d.status === "failed");
      return failed?.eventType === "payment.succeeded" ? failed : undefined;
    });
    const refunded = await fetch(`${app.baseUrl}/api/v1/payments/${init.body.id}/refunds`, {
      method: "POST",
      headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ amount: 100 }),
    });
    assert.equal(refunded.status, 201, await refunded.text());
    await waitFor("the refund's postback to be delivered", async () => {
      return (await deliveries()).find((d) => d.eventType.startsWith("refund."))?.status === "delivered" || undefined;
    });

    fixed = true;
    const b = await operatorBrowser(app);
    const list = await b.get("/admin/deliveries");
    assert.match(
      list.text,
      new RegExp(`name="deliveryId" value="${paymentPostback.id}"`),
      "the row names its postback",
    );
    const sentBefore = shop.received.length;
    const resent = await b.post("/admin/deliveries/resend", {
      paymentId: init.body.id,
      deliveryId: paymentPostback.id,
    });
    assert.equal(resent.status, 303);
    assert.equal(resent.location, "/admin/deliveries?done=resent-delivered");
    assert.match((await b.get(resent.location!)).text, /Postback resent and delivered\./);
    const sent = shop.received.slice(sentBefore);
    assert.deepEqual(sent.map((r) => r.headers.get("webhook-id")), [paymentPostback.id], "the failing one, once");
    assert.equal((await deliveries()).find((d) => d.id === paymentPostback.id)?.status, "delivered");
    const { events } = await describePayment(app.server.ctx, init.body.id);
    assert.deepEqual(
      events.filter((e) => e.type === "postback_resent").map((e) => e.data),
      [{ deliveryId: paymentPostback.id }],
      "the timeline names the postback resent",
    );

    // A postback of another payment is not this payment's to resend.
    const other = await callInit(app, paymentBody({ id: "o-other" }));
    assert.equal(
      (await b.post("/admin/deliveries/resend", { paymentId: other.body.id, deliveryId: paymentPostback.id })).status,
      404,
    );
    // The line on top is ours only: a link cannot write its own.
    const forged = await b.get(`/admin/deliveries?done=${encodeURIComponent("Call +1 555 0100 to keep your account")}`);
    assert.ok(!forged.text.includes("Call +1 555"), "no text from the link");
    assert.ok(!(await b.get("/admin/deliveries?done=replayed-x1")).text.includes("x1 failed"));
    const forgedOnPayment = await b.get(`/admin/payments/${init.body.id}?done=resend-${encodeURIComponent("Call us")}`);
    assert.ok(!forgedOnPayment.text.includes("Call us"), "nor on a payment's page");
    assert.ok(!forgedOnPayment.text.includes("Postback resent"), "nor a claim of a resend");
    const notThrough = await b.get(`/admin/payments/${init.body.id}?done=resend-pending`);
    assert.match(notThrough.text, /class="flash bad"[^>]*>Postback resent, not delivered: it is retrying\./);
    // Loaded after the action, it is a page like any other: no 4xx in the access log and the metrics for it.
    assert.equal(notThrough.status, 200);
  } finally {
    await app.close();
    await shop.close();
  }
});

Deno.test("[console] payment pages follow the cursor through every payment exactly once", async () => {
  const app = await startTestApp();
  try {
    for (let i = 0; i < 7; i++) await callInit(app, paymentBody());
    const { searchPayments } = await import("../lib/payments/search.ts");
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 5; page++) {
      const res = await searchPayments(app.server.ctx, { shopId: app.shop.id }, { limit: 3, cursor });
      seen.push(...res.payments.map((p) => p.id));
      if (!res.cursor) break;
      cursor = res.cursor;
    }
    assert.equal(seen.length, 7);
    assert.equal(new Set(seen).size, 7);
  } finally {
    await app.close();
  }
});

Deno.test("[console] lists name the shop and filter by it, money has separators, times say UTC, CSV has decimals and the shop's name", async () => {
  const app = await startTestApp({ env: { POSTBACK_SCHEDULE: "0,60" } });
  try {
    await callInit(app, paymentBody({ id: "ORD-2026-17", amount: 123456, postbackUrl: "http://127.0.0.1:9/pb" }));
    const jpy = await callInit(
      app,
      paymentBody({
        id: "ORD-2026-18",
        amount: 10000,
        currency: "JPY",
        email: "kenji@example.jp",
        postbackUrl: "http://127.0.0.1:9/pb",
      }),
    );
    assert.equal(jpy.status, 201, JSON.stringify(jpy.body));
    const b = await operatorBrowser(app);
    const list = await b.get("/admin/payments");
    assert.match(list.text, /<th>Shop<\/th>/);
    assert.match(list.text, new RegExp(`<a href="/admin/shops/${app.shop.id}">Test shop</a>`));
    assert.match(list.text, /1,234\.56 EUR/);
    assert.match(list.text, /10,000 JPY/);
    assert.match(list.text, /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    assert.match(list.text, /<input name="email"/, "a plain text field takes part of an address");

    const count = (html: string) => (html.match(/href="\/admin\/payments\/pay_/g) ?? []).length;
    assert.equal(count((await b.get("/admin/payments?email=kenji")).text), 1, "email prefix");
    assert.equal(count((await b.get("/admin/payments?shopTxId=ORD-2026")).text), 2, "order id prefix");
    assert.equal(count((await b.get("/admin/payments?shopTxId=ORD-2026-18")).text), 1, "exact order id");

    const csv = await b.get("/admin/payments.csv");
    const [header, ...rows] = csv.text.trim().split("\r\n");
    assert.match(header, /^id,shopId,shopName,shopTxId,status,amount,amountDecimal,currency,/);
    const eur = rows.find((r) => r.includes('"ORD-2026-17"'))!;
    assert.match(eur, /"Test shop","ORD-2026-17","pending","123456","1234\.56","EUR"/);

    const { waitFor } = await import("../fixtures/app.ts");
    const { describePayment } = await import("../lib/payments/admin.ts");
    // A port that was free a moment ago: nothing listens there, so the connection is refused and it retries.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closed = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const paid = await callInit(app, paymentBody({ id: "ORD-2026-19", postbackUrl: `http://127.0.0.1:${closed}/pb` }));
    const { buyerSettles } = await import("../fixtures/app.ts");
    await buyerSettles(paid.body.url, "paid");
    await waitFor("a failed attempt", async () => {
      const { deliveries } = await describePayment(app.server.ctx, paid.body.id);
      return deliveries[0]?.attempts ? true : undefined;
    });
    const deliveries = await b.get(`/admin/deliveries?shopId=${app.shop.id}`);
    assert.match(deliveries.text, /<th>Shop<\/th>/);
    assert.match(deliveries.text, /<select name="shopId">/);
    assert.match(deliveries.text, /connection refused/);
    assert.ok(!/TypeError|fetch failed/.test(deliveries.text));
    assert.match(deliveries.text, /retrying/);
    assert.match(deliveries.text, /<th>Next retry<\/th>/);
    const detail = await b.get(`/admin/payments/${paid.body.id}`);
    assert.match(detail.text, /retrying<\/strong> after/);
    assert.match(detail.text, /next retry \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    assert.match(detail.text, /data-busy="Resending…"/);
    assert.match(detail.text, /data-busy="Re-checking…"/);
  } finally {
    await app.close();
  }
});

Deno.test("[console] a new key is shown once after a redirect; revoke, disable and rotate ask first; the audit links what it names", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    const shopPage = `/admin/shops/${app.shop.id}`;
    await b.get(shopPage);
    const created = await b.post(`${shopPage}/keys`, {});
    assert.equal(created.status, 303, "post/redirect/get: a reload does not make another key");
    assert.equal(created.location, shopPage);
    const shown = await b.get(shopPage);
    const key = shown.text.match(/apay_sk_[A-Za-z0-9_-]+/)![0];
    assert.ok(!(await b.get(shopPage)).text.includes(key), "shown once");
    // The new key's row: its hint is the start of the key.
    const row = shown.text.split("<tr").find((r) => {
      const hint = r.match(/<code>([^<]+)…<\/code>/)?.[1];
      return hint && key.startsWith(hint);
    })!;
    const keyId = row.match(/\/keys\/([^/"]+)\/revoke/)![1];

    // Without the page's script the server asks on a page of its own; nothing happens yet.
    const ask = await b.post(`${shopPage}/keys/${keyId}/revoke`, {});
    assert.equal(ask.status, 200);
    assert.match(ask.text, /Revoke this API key\?/);
    assert.match(ask.text, /name="confirm" value="yes"/);
    assert.equal((await callInit(app, paymentBody(), { key })).status, 201, "the key still works");
    const revoked = await b.post(`${shopPage}/keys/${keyId}/revoke`, { confirm: "yes" });
    assert.equal(revoked.status, 303);
    assert.match((await b.get(shopPage)).text, /Key revoked/);
    assert.equal((await callInit(app, paymentBody(), { key })).status, 401);

    assert.match(shown.text, /data-confirm="Disable Test shop\?/);
    const disable = await b.post(`${shopPage}/status`, { status: "disabled" });
    assert.match(disable.text, /Disable this shop\?/);
    assert.match((await b.get(shopPage)).text, /<strong class="ok">active<\/strong>/);
    const secretBefore = (await getShop(app.kv, app.shop.id))!.webhookSecret;
    const rotate = await b.post(`${shopPage}/signing`, { scheme: "hmac" });
    assert.equal(rotate.status, 200);
    assert.match(rotate.text, /Rotate the postback signing secret\?/);
    assert.equal((await getShop(app.kv, app.shop.id))!.webhookSecret, secretBefore, "nothing rotated yet");
    assert.doesNotMatch(rotate.text, /already in progress/);

    const audit = await b.get("/admin/audit");
    assert.match(audit.text, new RegExp(`revoked an API key of <a href="/admin/shops/${app.shop.id}">Test shop</a>`));
    assert.ok(!audit.text.includes(app.shop.webhookSecret));
  } finally {
    await app.close();
  }
});

Deno.test("[console] a rotation within the overlap keeps the one before signing; at three the console refuses and offers to end the overlap, asking first", async (t) => {
  const { signingSecrets } = await import("../lib/shops.ts");
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    const shopPage = `/admin/shops/${app.shop.id}`;
    const signing = async () => signingSecrets((await getShop(app.kv, app.shop.id))!, Date.now());
    const TIME = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC`;
    await b.get(shopPage);
    await t.step("one signs: the page says so, with nothing to end", async () => {
      const page = (await b.get(shopPage)).text;
      assert.match(page, /Signing now:/);
      assert.match(page, /<strong>Current<\/strong> shared secret \(v1\) ending in …\S{4}: signs until it is replaced/);
      assert.doesNotMatch(page, /End the overlap now/);
      const nothing = await b.post(`${shopPage}/signing/end-overlap`, {});
      assert.equal(nothing.status, 422);
      assert.match(nothing.text, /role="alert">Overlap not ended: Only the current secret or key signs/);
    });
    await t.step(
      "a second rotation within the overlap keeps the first one's secret signing, as its question says",
      async () => {
        assert.equal((await b.post(`${shopPage}/signing`, { scheme: "hmac", confirm: "yes" })).status, 303);
        const page = (await b.get(shopPage)).text;
        assert.match(page, /Rotation in progress: every postback and redirect carries one signature from each/);
        assert.match(
          page,
          new RegExp(
            `<strong>Previous</strong> shared secret \\(v1\\) ending in …\\S{4}: signs until ${TIME}, then stops`,
          ),
        );
        assert.match(page, /data-confirm="Rotate the postback signing secret\?[^"]*keeps signing until its own end/);
        const ask = await b.post(`${shopPage}/signing`, { scheme: "ed25519" });
        assert.match(ask.text, /A rotation is already in progress: the secret or key replaced before keeps signing/);
        assert.equal((await signing()).length, 2, "asking changed nothing");
        assert.equal((await b.post(`${shopPage}/signing`, { scheme: "ed25519", confirm: "yes" })).status, 303);
        assert.equal((await signing()).length, 3, "the secret from before the first rotation still signs");
        assert.match(
          (await b.get(shopPage)).text,
          /Three secrets or keys sign for now: the new one, the one it replaced/,
        );
      },
    );
    await t.step(
      "at three the rotate buttons give way to when one frees up; a rotation is refused and changes nothing",
      async () => {
        const page = (await b.get(shopPage)).text;
        assert.doesNotMatch(page, />Rotate key pair</);
        assert.doesNotMatch(page, />Switch to a shared secret</);
        assert.match(
          page,
          new RegExp(
            `3 secrets or keys sign at once, the most there can be: rotating or switching again\\s+is possible\\s+from ${TIME}`,
          ),
        );
        const before = await signing();
        for (const form of [{ scheme: "hmac" }, { scheme: "hmac", confirm: "yes" }] as Record<string, string>[]) {
          const refused = await b.post(`${shopPage}/signing`, form);
          assert.equal(refused.status, 422, JSON.stringify(form));
          assert.match(refused.text, /role="alert">Not rotated: 3 secrets or keys sign this shop/);
          assert.match(
            refused.text,
            new RegExp(`stops signing at ${TIME}: rotate again after that, or end the overlap`),
          );
          assert.match(refused.text, new RegExp(`action="${shopPage}/signing/end-overlap"`), "with the way out");
          assert.ok(!before.some((secret) => refused.text.includes(secret)), "never a secret");
        }
        assert.deepEqual(await signing(), before);
        // Each refused attempt (the question's and the confirmed one's) is on record with its reason, nothing secret.
        const entries = (await searchAudit(app.kv, { query: "signing_limit", limit: 10 }))
          .filter((e) => e.action === "shop.switch_signing.refused");
        assert.equal(entries.length, 2);
        for (const e of entries) {
          assert.equal(e.actor, "ops@example.com");
          assert.equal(e.target, app.shop.id);
          const after = e.after as Record<string, unknown>;
          assert.equal(after.refused, "signing_limit");
          assert.match(String(after.reason), /^3 secrets or keys sign this shop's postbacks already/);
          assert.equal(after.requestedScheme, "hmac");
          assert.equal(after.overlapHours, 24);
          assert.deepEqual(after.previousSigning, (e.before as Record<string, unknown>).previousSigning);
          assert.ok(!before.some((secret) => JSON.stringify(e).includes(secret)), "never a secret");
        }
        const audit = (await b.get("/admin/audit?q=refused")).text;
        assert.match(
          audit,
          new RegExp(`was refused a switch of the postback signing of <a href="${shopPage}">Test shop</a>`),
        );
        assert.match(audit, /refused: <code>signing_limit<\/code>/);
      },
    );
    await t.step("ending the overlap asks first, naming what stops, then leaves the current key alone", async () => {
      const page = (await b.get(shopPage)).text;
      assert.match(
        page,
        new RegExp(
          `data-confirm="End the overlap now\\? The shared secret \\(v1\\) ending in …\\S{4} that signs until ${TIME} and the shared ` +
            `secret \\(v1\\) ending in …\\S{4} that signs until ${TIME} stop signing at once`,
        ),
      );
      const ask = await b.post(`${shopPage}/signing/end-overlap`, {});
      assert.equal(ask.status, 200);
      assert.match(ask.text, /End the overlap now\?/);
      assert.match(ask.text, /name="confirm" value="yes"/);
      assert.equal((await signing()).length, 3, "asking changed nothing");
      const ended = await b.post(`${shopPage}/signing/end-overlap`, { confirm: "yes" });
      assert.equal(ended.status, 303);
      assert.equal(ended.location, shopPage);
      const after = (await b.get(shopPage)).text;
      assert.match(after, /Overlap ended: only the current secret or key signs/);
      assert.match(after, /<strong>Current<\/strong> key pair \(v1a\)/);
      assert.doesNotMatch(after, /<strong>Previous<\/strong>|End the overlap now/);
      assert.match(after, />Rotate key pair</, "rotating is possible again");
      assert.equal((await signing()).length, 1);
    });
    await t.step("the audit log says who ended it, without a secret", async () => {
      const audit = (await b.get("/admin/audit")).text;
      assert.match(
        audit,
        new RegExp(`<strong>ops@example.com</strong> ended the signing overlap of <a href="${shopPage}">Test shop</a>`),
      );
      assert.match(audit, /previousSigning: /);
      assert.ok(!audit.includes("whsec_") && !audit.includes("whsk_"));
    });
  } finally {
    await app.close();
  }
});

Deno.test("[console] a missing page inside the console keeps the menu; the portal without a session says how to get a link", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    for (const path of ["/admin/nothing-here", "/admin/payments/pay_doesnotexist"]) {
      const res = await b.get(path);
      assert.equal(res.status, 404, path);
      assert.match(res.text, /<nav aria-label="Console">/, path);
      assert.match(res.text, /href="\/admin\/payments"/, path);
    }
    const portal = await new Browser(app).get("/portal/payments");
    assert.equal(portal.status, 401);
    assert.match(portal.text, /Ask your AimbrellaPay contact/);
    assert.match(portal.text, /single-use sign-in link/);
  } finally {
    await app.close();
  }
});

Deno.test("[console] a re-check says what the provider answered: a payment it does not know (404) on the payment's page, a failure by its status", async () => {
  const { createPayment, getPayment } = await import("../lib/db/payments.ts");
  const { storedPayment } = await import("../fixtures/payments.ts");
  const { SANDBOX_TOKEN } = await import("../fixtures/app.ts");
  const app = await startTestApp({ standaloneSandbox: true });
  try {
    // A payment whose reference the provider never made (other credentials, a sandbox that restarted).
    const forgotten = storedPayment(Date.now(), { shopId: app.shop.id, providerRef: "bsk_forgotten" });
    assert.ok(await createPayment(app.kv, forgotten));
    const b = await operatorBrowser(app);
    await b.get(`/admin/payments/${forgotten.id}`);
    const unknown = await b.post(`/admin/payments/${forgotten.id}/recheck`, {});
    assert.equal(unknown.status, 422, "a refusal shown on the payment's page");
    assert.match(unknown.text, /<h1>Payment<\/h1>/);
    assert.match(
      unknown.text,
      /role="alert">Not re-checked: The provider does not know this payment \(it answered 404 to the status check\)/,
    );
    // And what to do about it: asking again does not help, the payment's account may.
    assert.match(
      unknown.text,
      /Our status is left as it is\. Asking again changes nothing: check the payment's account on the Accounts page/,
    );
    assert.equal((await getPayment(app.kv, forgotten.id))!.status, "pending", "our status is left as it is");

    // A provider that fails is a 502 that names what it answered.
    const known = await callInit(app, paymentBody());
    app.sandbox.knobs.failureRate = 1;
    await b.get(`/admin/payments/${known.body.id}`);
    const failing = await b.post(`/admin/payments/${known.body.id}/recheck`, {});
    assert.equal(failing.status, 502);
    assert.match(failing.text, /The payment provider failed: it answered 503 to the status check\./);
    for (const page of [unknown.text, failing.text]) {
      assert.ok(!page.includes(SANDBOX_TOKEN), "never our credentials");
      assert.doesNotMatch(page, /sandbox fault|GET \/payments/, "never the provider's body or our call");
    }
  } finally {
    await app.close();
  }
});

Deno.test("[console] a re-check the provider fails (an error status, no answer in time, unreachable) is said on the payment's page with 502 or 504; our status stays", async () => {
  const { createPayment, getPayment } = await import("../lib/db/payments.ts");
  const { storedPayment } = await import("../fixtures/payments.ts");
  const { createAccount } = await import("../lib/accounts/mod.ts");
  const { freePort, SANDBOX_TOKEN } = await import("../fixtures/app.ts");
  const app = await startTestApp({ standaloneSandbox: true, env: { PROVIDER_TIMEOUT_MS: "500" } });
  try {
    const init = await callInit(app, paymentBody());
    assert.equal(init.status, 201, JSON.stringify(init.body));
    // An account whose API nobody listens at: a payment made on it cannot be asked about.
    const gone = await createAccount(app.server.ctx, {
      provider: "bansky",
      label: "Gone",
      orgId: "891027350515",
      currencies: ["EUR"],
      credentials: { apiUrl: `http://127.0.0.1:${freePort()}`, apiToken: "token-gone", webhookSecret: "whsec-gone" },
    }, { actor: "test" });
    const stranded = storedPayment(Date.now(), {
      shopId: app.shop.id,
      accountId: gone.id,
      providerRef: "bsk_stranded",
    });
    assert.ok(await createPayment(app.kv, stranded));
    const b = await operatorBrowser(app);

    const cases: [string, string, () => void, number, RegExp][] = [
      [
        "an error status",
        init.body.id,
        () => (app.sandbox.knobs.failureRate = 1),
        502,
        /The payment provider failed: it answered 503 to the status check\. Our status is left as it is\./,
      ],
      [
        "no answer in time",
        init.body.id,
        () => Object.assign(app.sandbox.knobs, { failureRate: 0, latencyMs: 1_500 }),
        504,
        /The payment provider did not answer the status check in time\. Our status is left as it is\./,
      ],
      [
        "unreachable",
        stranded.id,
        () => (app.sandbox.knobs.latencyMs = 0),
        502,
        /The payment provider could not be reached, or its answer to the status check could not be read\. Our status is left as it is\./,
      ],
    ];
    for (const [name, id, breakProvider, status, message] of cases) {
      await b.get(`/admin/payments/${id}`);
      breakProvider();
      const res = await b.post(`/admin/payments/${id}/recheck`, {});
      assert.equal(res.status, status, name);
      // The payment's own page, with the line on top and its actions to try again from, not the error page.
      assert.match(res.text, /<h1>Payment<\/h1>/, name);
      assert.ok(res.text.includes(id), name);
      assert.match(res.text, new RegExp(`role="alert">Not re-checked: ${message.source}`), name);
      // What to do next: the same again later, and where to look if it keeps failing.
      assert.match(
        res.text,
        new RegExp(
          `${message.source} Try again in a few minutes; if it keeps failing, check the payment's account on the ` +
            "Accounts page and its calls on the Operations page\\.</p>",
        ),
        name,
      );
      assert.match(res.text, new RegExp(`action="/admin/payments/${id}/recheck"`), name);
      assert.doesNotMatch(res.text, /That did not work/, name);
      assert.ok(!res.text.includes(SANDBOX_TOKEN) && !res.text.includes("token-gone"), "never our credentials");
      assert.doesNotMatch(res.text, /sandbox fault|GET \/payments|unreachable|timed out/, "never the call or its body");
      assert.equal((await getPayment(app.kv, id))!.status, "pending", `${name}: our status is left as it is`);
    }
    // Loaded again afterwards, it is the payment's page as usual.
    assert.equal((await b.get(`/admin/payments/${stranded.id}`)).status, 200);
  } finally {
    await app.close();
  }
});

Deno.test("[console] a list filtered by a shop id that names no shop says there is no such shop, never an empty list", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    // Well formed (a shop deleted meanwhile, an id typed or pasted with a typo) or not: the same 404 with the menu.
    for (const shopId of ["shop_" + "0".repeat(26), "shop_nope"]) {
      const res = await b.get(`/admin/deliveries?shopId=${shopId}`);
      assert.equal(res.status, 404, shopId);
      assert.match(res.text, /<p>Unknown shop\.<\/p>/, shopId);
      assert.match(res.text, /<nav aria-label="Console">/, shopId);
      assert.doesNotMatch(res.text, /No postback is retrying or failed/, `${shopId}: no false all-clear`);
      for (const list of ["payments", "invoices", "operations"]) {
        const other = await b.get(`/admin/${list}?shopId=${shopId}`);
        assert.equal(other.status, 404, `${list} ${shopId}`);
        assert.match(other.text, /<p>Unknown shop\.<\/p>/, `${list} ${shopId}`);
        assert.equal((await b.get(`/admin/${list}?shopId=${app.shop.id}`)).status, 200, `${list} of a known shop`);
      }
    }
    const known = await b.get(`/admin/deliveries?shopId=${app.shop.id}`);
    assert.equal(known.status, 200);
    assert.match(known.text, /No postback is retrying or failed/);
    assert.equal((await b.get("/admin/deliveries?shopId=")).status, 200, "All shops");
  } finally {
    await app.close();
  }
});

Deno.test("[console] a Replay naming a shop id of the wrong shape says there is no such shop, as a well-formed unknown one does; nothing is replayed", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    await b.get("/admin/deliveries");
    for (const confirm of ["", "yes"]) {
      const res = await b.post("/admin/deliveries/replay", { shopId: "shop_nope", since: "2026-01-01T00:00", confirm });
      assert.equal(res.status, 422, confirm);
      assert.match(res.text, /<h1>Deliveries<\/h1>/);
      assert.match(res.text, /role="alert">Not replayed: there is no such shop\.<\/p>/);
      assert.doesNotMatch(res.text, /choose a shop and a time|Choose the shop whose/);
      const form = res.text.slice(res.text.indexOf('action="/admin/deliveries/replay"'));
      assert.match(form, /id="replay-shop" aria-invalid="true"/);
      assert.match(form, /<small id="replay-shop-error" class="error">No such shop\.<\/small>/);
      assert.match(form, /name="since" value="2026-01-01T00:00"/, "the time typed is kept");
    }
    // With the time missing too, both are said: the time is missing and the shop is not there.
    const both = await b.post("/admin/deliveries/replay", { shopId: "shop_nope", since: "", confirm: "yes" });
    assert.equal(both.status, 400);
    assert.match(both.text, /<small id="replay-shop-error" class="error">No such shop\.<\/small>/);
    assert.match(both.text, /id="replay-since" aria-invalid="true"/);
    const audited = await searchAudit(app.kv, { query: "postback.replay", limit: 10 });
    assert.equal(audited.filter((e) => e.action === "postback.replay").length, 0, "nothing audited");
  } finally {
    await app.close();
  }
});

/** The class of a page's submit button with this label ("" for none); fails when the page has no such button. */
function buttonClass(html: string, label: string): string {
  const found = html.match(new RegExp(`<button type="submit"(?: class="([^"]*)")?>${label}</button>`));
  assert.ok(found, `a "${label}" button`);
  return found[1] ?? "";
}

Deno.test("[console] every button that takes something away has the one destructive style, on confirmation pages and on forms the browser asks about; a step that takes nothing away does not", async (t) => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    const ctx = app.server.ctx;
    const shopPage = `/admin/shops/${app.shop.id}`;
    await rotateShopSecret(app.kv, app.shop.id, { actor: "test", now: Date.now() });
    await b.post(`${shopPage}/embed`, { embedOrigins: "https://shop.example https://www.shop.example" });

    await t.step("the shop's page and each of its confirmation pages", async () => {
      const page = (await b.get(shopPage)).text;
      assert.equal(buttonClass(page, "Revoke"), "danger small");
      assert.equal(buttonClass(page, "Disable shop"), "danger");
      assert.equal(buttonClass(page, "End the overlap now"), "danger");
      assert.equal(buttonClass(page, "Turn signed redirects off"), "danger");
      const keyId = page.match(/\/keys\/([^/"]+)\/revoke/)![1];
      const asks: [string, Record<string, string>, string][] = [
        [`${shopPage}/keys/${keyId}/revoke`, {}, "Revoke key"],
        [`${shopPage}/status`, { status: "disabled" }, "Disable shop"],
        [`${shopPage}/signing/end-overlap`, {}, "End the overlap"],
        [`${shopPage}/redirect-signing`, { on: "0" }, "Turn off"],
        [`${shopPage}/embed`, { embedOrigins: "https://shop.example" }, "Save embedding sites"],
      ];
      for (const [path, fields, label] of asks) {
        const ask = await b.post(path, fields);
        assert.equal(ask.status, 200, path);
        assert.match(ask.text, /name="confirm" value="yes"/, path);
        assert.equal(buttonClass(ask.text, label), "danger", path);
      }
      // A rotation stops nothing now (the replaced secret signs through the overlap): no destructive look.
      assert.equal(buttonClass((await b.post(`${shopPage}/signing`, { scheme: "hmac" })).text, "Rotate"), "");
      assert.equal((await getShop(app.kv, app.shop.id))!.status, "active", "nothing was done by asking");
    });

    await t.step("a refund's confirmation", async () => {
      const init = await callInit(app, paymentBody());
      await buyerSettles(init.body.url, "paid");
      await waitFor("paid", async () => (await getPayment(app.kv, init.body.id))?.status === "succeeded" || undefined);
      const detail = (await b.get(`/admin/payments/${init.body.id}`)).text;
      assert.equal(buttonClass(detail, "Refund…"), "secondary", "it only leads to the confirmation");
      const confirm = await b.post(`/admin/payments/${init.body.id}/refund`, { amount: "1.00", reason: "" });
      assert.equal(confirm.status, 200);
      assert.equal(buttonClass(confirm.text, "Confirm refund"), "danger");
    });

    await t.step("forms, accounts and a replay", async () => {
      await b.get("/admin/forms");
      const created = await b.post("/admin/forms", { shopId: app.shop.id, kind: "fiat", title: "Gift" });
      const formId = new URL(created.location!, app.baseUrl).searchParams.get("created")!;
      assert.equal(buttonClass((await b.get("/admin/forms")).text, "Disable"), "danger small");
      assert.equal(buttonClass((await b.post(`/admin/forms/${formId}/disable`, {})).text, "Disable form"), "danger");

      const account = await createAccount(ctx, {
        provider: "bansky",
        label: "Org A",
        orgId: "891027350515",
        credentials: { apiUrl: "https://bansky.example", apiToken: "t", webhookSecret: "w" },
      }, { actor: "test" });
      assert.equal(buttonClass((await b.get("/admin/accounts")).text, "Disable"), "danger small");
      const disable = await b.post(`/admin/accounts/${account.id}/active`, { active: "no" });
      assert.equal(buttonClass(disable.text, "Disable account"), "danger");
      const rotate = await b.post(`/admin/accounts/${account.id}/rotate`, {});
      assert.equal(buttonClass(rotate.text, "Enter new credentials"), "", "it only leads to the form");
      const form = await b.post(`/admin/accounts/${account.id}/rotate`, { confirm: "yes" });
      assert.equal(buttonClass(form.text, "Replace credentials"), "danger");

      const replay = await b.post("/admin/deliveries/replay", { shopId: app.shop.id, since: "2026-01-01T00:00" });
      assert.equal(buttonClass(replay.text, "Replay"), "", "sending postbacks again takes nothing away");
    });

    await t.step("the portal's removal of an embedding site", async () => {
      const staff = await portalBrowser(app);
      await staff.get("/portal/settings");
      const ask = await staff.post("/portal/settings/embed", { embedOrigins: "" });
      assert.equal(buttonClass(ask.text, "Save embedding sites"), "danger");
    });
  } finally {
    await app.close();
  }
});

Deno.test("[console] every audited action reads as a sentence in the audit log; one no longer written shows its code", async () => {
  const { AUDIT_ACTIONS, writeAudit } = await import("../lib/db/audit.ts");
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    const at = Date.now();
    // One entry of each action the code writes, each naming its own target so its row is found below.
    for (const [i, action] of AUDIT_ACTIONS.entries()) {
      await writeAudit(app.kv, { at, actor: "ops@example.com", action, target: `t-${i}`, before: null, after: null });
    }
    // Written by an older version: the type allows only today's actions.
    await writeAudit(app.kv, {
      at,
      actor: "ops@example.com",
      action: "shop.retired_action" as (typeof AUDIT_ACTIONS)[number],
      target: "t-old",
      before: null,
      after: null,
    });
    const page = (await b.get("/admin/audit")).text;
    /** The words between the actor and the target of the row naming `target`. */
    const wordsOf = (target: string) => {
      const row = page.match(new RegExp(`<strong>ops@example.com</strong> ([^<]*)<code>${target}</code>`));
      assert.ok(row, `a row for ${target}`);
      return row[1].trim();
    };
    for (const [i, action] of AUDIT_ACTIONS.entries()) {
      const words = wordsOf(`t-${i}`);
      assert.ok(words.length > 0 && !words.includes(action), `${action} reads as a sentence, not its code: "${words}"`);
    }
    assert.equal(wordsOf(`t-${AUDIT_ACTIONS.indexOf("form.create")}`), "created the payment form");
    assert.equal(
      wordsOf(`t-${AUDIT_ACTIONS.indexOf("shop.embed_origins")}`),
      "changed the sites that may embed the pages of",
    );
    assert.equal(wordsOf("t-old"), "shop.retired_action");
  } finally {
    await app.close();
  }
});

Deno.test("[console] a shop's page leads to its routing; a new account's page gives the webhook URL onboarding needs", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    const shopPage = (await b.get(`/admin/shops/${app.shop.id}`)).text;
    assert.match(shopPage, new RegExp(`<a href="/admin/shops/${app.shop.id}/routing">Routing of this shop</a>`));
    assert.match(shopPage, /No rules: the platform's default account takes every payment\./);
    assert.equal((await b.get(`/admin/shops/${app.shop.id}/routing`)).status, 200);

    await b.get("/admin/accounts");
    const made = await b.post("/admin/accounts", {
      provider: "bansky",
      label: "Org A",
      orgId: "891027350515",
      currencies: "",
      apiUrl: "https://bansky.example",
      apiToken: "token-a",
      webhookSecret: "secret-a",
    });
    assert.equal(made.status, 303);
    const id = made.location!.match(/created=(pa_[\w-]+)#account-\1$/)?.[1];
    assert.ok(id, made.location!);
    const page = (await b.get(made.location!)).text;
    const url = `${app.config.publicBaseUrl}/api/payment-verify/${id}`;
    assert.match(page, /<h2 id="created-account">Account created: Org A<\/h2>/);
    assert.ok(page.includes(`<code class="select-all" data-webhook-url="${id}">${url}</code>`), "on top, to copy");
    assert.ok(page.includes(`webhooks at <code>${url}</code>`), "and on the account's row");
    assert.ok(
      page.includes(`webhooks at <code>${app.config.publicBaseUrl}/api/payment-verify</code>`),
      "the default's",
    );
    assert.doesNotMatch(page, /token-a|secret-a/);
    // Any other value names no account and shows nothing.
    assert.doesNotMatch((await b.get("/admin/accounts?created=%3Cb%3E")).text, /Account created/);
  } finally {
    await app.close();
  }
});

Deno.test("[console] the CSV export runs no shop's or buyer's text as a formula, split at commas or at semicolons", async () => {
  const app = await startTestApp();
  try {
    const name = "x;=cmd|' /C calc'!A0;";
    const made = await callInit(
      app,
      paymentBody({ id: "=1+1", name, email: "-1+1@example.com", postbackUrl: "http://127.0.0.1:9/pb" }),
    );
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const b = await operatorBrowser(app);
    const csv = (await b.get("/admin/payments.csv")).text;
    const row = csv.trim().split("\r\n").find((r) => r.startsWith(`"${made.body.id}"`))!;
    assert.match(row, /"'=1\+1","pending",.*"'-1\+1@example\.com","x;'=cmd\|' \/C calc'!A0;"/);
    // A spreadsheet whose list separator is ";" splits the file at every ";", in quotes or not: no piece may start a
    // formula.
    for (const piece of csv.split(/[;\r\n]/)) assert.doesNotMatch(piece, /^[=+\-@]/, piece);
  } finally {
    await app.close();
  }
});
