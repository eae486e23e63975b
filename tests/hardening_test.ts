/**
 * What an attacker, a full disk and odd input found (issue "Hardening"): each
 * test here failed before its fix.
 */
import assert from "node:assert/strict";
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { createPortalLink } from "../lib/auth/portal.ts";
import { loadConfig } from "../lib/config.ts";
import { ConflictError, ValidationError } from "../lib/errors.ts";
import { updateOperatorPassword } from "../lib/db/operators.ts";
import { hashPassword } from "../lib/auth/passwords.ts";
import { describePayment } from "../lib/payments/admin.ts";
import { createShop } from "../lib/shops.ts";
import { createServer } from "../server.ts";
import { Browser, operatorBrowser } from "../fixtures/browser.ts";
import { DnsTimeoutError } from "../lib/relay/url_guard.ts";
import {
  addCliOperator,
  callInit,
  freePort,
  loopbackAppEnv,
  paymentBody,
  runShopCli,
  serveOnLoopback,
  startTestApp,
  type TestApp,
} from "../fixtures/app.ts";

const LONG_ID = "pay_" + "x".repeat(3000);

Deno.test("[hardening] oversized posts to pages are refused with 413 without reading the body", async () => {
  const app = await startTestApp({ env: { DEMO: "1" } });
  try {
    for (const path of ["/admin/login", "/admin/shops", "/portal/signin", "/demo/postback", "/demo/buy"]) {
      // A declared length over the limit: refused from the header alone.
      const declared = await fetch(app.baseUrl + path, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin" },
        body: new Uint8Array(1024 * 1024),
      });
      await declared.body?.cancel();
      assert.equal(declared.status, 413, path);

      // A streamed 100 MB body: cut off soon after the limit, not buffered.
      let sent = 0;
      const chunk = new Uint8Array(64 * 1024);
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 100 * 1024 * 1024) return controller.close();
          sent += chunk.length;
          controller.enqueue(chunk);
        },
      });
      const streamed = await fetch(app.baseUrl + path, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: stream,
      }).catch(() => null); // the server may close the connection while we still send
      if (streamed) {
        await streamed.body?.cancel();
        assert.equal(streamed.status, 413, path);
      }
      assert.ok(sent < 20 * 1024 * 1024, `${path}: the server took ${sent} bytes`);
    }
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] of 50 concurrent wrong passwords for one account at most 5 are checked", async () => {
  const app = await startTestApp();
  try {
    const { password } = await createOperatorAccount(app.server.ctx, "ops@example.com");
    const b = new Browser(app);
    await b.get("/admin/login");
    const statuses = await Promise.all(
      Array.from({ length: 50 }, () => b.post("/admin/login", { email: "ops@example.com", password: "guess" })),
    ).then((all) => all.map((r) => r.status));
    assert.ok(statuses.every((s) => s === 401 || s === 429), String(statuses));
    assert.ok(statuses.filter((s) => s === 401).length <= 5, `${statuses.filter((s) => s === 401).length} got 401`);
    // The account is locked for the window, even for the right password.
    assert.equal((await b.post("/admin/login", { email: "ops@example.com", password })).status, 429);
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] signing in often with the right password never locks the account", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      statuses.push(
        (await b.post("/admin/login", { email: "ops@example.com", password: "correct horse battery" })).status,
      );
    }
    assert.deepEqual(statuses, [303, 303, 303, 303, 303, 303], "signing in often is not a failure");
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] redirect URLs are stored as ASCII; control characters are refused naming the field", async () => {
  const app = await startTestApp();
  try {
    for (
      const [field, url] of [
        ["successUrl", "http://127.0.0.1:9/ok\r\nSet-Cookie: x=1"],
        ["errorUrl", "http://127.0.0.1:9/err\u0000"],
        ["successUrl", "http://127.0.0.1:9/ok\u2028next"],
        ["errorUrl", "http://127.0.0.1:9/err\u0085"],
      ]
    ) {
      const res = await callInit(app, paymentBody({ [field]: url }));
      assert.equal(res.status, 400, JSON.stringify(url));
      assert.equal(res.body.error.code, "invalid_request");
      assert.match(res.body.error.fields[field], /control characters/);
    }
    const init = await callInit(
      app,
      paymentBody({ successUrl: "http://127.0.0.1:9/shop/caf\u00e9 \u2713?q=\u00fc#\u2713" }),
    );
    assert.equal(init.status, 201);
    const back = await fetch(`${app.baseUrl}/integration/success?id=${init.body.id}`, { redirect: "manual" });
    await back.body?.cancel();
    assert.equal(back.status, 302);
    // Our signed parameters join the shop's query string; its own part and the fragment stay as they were.
    assert.match(
      back.headers.get("location")!,
      /^http:\/\/127\.0\.0\.1:9\/shop\/caf%C3%A9%20%E2%9C%93\?q=%C3%BC&apay_payment=pay_[^#]*&apay_sig=v1%2C[^#]+#%E2%9C%93$/,
    );
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] a stored redirect URL that cannot be a Location lands the buyer on our error page", async () => {
  const app = await startTestApp();
  try {
    const init = await callInit(app, paymentBody());
    const { payment } = await describePayment(app.server.ctx, init.body.id);
    // As a payment stored before URLs were normalised could hold it.
    await app.kv.set(["payments", payment.id], { ...payment, successUrl: "https://shop.example/\u2713\r\nx" });
    const res = await fetch(`${app.baseUrl}/integration/success?id=${payment.id}`, { redirect: "manual" });
    assert.equal(res.status, 502);
    assert.match(await res.text(), /cannot send you/);
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] ids far too long for a KV key are simply not found", async () => {
  const app = await startTestApp();
  try {
    const api = await fetch(`${app.baseUrl}/api/v1/payments/${LONG_ID}`, {
      headers: { authorization: `Bearer ${app.shop.apiKey}` },
    });
    assert.equal(api.status, 404);
    assert.equal((await api.json()).error.code, "not_found");
    const b = await operatorBrowser(app);
    assert.equal((await b.get(`/admin/payments/${LONG_ID}`)).status, 404);
    assert.equal((await b.get(`/admin/shops/shop_${"x".repeat(3000)}`)).status, 404);
    await b.get("/admin/deliveries");
    const csrf = b.csrf();
    assert.equal((await b.post(`/admin/payments/${LONG_ID}/recheck`, {}, { csrf })).status, 404);
    assert.equal((await b.post("/admin/deliveries/resend", { paymentId: LONG_ID }, { csrf })).status, 404);

    const link = await createPortalLink(app.server.ctx, app.shop.id, "ops@example.com");
    const portal = new Browser(app);
    await portal.get(link.slice(app.baseUrl.length));
    assert.equal(
      (await portal.post("/portal/signin", { token: new URL(link).searchParams.get("token")! })).status,
      303,
    );
    assert.equal((await portal.get(`/portal/payments/${LONG_ID}`)).status, 404);
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] a one-time password opens only the password page; a change ends other sessions", async () => {
  const app = await startTestApp();
  try {
    const { password } = await createOperatorAccount(app.server.ctx, "new@example.com");
    const signIn = async () => {
      const b = new Browser(app);
      await b.get("/admin/login");
      assert.equal((await b.post("/admin/login", { email: "new@example.com", password })).status, 303);
      return b;
    };
    const laptop = await signIn();
    const phone = await signIn();
    assert.equal((await laptop.get("/admin/shops")).location, "/admin/password");
    await laptop.get("/admin/password");
    const csrf = laptop.csrf();
    const created = await laptop.post("/admin/shops", { name: "Sneaky" }, { csrf });
    assert.equal(created.status, 403);
    assert.match(created.text, /Choose your own password/);

    const changed = await laptop.post("/admin/password", {
      current: password,
      password: "a long new password",
      repeat: "a long new password",
    }, { csrf });
    assert.equal(changed.status, 303);
    assert.equal((await laptop.get("/admin/shops")).status, 200, "the session that changed it goes on");
    const other = await phone.get("/admin/shops");
    assert.equal(other.status, 303, "the other session ended");
    assert.match(other.location!, /^\/admin\/login/);
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] a postback host whose lookup times out: the API answers 503 to retry, a settings form says so", async () => {
  // What the app's resolver throws when the name servers stay silent (url_guard_test.ts runs it against one).
  const app = await startTestApp({ resolve: (host) => Promise.reject(new DnsTimeoutError(host, 5_000)) });
  try {
    const res = await callInit(app, paymentBody({ id: "o-dns-slow", postbackUrl: "https://slow-dns.example/pb" }));
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, "dns_timeout");
    assert.equal(res.headers.get("retry-after"), "5");
    assert.match(res.body.error.message, /slow-dns\.example/);
    assert.equal(res.body.error.fields, undefined, "nothing in the request is wrong");
    assert.equal(app.sandbox.calls.create, 0, "the provider was not asked");
    // A request with another problem is told at once, the lookup's among them, rather than asked to come back.
    const wrong = await callInit(
      app,
      paymentBody({ id: "o-dns-slow", successUrl: "ftp://x", postbackUrl: "https://slow-dns.example/pb" }),
    );
    assert.equal(wrong.status, 400);
    assert.deepEqual(Object.keys(wrong.body.error.fields).sort(), ["postbackUrl", "successUrl"]);
    assert.equal(wrong.body.error.fields.postbackUrl, "host slow-dns.example got no DNS answer within 5 s");

    const b = await operatorBrowser(app);
    await b.get("/admin/shops");
    const form = await b.post("/admin/shops", { name: "Slow DNS", defaultPostbackUrl: "https://slow-dns.example/pb" });
    assert.equal(form.status, 400);
    assert.match(form.text, /got no DNS answer within 5 s; try again/);
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] a shop's default postback URL may not point at internal addresses", async () => {
  const app = await startTestApp({ resolve: () => Promise.resolve(["10.1.2.3"]) });
  try {
    await assert.rejects(
      createShop(app.kv, { name: "Internal", defaultPostbackUrl: "https://192.168.0.10/pb" }, {
        allowLocalUrls: false,
        now: Date.now(),
      }),
      (err: Error) => err instanceof ValidationError && /private/.test(err.fields!.defaultPostbackUrl),
    );
    const b = await operatorBrowser(app);
    await b.get("/admin/shops");
    const res = await b.post("/admin/shops", {
      name: "Resolves inside",
      defaultPostbackUrl: "https://shop.example/pb",
    });
    assert.equal(res.status, 400);
    assert.match(res.text, /resolves to a private address/);
    await b.get("/admin/shops");
    assert.ok(!b.lastHtml.includes("Resolves inside"), "no shop was created");
    const edit = await b.post(`/admin/shops/${app.shop.id}`, {
      name: "Test shop",
      defaultPostbackUrl: "https://169.254.169.254/latest",
    });
    assert.equal(edit.status, 400);
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] console, portal and CSV answers are never cached; HSTS only over https", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    for (const path of ["/admin", "/admin/shops", "/admin/payments.csv", "/internal"]) {
      assert.equal((await b.get(path)).headers.get("cache-control"), "no-store", path);
    }
    assert.equal((await b.get("/admin/login")).headers.get("strict-transport-security"), null, "not over http");
  } finally {
    await app.close();
  }
  const port = freePort();
  const config = loadConfig({ ...loopbackAppEnv(port, ":memory:"), PUBLIC_BASE_URL: "https://pay.example" });
  const kv = await Deno.openKv(":memory:");
  const server = await createServer(config, kv);
  try {
    const page = await server.app.request("https://pay.example/admin/login");
    assert.match(page.headers.get("strict-transport-security")!, /max-age=\d{8}/);
    assert.equal(page.headers.get("cache-control"), "no-store");
  } finally {
    await server.close();
    kv.close();
  }
});

