import assert from "node:assert/strict";
import { addCliOperator, runShopCli, startShopReceiver, startTestApp, type TestApp, waitFor } from "../fixtures/app.ts";
import { createShop, createShopKey, revokeShopKey, setEmbedOrigins } from "../lib/shops.ts";
import { verifyWebhook } from "../lib/relay/signing.ts";
import { apiV1Routes } from "../routes/api/v1.ts";
import { PUBLISHABLE_KEY_ROUTES } from "../routes/api/v1/checkout.ts";
import { getPayment } from "../lib/db/payments.ts";
import { listApiKeys } from "../lib/db/shops.ts";
import { createAccount } from "../lib/accounts/mod.ts";
import { setShopRouting } from "../lib/accounts/routing.ts";
import { StripeFake } from "../fixtures/stripe_fake.ts";
import { operatorBrowser } from "../fixtures/browser.ts";
import {
  CheckoutConfigResponse,
  CheckoutConfirmResponse,
  CheckoutMountResponse,
  CheckoutSessionCreatedResponse,
  CheckoutSessionView,
} from "../lib/checkout/api_schemas.ts";

async function api(app: TestApp, method: string, path: string, key: string, body?: unknown, headers = {}) {
  const res = await fetch(`${app.baseUrl}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

const session = (overrides: Record<string, unknown> = {}) => ({
  amount: 2500,
  currency: "eur",
  customerEmail: "buyer@example.com",
  ...overrides,
});

Deno.test("[checkout] a publishable key reads the config and mounts a session; every other API route refuses it", async () => {
  const app = await startTestApp();
  try {
    const { apiKey: pk, record } = await createShopKey(app.kv, app.shop.id, { now: Date.now(), kind: "publishable" });
    assert.match(pk, /^apay_pk_/);
    assert.equal(record.kind, "publishable");

    const config = await api(app, "GET", "/checkout/config", pk);
    assert.equal(config.status, 200);
    assert.equal(config.body.provider, "bansky");
    assert.equal(config.body.providerName, "Bansky");
    assert.equal(config.body.publishableKey, pk);
    assert.ok(config.body.supportedCurrencies.includes("EUR"));
    CheckoutConfigResponse.strict().parse(config.body);
    // With the secret key the config names the shop's newest live publishable key.
    assert.equal((await api(app, "GET", "/checkout/config", app.shop.apiKey)).body.publishableKey, pk);

    const created = await api(app, "POST", "/checkout/sessions", app.shop.apiKey, session());
    assert.equal(created.status, 201);
    const mounted = await api(app, "POST", "/checkout/sessions/mount", pk, { clientSecret: created.body.clientSecret });
    assert.equal(mounted.status, 200);
    assert.equal(mounted.body.session.id, created.body.sessionId);
    assert.equal(mounted.body.session.status, "open");
    CheckoutMountResponse.strict().parse(mounted.body);
    const wrong = await api(app, "POST", "/checkout/sessions/mount", pk, {
      clientSecret: created.body.clientSecret.slice(0, -2) + "xx",
    });
    assert.equal(wrong.status, 404);

    // Every route of the shop API, as the router lists it (so a route added later is covered too).
    const routes = apiV1Routes(app.server.ctx).routes
      .filter((r) => r.method !== "ALL")
      .map((r) => ({ method: r.method, path: r.path.replace(/:[a-z]+/gi, "pay_AAAAAAAAAAAAAAAAAAAAAA") }));
    assert.ok(routes.length >= 10, `only ${routes.length} routes found`);
    for (const { method, path } of routes) {
      if (PUBLISHABLE_KEY_ROUTES.has(`${method} ${path}`)) continue;
      const res = await api(app, method, path, pk, method === "GET" ? undefined : {});
      assert.equal(res.status, 403, `${method} ${path}`);
      assert.equal(res.body.error.code, "publishable_key_not_allowed", `${method} ${path}`);
    }
    // The admin API does not know publishable keys at all.
    assert.equal((await api(app, "GET", "/../admin/v1/shops", pk)).status, 401);

    // Revoked like any key.
    await revokeShopKey(app.kv, { shopId: app.shop.id, keyId: record.id }, { now: Date.now() });
    assert.equal((await api(app, "GET", "/checkout/config", pk)).status, 401);
    assert.equal((await api(app, "GET", "/checkout/config", app.shop.apiKey)).body.publishableKey, null);
  } finally {
    await app.close();
  }
});

Deno.test("[checkout] the browser routes answer other origins (CORS, preflights before any key); no other route does", async () => {
  const app = await startTestApp();
  try {
    const preflight = async (method: string, path: string) => {
      const res = await fetch(`${app.baseUrl}/api/v1${path}`, {
        method: "OPTIONS",
        headers: {
          origin: "https://www.shop.example",
          "access-control-request-method": method,
          "access-control-request-headers": "authorization, content-type",
        },
      });
      await res.body?.cancel();
      return res;
    };
    for (const route of PUBLISHABLE_KEY_ROUTES) {
      const [method, path] = route.split(" ");
      const res = await preflight(method, path);
      assert.equal(res.status, 204, route);
      assert.equal(res.headers.get("access-control-allow-origin"), "*", route);
      assert.equal(res.headers.get("access-control-allow-methods"), method, route);
      assert.match(res.headers.get("access-control-allow-headers")!, /authorization/, route);
    }
    // Every other route, as the router lists it, stays closed to other origins.
    const routes = apiV1Routes(app.server.ctx).routes
      .filter((r) => r.method !== "ALL")
      .map((r) => ({ method: r.method, path: r.path.replace(/:[a-z]+/gi, "pay_AAAAAAAAAAAAAAAAAAAAAA") }));
    for (const { method, path } of routes) {
      if (PUBLISHABLE_KEY_ROUTES.has(`${method} ${path}`)) continue;
      const res = await preflight(method, path);
      assert.notEqual(res.status, 204, `${method} ${path}`);
      assert.equal(res.headers.get("access-control-allow-origin"), null, `${method} ${path}`);
      const call = await api(app, method, path, app.shop.apiKey, method === "GET" ? undefined : {});
      assert.equal(call.headers.get("access-control-allow-origin"), null, `${method} ${path}`);
    }

    // The answers themselves, refusals included, are readable by the page.
    const { apiKey: pk } = await createShopKey(app.kv, app.shop.id, { now: Date.now(), kind: "publishable" });
    const config = await api(app, "GET", "/checkout/config", pk, undefined, { origin: "https://www.shop.example" });
    assert.equal(config.status, 200);
    assert.equal(config.headers.get("access-control-allow-origin"), "*");
    assert.match(config.headers.get("access-control-expose-headers")!, /retry-after/);
    const refused = await api(app, "GET", "/checkout/config", "apay_pk_wrong", undefined, {
      origin: "https://x.example",
    });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get("access-control-allow-origin"), "*");
    // The body limit's refusal too, though it comes before any route.
    const tooLarge = await fetch(`${app.baseUrl}/api/v1/checkout/sessions/mount`, {
      method: "POST",
      headers: { authorization: `Bearer ${pk}`, "content-type": "application/json", origin: "https://x.example" },
      body: JSON.stringify({ clientSecret: "x".repeat(20_000) }),
    });
    await tooLarge.body?.cancel();
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.headers.get("access-control-allow-origin"), "*");
  } finally {
    await app.close();
  }
});

Deno.test("[checkout] sessions: created with a payment, line items add up, bad input changes nothing, idempotent", async (t) => {
  const app = await startTestApp();
  const receiver = startShopReceiver();
  try {
    const key = app.shop.apiKey;
    await t.step("line items add up to the amount, in integer minor units", async () => {
      const lineItems = [{ name: "Umbrella", unitAmount: 1999, quantity: 2 }, {
        name: "Tote",
        unitAmount: 2,
        quantity: 3,
      }];
      const res = await api(app, "POST", "/checkout/sessions", key, {
        lineItems,
        currency: "EUR",
        customerEmail: "b@example.com",
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.amount, 4004);
      CheckoutSessionCreatedResponse.strict().parse(res.body);
      assert.equal(res.body.currency, "EUR");
      assert.match(res.body.sessionId, /^cs_[A-Za-z0-9_-]{22}$/);
      assert.ok(res.body.clientSecret.startsWith(`${res.body.sessionId}_secret_`));
      assert.ok(Date.parse(res.body.expiresAt) > Date.now());
      // Stored only as a hash.
      for await (const e of app.kv.list({ prefix: [] })) {
        const text = JSON.stringify(e.value, (_, v) => typeof v === "bigint" ? String(v) : v) ?? "";
        assert.ok(!text.includes(res.body.clientSecret), `secret stored under ${e.key}`);
      }
      const both = await api(app, "POST", "/checkout/sessions", key, {
        amount: 4004,
        lineItems,
        currency: "EUR",
        customerEmail: "b@example.com",
      });
      assert.equal(both.status, 201);
    });

    await t.step("bad input is a 400 naming the field and stores nothing", async () => {
      const before = (await Array.fromAsync(app.kv.list({ prefix: ["checkout_sessions"] }))).length;
      const cases: [unknown, string][] = [
        [session({ amount: undefined }), "amount"],
        [session({ amount: 100, lineItems: [{ name: "A", unitAmount: 30, quantity: 3 }] }), "amount"],
        [session({ amount: undefined, lineItems: [] }), "lineItems"],
        [
          session({ amount: undefined, lineItems: [{ name: "A", unitAmount: 1.5, quantity: 1 }] }),
          "lineItems.0.unitAmount",
        ],
        [
          session({ amount: undefined, lineItems: [{ name: "A", unitAmount: 10, quantity: 0 }] }),
          "lineItems.0.quantity",
        ],
        [session({ amount: undefined, lineItems: [{ name: "A", unitAmount: 60_000_000, quantity: 2 }] }), "lineItems"],
        [session({ currency: "XYZ" }), "currency"],
        [session({ customerEmail: "nope" }), "customerEmail"],
        [session({ tip: 1 }), "tip"],
        [session({ amount: 0 }), "amount"],
        [session({ id: "order-1" }), "postbackUrl"],
      ];
      for (const [body, field] of cases) {
        const res = await api(app, "POST", "/checkout/sessions", key, body);
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.body.error.code, "invalid_request");
        assert.ok(res.body.error.fields?.[field], `${field} in ${JSON.stringify(res.body.error.fields)}`);
      }
      // Every problem at once: the rules between fields are judged also when another field failed.
      const several: [unknown, string[]][] = [
        [session({ amount: undefined, currency: 978 }), ["amount", "currency"]],
        [
          session({ amount: 100, lineItems: [{ name: "A", unitAmount: 30, quantity: 3 }], customerEmail: "nope" }),
          ["amount", "customerEmail"],
        ],
      ];
      for (const [body, fields] of several) {
        const res = await api(app, "POST", "/checkout/sessions", key, body);
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.deepEqual(Object.keys(res.body.error.fields).sort(), fields, JSON.stringify(res.body.error.fields));
      }
      const after = (await Array.fromAsync(app.kv.list({ prefix: ["checkout_sessions"] }))).length;
      assert.equal(after, before);
    });

    await t.step("a retry with the same id gets the same session and secret; other details are refused", async () => {
      const body = session({ id: "order-7", postbackUrl: receiver.url });
      const first = await api(app, "POST", "/checkout/sessions", key, body);
      assert.equal(first.status, 201);
      const again = await api(app, "POST", "/checkout/sessions", key, body);
      assert.equal(again.status, 200);
      assert.equal(again.body.sessionId, first.body.sessionId);
      assert.equal(again.body.clientSecret, first.body.clientSecret);
      const other = await api(app, "POST", "/checkout/sessions", key, { ...body, amount: 2600 });
      assert.equal(other.status, 422);
      assert.equal(other.body.error.code, "idempotency_mismatch");
      assert.equal(other.body.error.message, "This id was already used for a checkout session with different details.");
      // The id of a redirect payment is not a session's.
      const init = await api(app, "POST", "/init-payment", key, {
        id: "order-8",
        email: "b@example.com",
        amount: 100,
        currency: "EUR",
        successUrl: "http://127.0.0.1:9/s",
        errorUrl: "http://127.0.0.1:9/e",
        postbackUrl: receiver.url,
      });
      assert.equal(init.status, 201);
      const clash = await api(
        app,
        "POST",
        "/checkout/sessions",
        key,
        session({ id: "order-8", postbackUrl: receiver.url }),
      );
      assert.equal(clash.status, 422);
      const keyed = await api(app, "POST", "/checkout/sessions", key, session(), { "idempotency-key": "k-1" });
      const keyedAgain = await api(app, "POST", "/checkout/sessions", key, session(), { "idempotency-key": "k-1" });
      assert.equal(keyed.status, 201);
      assert.equal(keyedAgain.status, 200);
      assert.equal(keyedAgain.body.sessionId, keyed.body.sessionId);
      const keyReused = await api(app, "POST", "/checkout/sessions", key, session({ amount: 2600 }), {
        "idempotency-key": "k-1",
      });
      assert.equal(keyReused.status, 422);
      assert.equal(
        keyReused.body.error.message,
        "This Idempotency-Key was already used for a checkout session with different details.",
      );
    });

    await t.step("the client secret opens nothing but its checkout page", async () => {
      const res = await api(app, "POST", "/checkout/sessions", key, session());
      const secret = res.body.clientSecret;
      assert.equal((await api(app, "GET", "/checkout/config", secret)).status, 401);
      assert.equal(
        (await api(app, "POST", "/checkout/confirm", secret, { sessionId: res.body.sessionId })).status,
        401,
      );
      const page = await fetch(`${app.baseUrl}/checkout/frame?secret=${encodeURIComponent(secret)}`);
      assert.equal(page.status, 200);
      await page.body?.cancel();
      const forged = await fetch(
        `${app.baseUrl}/checkout/frame?secret=${encodeURIComponent(secret.slice(0, -3) + "abc")}`,
      );
      assert.equal(forged.status, 404);
      await forged.body?.cancel();
      const bySessionId = await fetch(`${app.baseUrl}/checkout/frame?secret=${res.body.sessionId}`);
      assert.equal(bySessionId.status, 404);
      await bySessionId.body?.cancel();
    });
  } finally {
    await receiver.close();
    await app.close();
  }
});

Deno.test("[checkout] confirm asks the provider, not the browser; the postback arrives signed; other shops see nothing", async () => {
  // Webhooks are lost: only confirm's question to the provider can find out the buyer paid.
  const app = await startTestApp({ knobs: { dropWebhooks: true } });
  const receiver = startShopReceiver();
  try {
    const key = app.shop.apiKey;
    const created = await api(
      app,
      "POST",
      "/checkout/sessions",
      key,
      session({ id: "order-1", postbackUrl: receiver.url }),
    );
    assert.equal(created.status, 201);
    const sessionId = created.body.sessionId;
    const open = await api(app, "POST", "/checkout/confirm", key, { sessionId });
    assert.equal(open.status, 200);
    assert.equal(open.body.session.status, "open");
    assert.equal(open.body.session.paymentStatus, "pending");
    assert.equal(open.body.session.amount, 2500);

    // The buyer pays at the provider; its redirect back to us does not change the payment.
    const payment = (await getPayment(app.kv, open.body.session.paymentId))!;
    const paid = await fetch(`${payment.providerUrl}/paid`, { method: "POST", redirect: "manual" });
    await paid.body?.cancel();
    assert.equal(paid.status, 303);
    assert.equal(paid.headers.get("location"), `${app.baseUrl}/integration/success?id=${payment.id}`);
    assert.equal((await getPayment(app.kv, payment.id))!.status, "pending");

    const confirmed = await api(app, "POST", "/checkout/confirm", key, { sessionId });
    assert.equal(confirmed.status, 200);
    assert.equal(confirmed.body.session.status, "complete");
    assert.equal(confirmed.body.session.paymentStatus, "succeeded");
    CheckoutConfirmResponse.strict().parse(confirmed.body);
    assert.deepEqual(Object.keys(confirmed.body.session).sort(), Object.keys(CheckoutSessionView.shape).sort());

    const postback = await waitFor("the postback", () => receiver.received[0]);
    assert.ok(verifyWebhook(app.shop.webhookSecret, postback.headers, postback.body, Math.floor(Date.now() / 1000)));
    const data = JSON.parse(postback.body).data;
    assert.equal(data.checkoutSessionId, sessionId);
    assert.equal(data.status, "succeeded");
    assert.equal(data.id, "order-1");

    // The console shows which checkout session the payment belongs to.
    const ops = await operatorBrowser(app);
    assert.match(
      (await ops.get(`/admin/payments/${payment.id}`)).text,
      new RegExp(`Embedded checkout</dt><dd>${sessionId}`),
    );

    // Another shop's key finds no such session; nor does a made-up id.
    const other = await createShop(app.kv, { name: "Other" }, { allowLocalUrls: true, now: Date.now() });
    assert.equal((await api(app, "POST", "/checkout/confirm", other.apiKey, { sessionId })).status, 404);
    assert.equal((await api(app, "POST", "/checkout/confirm", key, { sessionId: "cs_nope" })).status, 404);
    assert.equal((await api(app, "POST", "/checkout/confirm", key, {})).status, 404);
  } finally {
    await receiver.close();
    await app.close();
  }
});

Deno.test("[checkout] past expiresAt confirm says open until the payment really expired: a buyer still on the provider's page can pay, and the payment succeeds, not late; the buyer's page starts no new payment", async () => {
  const app = await startTestApp();
  const shop = startShopReceiver();
  try {
    const key = app.shop.apiKey;
    const create = async (id: string) => {
      const created = await api(
        app,
        "POST",
        "/checkout/sessions",
        key,
        session({ id, postbackUrl: shop.url, expiresIn: 60 }),
      );
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body as { sessionId: string; clientSecret: string };
    };
    const confirm = async (sessionId: string) =>
      (await api(app, "POST", "/checkout/confirm", key, { sessionId })).body.session;
    const frame = async (clientSecret: string) => {
      const html = await (await fetch(`${app.baseUrl}/checkout/frame?secret=${clientSecret}`)).text();
      return { state: html.match(/data-state="(\w+)"/)?.[1], payLink: html.includes("data-pay=") };
    };
    const paying = await create("order-late-confirm");
    const idle = await create("order-never-paid");
    // The buyer of the first goes on to the provider's page through our pay link, before the expiry.
    const paymentId = (await confirm(paying.sessionId)).paymentId;
    const toProvider = await fetch(`${app.baseUrl}/integration/pay?id=${paymentId}`, { redirect: "manual" });
    await toProvider.body?.cancel();
    assert.equal(toProvider.status, 302);

    // expiresAt has passed; the janitor's expiry has not run yet (it runs on the next sweep).
    app.server.ctx.now = () => Date.now() + 61_000;
    const said = await confirm(paying.sessionId);
    assert.deepEqual([said.status, said.paymentStatus], ["open", "pending"], "not expired while the buyer can pay");
    // The buyer's page waits for the provider's word without offering to start a payment; the other buyer, who never
    // went to the provider, can pay nothing any more: their page says expired.
    assert.deepEqual(await frame(paying.clientSecret), { state: "waiting", payLink: false });
    assert.deepEqual(await frame(idle.clientSecret), { state: "expired", payLink: false });

    // The buyer, still on the provider's page, pays.
    const payment = (await getPayment(app.kv, paymentId))!;
    const paid = await fetch(`${payment.providerUrl}/paid`, { method: "POST", redirect: "manual" });
    await paid.body?.cancel();
    const settled = await waitFor("succeeded", async () => {
      const p = await getPayment(app.kv, payment.id);
      return p?.status === "succeeded" ? p : undefined;
    });
    const told = await waitFor("a postback", () => shop.received.length ? shop.received : undefined);
    assert.deepEqual(
      {
        confirmSaid: said.status,
        late: settled.late ?? false,
        postbacks: told.map((r) => JSON.parse(r.body).type),
        now: (await confirm(paying.sessionId)).status,
      },
      { confirmSaid: "open", late: false, postbacks: ["payment.succeeded"], now: "complete" },
    );

    // The other session is expired once the janitor's expiry has stopped its payment at the provider.
    assert.equal((await confirm(idle.sessionId)).status, "open");
    await app.server.runner.sweep();
    await app.server.runner.idle();
    const expired = await confirm(idle.sessionId);
    assert.deepEqual([expired.status, expired.paymentStatus], ["expired", "expired"]);
    assert.equal(app.sandbox.calls.cancel, 1, "the provider was told to stop first");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[checkout] only the shop's embedding sites may frame its checkout pages; the rest of the app refuses", async () => {
  const app = await startTestApp();
  try {
    const created = await api(app, "POST", "/checkout/sessions", app.shop.apiKey, session());
    const frameUrl = `${app.baseUrl}/checkout/frame?secret=${encodeURIComponent(created.body.clientSecret)}`;
    const closed = await fetch(frameUrl);
    await closed.body?.cancel();
    assert.match(closed.headers.get("content-security-policy")!, /frame-ancestors 'none'/);

    await setEmbedOrigins(app.kv, app.shop.id, ["http://127.0.0.1:4000", "https://shop.example"], {
      actor: "test",
      now: Date.now(),
      allowLocalUrls: true,
    });
    for (const url of [frameUrl, `${app.baseUrl}/checkout/return/${created.body.sessionId}`]) {
      const res = await fetch(url);
      const html = await res.text();
      assert.equal(res.status, 200, url);
      assert.match(
        res.headers.get("content-security-policy")!,
        /frame-ancestors http:\/\/127\.0\.0\.1:4000 https:\/\/shop\.example(;|$)/,
      );
      assert.equal(res.headers.get("x-frame-options"), null);
      assert.equal(res.headers.get("cross-origin-opener-policy"), "unsafe-none");
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.match(
        html,
        /data-origins="\[&quot;http:\/\/127\.0\.0\.1:4000&quot;,&quot;https:\/\/shop\.example&quot;\]"/,
      );
    }
    // A closed payment's pay wrapper sends the frame to our checkout page (which says so), not to a page it may not frame.
    const confirm = await api(app, "POST", "/checkout/confirm", app.shop.apiKey, { sessionId: created.body.sessionId });
    const cancelled = await api(app, "POST", `/payments/${confirm.body.session.paymentId}/cancel`, app.shop.apiKey);
    assert.equal(cancelled.status, 200);
    const wrapper = await fetch(`${app.baseUrl}/integration/pay?id=${confirm.body.session.paymentId}`, {
      redirect: "manual",
    });
    await wrapper.body?.cancel();
    assert.equal(wrapper.status, 302);
    const back = new URL(wrapper.headers.get("location")!);
    assert.equal(back.pathname, `/checkout/return/${created.body.sessionId}`);
    const closedPage = await fetch(back);
    assert.match(await closedPage.text(), /This checkout has expired/);
    assert.match(closedPage.headers.get("content-security-policy")!, /frame-ancestors http:\/\/127\.0\.0\.1:4000/);

    for (const path of ["/demo", "/docs", "/admin/login", "/checkout/frame?secret=nope"]) {
      const res = await fetch(app.baseUrl + path);
      await res.body?.cancel();
      const csp = res.headers.get("content-security-policy");
      if (csp) assert.match(csp, /frame-ancestors 'none'/, path);
    }

    // The embed script: short cache at its plain URL, a year at its versioned one, loadable from other sites.
    const plain = await fetch(`${app.baseUrl}/checkout.js`);
    const body = await plain.text();
    assert.equal(plain.status, 200);
    assert.match(plain.headers.get("content-type")!, /javascript/);
    assert.equal(plain.headers.get("cache-control"), "public, max-age=300");
    assert.equal(plain.headers.get("cross-origin-resource-policy"), "cross-origin");
    const { checkoutScriptPath } = await import("../routes/checkout/script.ts");
    const versioned = await fetch(app.baseUrl + checkoutScriptPath());
    assert.equal(await versioned.text(), body);
    assert.match(versioned.headers.get("cache-control")!, /immutable/);
    const stale = await fetch(`${app.baseUrl}/checkout.000000000000.js`);
    await stale.body?.cancel();
    assert.equal(stale.status, 404);
    const gzipped = await new Response(new Blob([body]).stream().pipeThrough(new CompressionStream("gzip"))).bytes();
    assert.ok(gzipped.length < 10 * 1024, `checkout.js is ${gzipped.length} bytes gzipped`);
  } finally {
    await app.close();
  }
});

Deno.test("[checkout] a frame asked for by a site the shop did not list, or for a session we do not know, tells that page only why (checkout.js's error event)", async () => {
  const app = await startTestApp();
  try {
    const created = await api(
      app,
      "POST",
      "/checkout/sessions",
      app.shop.apiKey,
      session({ description: "Blue umbrella" }),
    );
    const secret = created.body.clientSecret;
    await setEmbedOrigins(app.kv, app.shop.id, ["https://shop.example"], {
      actor: "test",
      now: Date.now(),
      allowLocalUrls: true,
    });
    const frame = async (secret: string, origin?: string) => {
      const query = `secret=${encodeURIComponent(secret)}${
        origin === undefined ? "" : `&origin=${encodeURIComponent(origin)}`
      }`;
      const res = await fetch(`${app.baseUrl}/checkout/frame?${query}`);
      return { status: res.status, html: await res.text(), csp: res.headers.get("content-security-policy")! };
    };

    const listed = await frame(secret, "https://shop.example");
    assert.equal(listed.status, 200);
    assert.match(listed.html, /Blue umbrella/);
    assert.match(listed.csp, /frame-ancestors https:\/\/shop\.example(;|$)/);

    const staging = await frame(secret, "https://staging.shop.example");
    assert.equal(staging.status, 403);
    assert.match(staging.html, /data-checkout-error="origin_not_allowed"/);
    assert.match(staging.html, /data-origin="https:\/\/staging\.shop\.example"/);
    // Framable by that page alone, so it can hear why; nothing of the session, the shop or its list is in it.
    assert.match(staging.csp, /frame-ancestors https:\/\/staging\.shop\.example(;|$)/);
    for (
      const secretOrDetail of [
        secret,
        created.body.sessionId,
        "Blue umbrella",
        "25.00",
        "Test shop",
        '"https://shop.example"',
        "&quot;https://shop.example",
      ]
    ) {
      assert.ok(!staging.html.includes(secretOrDetail), `the refusal shows ${secretOrDetail}`);
    }

    const unknown = await frame(`cs_${"A".repeat(22)}_secret_${"B".repeat(43)}`, "https://staging.shop.example");
    assert.equal(unknown.status, 404);
    assert.match(unknown.html, /data-checkout-error="session_not_found"/);
    assert.match(unknown.csp, /frame-ancestors https:\/\/staging\.shop\.example(;|$)/);

    // Without a usable origin (an older checkout.js, a sandboxed page's "null", anything but an origin) the answers are
    // as before: the checkout for the listed sites, or a not-found page nobody may frame. A CSP is never written from it.
    // Nor from a host no site has, which the URL parser takes and a CSP would read as a wildcard, another directive
    // (";") or another policy (","), or a quoted keyword.
    const origins = [undefined, "null", "https://x.example; script-src *", "https://x.example/", "javascript:1"];
    origins.push(
      "https://*",
      "https://*.example",
      "https://x.example;sandbox",
      "https://a,b.example",
      "https://'self'",
    );
    for (const origin of origins) {
      const page = await frame(secret, origin);
      assert.equal(page.status, 200, String(origin));
      assert.match(page.csp, /frame-ancestors https:\/\/shop\.example(;|$)/, String(origin));
      const gone = await frame("nope", origin);
      assert.equal(gone.status, 404, String(origin));
      assert.match(gone.csp, /frame-ancestors 'none'/, String(origin));
      assert.doesNotMatch(gone.html, /data-checkout-error/, String(origin));
    }
  } finally {
    await app.close();
  }
});

Deno.test("[checkout] publishable keys are created, listed and revoked from the console and the CLI", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    await b.get(`/admin/shops/${app.shop.id}`);
    const made = await b.post(`/admin/shops/${app.shop.id}/keys`, { kind: "publishable" });
    assert.equal(made.status, 303);
    const page = await b.get(made.location!);
    const pk = page.text.match(/apay_pk_[A-Za-z0-9_-]{32}/)?.[0];
    assert.ok(pk, "the new publishable key is shown");
    assert.match(page.text, /publishable/);
    assert.equal((await api(app, "GET", "/checkout/config", pk)).status, 200);
    const keyId = (await listApiKeys(app.kv, app.shop.id)).find((k) => k.publishableKey === pk)!.id;
    const revoked = await b.post(`/admin/shops/${app.shop.id}/keys/${keyId}/revoke`, { confirm: "yes" });
    assert.equal(revoked.status, 303);
    assert.equal((await api(app, "GET", "/checkout/config", pk)).status, 401);
  } finally {
    await app.close();
  }

  const dir = await Deno.makeTempDir();
  try {
    await addCliOperator(`${dir}/kv.sqlite3`);
    const cli = async (...args: string[]) => (await runShopCli(`${dir}/kv.sqlite3`, ...args)).json;
    const shop = await cli("create", "--name", "Acme");
    const key = await cli("key", "create", shop.shopId, "--publishable");
    assert.equal(key.kind, "publishable");
    assert.match(key.apiKey, /^apay_pk_/);
    const [listed] = await cli("list");
    const pkRow = listed.keys.find((k: { kind: string }) => k.kind === "publishable");
    assert.equal(pkRow.publishableKey, key.apiKey);
    const skRow = listed.keys.find((k: { kind: string }) => k.kind === "secret");
    assert.equal(skRow.publishableKey, undefined);
    assert.ok(!JSON.stringify(listed).includes(shop.apiKey), "no secret key in the listing");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[checkout] a shop on a Stripe account gets Stripe's embedded Checkout: its client secret, its keys in the config, confirm asks Stripe", async () => {
  const app = await startTestApp();
  const fake = new StripeFake("sk_test_platform", { acct_1Org2: { webhookSecret: "whsec_stripe_org2" } });
  const receiver = startShopReceiver();
  try {
    const ctx = app.server.ctx;
    const stripe = await createAccount(ctx, {
      provider: "stripe",
      label: "Stripe org 2",
      orgId: "991011000048",
      credentials: {
        secretKey: "sk_test_platform",
        webhookSecret: "whsec_stripe_org2",
        connectedAccountId: "acct_1Org2",
        publishableKey: "pk_test_platform",
        apiUrl: fake.url,
      },
    }, { actor: "test" });
    fake.accounts.acct_1Org2.webhookUrl = `${app.baseUrl}/api/payment-verify/${stripe.id}`;
    await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const key = app.shop.apiKey;

    const config = await api(app, "GET", "/checkout/config", key);
    assert.equal(config.status, 200);
    CheckoutConfigResponse.strict().parse(config.body);
    assert.equal(config.body.provider, "stripe");
    assert.equal(config.body.providerName, "Stripe");
    assert.equal(config.body.providerPublishableKey, "pk_test_platform");
    assert.equal(config.body.accountId, "acct_1Org2");

    const body = session({
      id: "order-s1",
      amount: undefined,
      lineItems: [{ name: "Umbrella", unitAmount: 1250, quantity: 2 }],
      postbackUrl: receiver.url,
    });
    const created = await api(app, "POST", "/checkout/sessions", key, body);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    CheckoutSessionCreatedResponse.strict().parse(created.body);
    assert.equal(created.body.provider, "stripe");
    const stripeSession = [...fake.sessions.values()][0];
    assert.equal(stripeSession.ui_mode, "embedded");
    assert.equal(stripeSession.redirect_on_completion, "never", "Stripe never sends the buyer away");
    assert.equal(stripeSession.url, null);
    assert.equal(stripeSession.amount_total, 2500);
    assert.equal(stripeSession.account, "acct_1Org2");
    assert.equal(created.body.clientSecret, stripeSession.client_secret, "the client secret is Stripe's");
    assert.match(created.body.clientSecret, /^cs_test_.+_secret_/);

    const again = await api(app, "POST", "/checkout/sessions", key, body);
    assert.equal(again.status, 200);
    assert.equal(again.body.clientSecret, created.body.clientSecret);
    assert.equal(fake.calls["POST /v1/checkout/sessions"], 1);

    const open = await api(app, "POST", "/checkout/confirm", key, { sessionId: created.body.sessionId });
    assert.equal(open.body.session.status, "open");
    // The buyer pays in Stripe.js; Stripe's event is lost, so only confirm's question to Stripe finds out.
    assert.ok(await fake.payEmbedded(stripeSession.id, { sendEvent: false }));
    const done = await api(app, "POST", "/checkout/confirm", key, { sessionId: created.body.sessionId });
    assert.equal(done.body.session.status, "complete");
    assert.equal(done.body.session.paymentStatus, "succeeded");
    const postback = await waitFor("the postback", () => receiver.received[0]);
    assert.ok(verifyWebhook(app.shop.webhookSecret, postback.headers, postback.body, Math.floor(Date.now() / 1000)));
    assert.equal(JSON.parse(postback.body).data.checkoutSessionId, created.body.sessionId);

    // Stripe's secret is not ours: our checkout page does not open with it.
    const page = await fetch(`${app.baseUrl}/checkout/frame?secret=${encodeURIComponent(created.body.clientSecret)}`);
    await page.body?.cancel();
    assert.equal(page.status, 404);
  } finally {
    await receiver.close();
    await fake.close();
    await app.close();
  }
});

Deno.test("[checkout] copies of a session racing in two isolates: the one stored answers, a different one is refused", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { latencyMs: 100 } });
  try {
    const { createCheckoutSession } = await import("../lib/checkout/sessions.ts");
    const { getShop } = await import("../lib/db/shops.ts");
    const { getCheckoutSession } = await import("../lib/db/checkout.ts");
    const shop = (await getShop(app.kv, app.shop.id))!;
    // The same payment (amount, currency, buyer), but not the same session: the line items differ.
    const body = (name: string) => ({
      id: "order-raced",
      lineItems: [{ name, unitAmount: 500, quantity: 1 }],
      currency: "EUR",
      customerEmail: "b@example.com",
      postbackUrl: "http://127.0.0.1:9/pb",
    });
    // A second context on the same store stands for another isolate: no shared in-memory single flight.
    const results = await Promise.allSettled([
      createCheckoutSession(app.server.ctx, shop, body("Umbrella")),
      createCheckoutSession({ ...app.server.ctx }, shop, body("Tote")),
    ]);
    const created = results.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
    const refused = results.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
    assert.equal(
      created.length,
      1,
      `exactly one session answers: ${
        results.map((r) => r.status === "rejected" ? String(r.reason) : "ok").join(", ")
      }`,
    );
    assert.equal(refused.length, 1);
    assert.equal(refused[0].code, "idempotency_mismatch");
    const stored = await getCheckoutSession(app.kv, created[0].session.id);
    assert.deepEqual(created[0].session, stored, "the answer is the session stored");
  } finally {
    await app.close();
  }
});

Deno.test("[checkout] the buyer's pages ask the provider about a payment at most once per interval, however often they are loaded", async () => {
  // Webhooks are lost: only the page's question to the provider can find out the buyer paid.
  const app = await startTestApp({ knobs: { dropWebhooks: true } });
  try {
    const { BUYER_RECHECK_INTERVAL_MS } = await import("../lib/checkout/sessions.ts");
    const created = await api(app, "POST", "/checkout/sessions", app.shop.apiKey, session());
    assert.equal(created.status, 201);
    const returnUrl = `${app.baseUrl}/checkout/return/${created.body.sessionId}`;
    const frameUrl = `${app.baseUrl}/checkout/frame?secret=${encodeURIComponent(created.body.clientSecret)}`;
    const load = async (url: string) => {
      const res = await fetch(url);
      const html = await res.text();
      assert.equal(res.status, 200, url);
      return html;
    };
    const paymentId = (await api(app, "POST", "/checkout/confirm", app.shop.apiKey, {
      sessionId: created.body.sessionId,
    })).body.session.paymentId;
    const payment = (await getPayment(app.kv, paymentId))!;
    // The buyer went to the provider's page (the frame asks the provider only after that).
    const wrapper = await fetch(`${app.baseUrl}/integration/pay?id=${payment.id}`, { redirect: "manual" });
    await wrapper.body?.cancel();
    assert.equal(wrapper.status, 302);

    // Anyone holding the page's address (every buyer has theirs) reloads it in a loop: one provider call, not fifty.
    const before = app.sandbox.calls.status;
    await Promise.all(Array.from({ length: 25 }, () => load(returnUrl)));
    for (let i = 0; i < 25; i++) await load(i % 2 ? returnUrl : frameUrl);
    assert.equal(app.sandbox.calls.status - before, 1, "provider status calls for 50 page loads");

    // The buyer pays; the next page load past the interval asks again and shows it.
    const paid = await fetch(`${payment.providerUrl}/paid`, { method: "POST", redirect: "manual" });
    await paid.body?.cancel();
    assert.match(await load(returnUrl), /Confirming your payment/, "within the interval: the payment as stored");
    app.server.ctx.now = () => Date.now() + BUYER_RECHECK_INTERVAL_MS;
    assert.match(await load(returnUrl), /Payment complete/);
    assert.equal((await getPayment(app.kv, payment.id))!.status, "succeeded");
    // Settled, a page never asks the provider again.
    const settled = app.sandbox.calls.status;
    app.server.ctx.now = () => Date.now() + 10 * BUYER_RECHECK_INTERVAL_MS;
    await load(returnUrl);
    await load(frameUrl);
    assert.equal(app.sandbox.calls.status, settled);
  } finally {
    await app.close();
  }
});

Deno.test("[checkout] sessions name every bad field in one 400, the postback URL's with those the schema refuses; a stored session's retry is still answered from the store", async (t) => {
  const app = await startTestApp();
  const key = app.shop.apiKey;
  try {
    const cases: [string, Record<string, unknown>, Record<string, string>][] = [
      [
        "a bad email and an ftp postback URL",
        { customerEmail: "nope", postbackUrl: "ftp://x" },
        {
          customerEmail: "must be an email address, such as name@example.com",
          postbackUrl: "must be an absolute http or https URL",
        },
      ],
      [
        "a metal and a postback URL with credentials",
        { currency: "XAU", postbackUrl: "http://u:p@127.0.0.1:9/pb" },
        {
          currency: "is a precious metal, unit of account or test code, not a currency buyers pay in",
          postbackUrl: "must not contain credentials",
        },
      ],
      [
        "a fund code and an id without a postback URL",
        { currency: "BOV", id: "order-bov" },
        {
          currency: "is a fund code, not a currency buyers pay in",
          postbackUrl: "is required when id is given and the shop has no default postback URL",
        },
      ],
    ];
    for (const [name, extra, fields] of cases) {
      await t.step(name, async () => {
        const res = await api(app, "POST", "/checkout/sessions", key, session(extra));
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, "invalid_request");
        assert.deepEqual(res.body.error.fields, fields);
      });
    }
    assert.equal((await Array.fromAsync(app.kv.list({ prefix: ["checkout_sessions"] }))).length, 0);

    await t.step("a stored session's retry is answered from the store though the shop's hosts changed", async () => {
      const body = session({ id: "order-kept", postbackUrl: "http://127.0.0.1:9/postbacks" });
      const made = await api(app, "POST", "/checkout/sessions", key, body);
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const { updateShopSettings } = await import("../lib/shops.ts");
      await updateShopSettings(app.kv, app.shop.id, {
        name: "Test shop",
        allowedHosts: ["shop.example"],
        defaultPostbackUrl: null,
      }, { actor: "test", allowLocalUrls: true, now: Date.now(), resolve: () => Promise.resolve(["127.0.0.1"]) });
      const retry = await api(app, "POST", "/checkout/sessions", key, body);
      assert.equal(retry.status, 200, JSON.stringify(retry.body));
      assert.equal(retry.body.sessionId, made.body.sessionId);
      const fresh = await api(app, "POST", "/checkout/sessions", key, { ...body, id: "order-new", amount: 0 });
      assert.equal(fresh.status, 400, JSON.stringify(fresh.body));
      assert.deepEqual(fresh.body.error.fields, {
        amount: "must be more than 0",
        postbackUrl: "host 127.0.0.1 is not in the shop's allowed hosts",
      });
    });
  } finally {
    await app.close();
  }
});
