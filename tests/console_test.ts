import assert from "node:assert/strict";
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { callInit, paymentBody, startTestApp } from "../fixtures/app.ts";
import { Browser, operatorBrowser } from "../fixtures/browser.ts";

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

    healthy = true;
    const since = new Date(Date.now() - 60_000).toISOString().slice(0, 16);
    const replay = await b.post("/admin/deliveries/replay", { shopId: app.shop.id, since });
    assert.equal(replay.status, 303);
    assert.match(decodeURIComponent(replay.location!), /1 failed postbacks queued again/);
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