/** KV that can be switched to refuse every write, as a full disk does, while reads go on. */
function kvWithSwitchableWrites(kv: Deno.Kv) {
  const state = { refuseWrites: false };
  const diskFull = () => Promise.reject(new TypeError("database or disk is full"));
  const wrapOp = (op: Deno.AtomicOperation): Deno.AtomicOperation =>
    new Proxy(op, {
      get(target, prop) {
        if (prop === "commit" && state.refuseWrites) return diskFull;
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          const out = value.apply(target, args);
          return out === target ? wrapOp(target) : out;
        };
      },
    });
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (state.refuseWrites && (prop === "set" || prop === "delete")) return diskFull;
      if (prop === "atomic") return () => wrapOp(target.atomic());
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: proxy, state };
}

Deno.test("[hardening] with KV refusing writes the buyer is still redirected and /readyz says 503", async () => {
  const http = serveOnLoopback();
  const port = http.port;
  const config = loadConfig({ ...loopbackAppEnv(port, ":memory:"), PASSWORD_ITERATIONS: "1000" });
  const raw = await Deno.openKv(":memory:");
  const { kv, state } = kvWithSwitchableWrites(raw);
  const server = await createServer(config, kv);
  http.handle((req, info) => server.app.fetch(req, info));
  const app = { baseUrl: `http://127.0.0.1:${port}` } as TestApp;
  try {
    const { apiKey } = await createShop(kv, { name: "Full disk" }, { allowLocalUrls: true, now: Date.now() });
    const init = await callInit(app, paymentBody(), { key: apiKey });
    assert.equal(init.status, 201);
    assert.equal((await fetch(`${app.baseUrl}/readyz`).then((r) => r.json())).status, "ok");

    state.refuseWrites = true;
    const pay = await fetch(init.body.url, { redirect: "manual" });
    await pay.body?.cancel();
    assert.equal(pay.status, 302, "the first visit's timeline entry is not worth the buyer's redirect");
    assert.match(pay.headers.get("location")!, /\/sandbox\/bansky\/pay\//);
    const cached = await fetch(`${app.baseUrl}/readyz`);
    assert.equal(cached.status, 200, "one probe answers for a few seconds");
    await cached.body?.cancel();
    const realNow = server.ctx.now;
    server.ctx.now = () => realNow() + 10_000;
    const ready = await fetch(`${app.baseUrl}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal((await ready.json()).error.code, "kv_unwritable");
    const live = await fetch(`${app.baseUrl}/healthz`);
    await live.body?.cancel();
    assert.equal(live.status, 200, "the process itself is alive");
  } finally {
    state.refuseWrites = false;
    await server.close();
    await http.server.shutdown();
    raw.close();
  }
});

Deno.test("[hardening] a key revoked by the operator CLI in another process fails on the server's next request", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/kv.sqlite3`;
  const app = await startTestApp({ kvPath });
  await addCliOperator(kvPath);
  const cli = async (...args: string[]) => (await runShopCli(kvPath, ...args)).json;
  try {
    const key = await cli("key", "create", app.shop.id);
    assert.equal((await callInit(app, paymentBody(), { key: key.apiKey })).status, 201);
    await cli("key", "revoke", app.shop.id, key.keyId);
    const refused = await callInit(app, paymentBody(), { key: key.apiKey });
    assert.equal(refused.status, 401);
    assert.equal((await callInit(app, paymentBody())).status, 201, "the shop's first key still works");
  } finally {
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[hardening] TRACE and TRACK get 405 on every path, never a 500", async () => {
  const app = await startTestApp();
  try {
    const port = Number(new URL(app.baseUrl).port);
    for (const line of ["TRACE / HTTP/1.1", "TRACE /api/v1/init-payment HTTP/1.1", "TRACK /healthz HTTP/1.1"]) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new TextEncoder().encode(`${line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
      const buf = new Uint8Array(512);
      const n = await conn.read(buf);
      conn.close();
      const statusLine = new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\r\n")[0];
      assert.match(statusLine, /^HTTP\/1\.1 405/, line);
    }
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] a password change made meanwhile is not overwritten by a stale one", async () => {
  const app = await startTestApp();
  try {
    const { operator } = await createOperatorAccount(app.server.ctx, "race@example.com");
    // Both requests checked the current password against this record; the first to commit wins.
    await updateOperatorPassword(app.kv, operator.id, await hashPassword("the victim's new one", 1000), {
      expected: operator,
    });
    await assert.rejects(
      updateOperatorPassword(app.kv, operator.id, await hashPassword("the attacker's", 1000), { expected: operator }),
      (err: Error) => err instanceof ConflictError && /changed meanwhile/.test(err.message),
    );
    const b = new Browser(app);
    await b.get("/admin/login");
    const res = await b.post("/admin/login", { email: "race@example.com", password: "the victim's new one" });
    assert.equal(res.status, 303);
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] a sign-in window that has ended starts afresh even before KV collects its key", async () => {
  const app = await startTestApp();
  try {
    await createOperatorAccount(app.server.ctx, "ops@example.com");
    const b = new Browser(app);
    await b.get("/admin/login");
    for (let i = 0; i < 5; i++) await b.post("/admin/login", { email: "ops@example.com", password: "nope" });
    assert.equal((await b.post("/admin/login", { email: "ops@example.com", password: "nope" })).status, 429);
    const realNow = app.server.ctx.now;
    app.server.ctx.now = () => realNow() + 16 * 60_000; // past the 15-minute window; the key may still be served
    assert.equal((await b.post("/admin/login", { email: "ops@example.com", password: "nope" })).status, 401);
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] the deliveries page refuses a shop id that cannot be one", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    assert.equal((await b.get(`/admin/deliveries?shopId=shop_${"x".repeat(3000)}`)).status, 404);
    assert.equal((await b.get(`/admin/deliveries?shopId=${app.shop.id}`)).status, 200);
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] a store failure on the buyer's redirect shows our apology without an empty request id", async () => {
  const app = await startTestApp();
  try {
    const init = await callInit(app, paymentBody());
    const getMany = app.kv.getMany;
    app.kv.getMany = () => Promise.reject(new Error("the store is gone"));
    const res = await fetch(init.body.url, { redirect: "manual" });
    const html = await res.text();
    app.kv.getMany = getMany;
    assert.equal(res.status, 500);
    assert.match(html, /It is our fault and it has been logged\. Please try again\./);
    assert.ok(!html.includes("undefined"), html);
  } finally {
    await app.close();
  }
});

Deno.test("[hardening] every API answer, a success or an error, is never sniffed or cached and names its request", async () => {
  const app = await startTestApp();
  try {
    const answers = [
      await callInit(app, paymentBody()),
      await callInit(app, paymentBody(), { key: "apay_sk_wrong" }),
      await callInit(app, { amount: -1 }),
      await callInit(app, null, { raw: "{not json" }),
    ];
    const missing = await fetch(`${app.baseUrl}/api/v1/no-such-endpoint`);
    await missing.body?.cancel();
    assert.deepEqual(answers.map((a) => a.status), [201, 401, 400, 400]);
    for (const headers of [...answers.map((a) => a.headers), missing.headers]) {
      assert.equal(headers.get("x-content-type-options"), "nosniff");
      assert.equal(headers.get("cache-control"), "no-store");
      assert.match(headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    }
    // Refused by the body limit, before the API's own middleware runs.
    const tooLarge = await callInit(app, null, { raw: JSON.stringify({ pad: "x".repeat(20_000) }) });
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.headers.get("x-content-type-options"), "nosniff");
    assert.equal(tooLarge.headers.get("cache-control"), "no-store");
    assert.match(tooLarge.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  } finally {
    await app.close();
  }
});
