import assert from "node:assert/strict";
import { createShopKey, revokeShopKey, setShopStatus } from "../lib/shops.ts";
import { callInit, paymentBody, startTestApp, type TestApp } from "../fixtures/app.ts";
import { sha256Hex } from "../lib/crypto.ts";
import { initPaymentSchema, normalizeInit } from "../lib/payments/schema.ts";
import type { Payment } from "../lib/payments/types.ts";
import { checkoutSessionSchema } from "../lib/checkout/schema.ts";
import { checkoutReturnUrl } from "../lib/checkout/sessions.ts";
import type { CheckoutSession } from "../lib/checkout/types.ts";

async function countPayments(app: TestApp): Promise<number> {
  let n = 0;
  for await (const _ of app.kv.list({ prefix: ["payments"] })) n++;
  return n;
}

/** A field's message is ours, never zod's own wording ("Too small: expected number to be >=60"). */
function assertOurWords(message: string) {
  assert.doesNotMatch(message, /Too (small|big)|Invalid (input|option|email)|expected \w+,? (to|received)/);
}

Deno.test("[api] bad input gets a clear 4xx JSON error, stores nothing and the server keeps serving", async (t) => {
  const app = await startTestApp({ allowedHosts: ["127.0.0.1", "shop.example"] });
  try {
    const ok = paymentBody();
    const cases: [string, { body?: unknown; raw?: string; headers?: Record<string, string> }, number, string?][] = [
      ["malformed JSON", { raw: '{"email": "a@b.co",' }, 400],
      ["truncated JSON", { raw: JSON.stringify(ok).slice(0, 30) }, 400],
      ["a JSON array", { raw: "[1,2]" }, 400],
      ["a JSON string", { raw: '"hello"' }, 400],
      ["JSON null", { raw: "null" }, 400],
      ["deep nesting", { raw: '{"name":' + "[".repeat(50) + "]".repeat(50) + "}" }, 400],
      ["a duplicated field", { raw: JSON.stringify(ok).replace("{", '{"amount":1,') }, 400, "amount"],
      ["an unknown field", { body: { ...ok, tip: 5 } }, 400, "tip"],
      ["__proto__", { raw: JSON.stringify(ok).replace("{", '{"__proto__":{"admin":true},') }, 400, "__proto__"],
      ["wrong content type", { raw: JSON.stringify(ok), headers: { "content-type": "text/plain" } }, 415],
      ["no content type", { raw: JSON.stringify(ok), headers: { "content-type": "" } }, 415],
      ["a negative amount", { body: { ...ok, amount: -5 } }, 400, "amount"],
      ["a zero amount", { body: { ...ok, amount: 0 } }, 400, "amount"],
      ["a fractional amount", { body: { ...ok, amount: 10.5 } }, 400, "amount"],
      ["a string amount", { body: { ...ok, amount: "1000" } }, 400, "amount"],
      ["a huge amount", { body: { ...ok, amount: 1e300 } }, 400, "amount"],
      ["an amount over the maximum", { body: { ...ok, amount: 100_000_001 } }, 400, "amount"],
      ["an unknown currency", { body: { ...ok, currency: "ABC" } }, 400, "currency"],
      ["a numeric currency", { body: { ...ok, currency: 978 } }, 400, "currency"],
      ["a missing email", { body: { ...ok, email: undefined } }, 400, "email"],
      ["an invalid email", { body: { ...ok, email: "not-an-email" } }, 400, "email"],
      ["an overlong email", { body: { ...ok, email: "a".repeat(250) + "@b.co" } }, 400, "email"],
      ["a javascript: URL", { body: { ...ok, successUrl: "javascript:alert(1)" } }, 400, "successUrl"],
      ["a data: URL", { body: { ...ok, errorUrl: "data:text/html,x" } }, 400, "errorUrl"],
      ["a file: URL", { body: { ...ok, successUrl: "file:///etc/passwd" } }, 400, "successUrl"],
      ["a protocol-relative URL", { body: { ...ok, successUrl: "//evil.example/x" } }, 400, "successUrl"],
      ["a URL with credentials", { body: { ...ok, successUrl: "http://u:p@127.0.0.1/x" } }, 400, "successUrl"],
      ["a host outside the allow-list", { body: { ...ok, successUrl: "https://evil.example/x" } }, 400, "successUrl"],
      ["a private postback host", { body: { ...ok, postbackUrl: "http://10.0.0.1/pb" } }, 400, "postbackUrl"],
      ["a link-local postback host", { body: { ...ok, postbackUrl: "http://169.254.169.254/" } }, 400, "postbackUrl"],
      [
        "an IPv4-mapped private postback host",
        { body: { ...ok, postbackUrl: "http://[::ffff:a00:1]/" } },
        400,
        "postbackUrl",
      ],
      ["a decimal private postback host", { body: { ...ok, postbackUrl: "http://167772161/" } }, 400, "postbackUrl"],
      ["an id without any postback URL", { body: { ...ok, id: "o-1" } }, 400, "postbackUrl"],
      ["an overlong id", { body: { ...ok, id: "x".repeat(65) } }, 400, "id"],
      [
        "a lone surrogate in the name",
        { raw: JSON.stringify({ ...ok, name: "ab" }).replace("ab", "a\\ud800b") },
        400,
        "name",
      ],
      ["a control character in the name", { body: { ...ok, name: "a\u0007b" } }, 400, "name"],
      ["a control character in the id", { body: { ...ok, id: "o\n1" } }, 400, "id"],
      ["a direction override in the id", { body: { ...ok, id: "order-\u202E1fdp" } }, 400, "id"],
      ["a C1 control in the name", { body: { ...ok, name: "a\u0085b" } }, 400, "name"],
      ["both successUrl spellings", { body: { ...ok, sussessUrl: ok.successUrl } }, 400, "sussessUrl"],
      ["no success URL", { body: { ...ok, successUrl: undefined } }, 400, "successUrl"],
      ["an unknown type", { body: { ...ok, type: "barter" } }, 400, "type"],
      ["a body over 16 KiB", { body: { ...ok, name: "x".repeat(17 * 1024) } }, 413],
    ];
    for (const [name, init, status, field] of cases) {
      await t.step(name, async () => {
        const res = await callInit(app, init.body, { raw: init.raw, headers: init.headers });
        assert.equal(res.status, status, JSON.stringify(res.body));
        assert.equal(res.body.status, "error");
        assert.equal(typeof res.body.error.code, "string");
        assert.equal(typeof res.body.error.message, "string");
        if (field) {
          assert.ok(
            Object.hasOwn(res.body.error.fields ?? {}, field),
            `expected ${field}: ${JSON.stringify(res.body)}`,
          );
        }
        for (const message of Object.values<string>(res.body.error.fields ?? {})) assertOurWords(message);
      });
    }
    await t.step("every bad field at once: a missing success URL is named beside the others", async () => {
      const res = await callInit(app, { ...ok, successUrl: undefined, email: "nope", amount: "10" });
      assert.equal(res.status, 400);
      assert.deepEqual(Object.keys(res.body.error.fields).sort(), ["amount", "email", "successUrl"]);
      assert.equal(res.body.error.fields.successUrl, "is required");
    });
    await t.step("each message says what the field must be, in the product's words", async () => {
      const says: [Record<string, unknown>, string, string][] = [
        [{ expiresIn: 30 }, "expiresIn", "must be at least 60 seconds"],
        [{ expiresIn: 2_592_001 }, "expiresIn", "must be at most 2592000 seconds (30 days)"],
        [{ expiresIn: 90.5 }, "expiresIn", "must be a whole number of seconds"],
        [{ expiresIn: "600" }, "expiresIn", "must be a number (a JSON number of seconds, such as 3600), not a string"],
        [{ amount: 100_000_001 }, "amount", "must be at most 100000000 minor units"],
        [{ amount: 0 }, "amount", "must be more than 0"],
        // A number in quotes is told it must be a number, not that it is not whole.
        [
          { amount: "1000" },
          "amount",
          "must be a number (a JSON number of the currency's minor units, such as 1000), not a string",
        ],
        [
          { amount: 10.5 },
          "amount",
          "must be a whole number of the currency's minor unit (1000 with EUR is 10.00 EUR)",
        ],
        [{ email: "not-an-email" }, "email", "must be an email address, such as name@example.com"],
        [{ email: undefined }, "email", "is required"],
        [{ type: "barter" }, "type", 'must be one of "fiat", "crypto"'],
        [{ id: "x".repeat(65) }, "id", "must be at most 64 characters long"],
        [{ name: "" }, "name", "must not be empty"],
        [{ currency: 978 }, "currency", "must be a string"],
        [{ errorUrl: null }, "errorUrl", "must be a string, not null"],
      ];
      for (const [change, field, message] of says) {
        const res = await callInit(app, { ...ok, ...change });
        assert.equal(res.status, 400, JSON.stringify(change));
        assert.equal(res.body.error.fields[field], message, JSON.stringify(change));
      }
    });
    assert.equal(await countPayments(app), 0, "nothing was stored");
    assert.equal(app.sandbox.calls.create, 0, "the provider was never called");
    const good = await callInit(app, ok);
    assert.equal(good.status, 201, "the server still serves");
  } finally {
    await app.close();
  }
});

Deno.test("[api] a body of junk keys is answered with twenty of them, each name cut to 64 characters, and a count of the rest", async () => {
  const app = await startTestApp();
  try {
    // Just under the 16 KiB body limit: a valid payment and some 700 unknown keys, two of them very long.
    const junk: Record<string, number> = { ["x".repeat(2000)]: 1, [`😀${"y".repeat(100)}`]: 1 };
    for (let i = 0; JSON.stringify({ ...paymentBody(), ...junk }).length < 15_500; i++) junk[`junk_${i}_pad`] = 1;
    const sent = Object.keys(junk).length;
    const raw = JSON.stringify({ ...paymentBody(), ...junk });
    assert.ok(raw.length > 15_000 && raw.length <= 16 * 1024, `${raw.length} bytes`);
    const res = await callInit(app, undefined, { raw });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, "invalid_request");
    const fields: Record<string, string> = res.body.error.fields;
    const named = Object.keys(fields).filter((k) => fields[k] === "unknown field");
    assert.equal(named.length, 20);
    assert.ok(named.every((k) => Array.from(k).length <= 64), "no name longer than 64 characters");
    assert.ok(named.includes(`${"x".repeat(63)}…`), "a long name is cut, with an ellipsis");
    assert.ok(named.includes(`😀${"y".repeat(62)}…`), "cut between characters, never inside one");
    assert.equal(fields.body, `has ${sent - 20} more unknown fields besides those named`);
    assert.ok(JSON.stringify(res.body).length < 2048, `answered in ${JSON.stringify(res.body).length} bytes`);
    assert.equal(await countPayments(app), 0, "nothing was stored");
  } finally {
    await app.close();
  }
});

Deno.test("[api] keys: missing, unknown and revoked keys get 401, even for a retry or a broken body; Token and Bearer both work", async () => {
  const app = await startTestApp();
  try {
    assert.equal((await callInit(app, paymentBody(), { key: "" })).status, 401);
    assert.equal((await callInit(app, paymentBody(), { key: "apay_sk_" + "A".repeat(32) })).status, 401);
    // init-payment reads the key and the payment a retry names in one trip: the key is still judged first.
    assert.equal((await callInit(app, null, { key: "", raw: "{broken" })).status, 401);
    assert.equal((await callInit(app, null, { raw: "{broken" })).status, 400);
    const viaToken = await fetch(`${app.baseUrl}/api/v1/init-payment`, {
      method: "POST",
      headers: { authorization: `Token ${app.shop.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify(paymentBody()),
    });
    assert.equal(viaToken.status, 201);
    await viaToken.body?.cancel();

    const second = await createShopKey(app.kv, app.shop.id, { now: Date.now() });
    const retry = { key: second.apiKey, headers: { "idempotency-key": "order-with-second-key" } };
    assert.equal((await callInit(app, paymentBody(), retry)).status, 201);
    assert.equal((await callInit(app, paymentBody(), retry)).status, 200, "a retry, answered from the read-ahead");
    await revokeShopKey(app.kv, { shopId: app.shop.id, keyId: second.record.id }, { now: Date.now() });
    const revoked = await callInit(app, paymentBody(), { key: second.apiKey });
    assert.equal(revoked.status, 401);
    assert.equal(revoked.body.error.code, "unauthorized");
    assert.equal((await callInit(app, paymentBody(), retry)).status, 401, "a retry of its payment with a revoked key");
    assert.equal((await callInit(app, paymentBody())).status, 201, "the shop's other key still works");
  } finally {
    await app.close();
  }
});

Deno.test("[api] init-payment reads its name in the same read as the key: a new payment reads nothing more, a retry its payment", async () => {
  const app = await startTestApp();
  try {
    const getMany = app.kv.getMany.bind(app.kv);
    const batches: string[][] = [];
    app.kv.getMany = ((keys: Deno.KvKey[], options?: { consistency?: Deno.KvConsistencyLevel }) => {
      batches.push(keys.map((k) => String(k[0])));
      return getMany(keys, options);
    }) as Deno.Kv["getMany"];
    const paymentReads = () => batches.splice(0).filter((b) => b.some((k) => k.startsWith("payment")));
    // The isolate learns which shop the key is for on its first use (api_keys.ts), and reads both together from then.
    assert.equal((await callInit(app, paymentBody())).status, 201);
    paymentReads();
    const retry = { headers: { "idempotency-key": "read-once" } };
    assert.equal((await callInit(app, paymentBody(), retry)).status, 201);
    assert.deepEqual(paymentReads(), [["api_keys", "shops", "payment_names"]]);
    assert.equal((await callInit(app, paymentBody(), retry)).status, 200);
    assert.deepEqual(paymentReads(), [["api_keys", "shops", "payment_names"], ["payments"]]);
  } finally {
    await app.close();
  }
});

Deno.test("[api] init-payment refuses an id or Idempotency-Key too long for a name with 400 (a revoked key with 401), not a 500 from reading it ahead", async () => {
  const app = await startTestApp();
  try {
    // Once the isolate knows the key's shop, the name is read with the key (before the body is validated).
    const second = await createShopKey(app.kv, app.shop.id, { now: Date.now() });
    assert.equal((await callInit(app, paymentBody())).status, 201);
    assert.equal((await callInit(app, paymentBody(), { key: second.apiKey })).status, 201);
    const longId = paymentBody({ id: "x".repeat(3000), postbackUrl: "http://127.0.0.1:9/pb" });
    const byId = await callInit(app, longId);
    assert.equal(byId.status, 400, JSON.stringify(byId.body));
    assert.ok(byId.body.error.fields.id, JSON.stringify(byId.body));
    const byKey = await callInit(app, paymentBody(), { headers: { "idempotency-key": "k".repeat(3000) } });
    assert.equal(byKey.status, 400, JSON.stringify(byKey.body));
    assert.equal(byKey.body.error.fields["Idempotency-Key"], "must be at most 255 characters long");
    await revokeShopKey(app.kv, { shopId: app.shop.id, keyId: second.record.id }, { now: Date.now() });
    assert.equal((await callInit(app, longId, { key: second.apiKey })).status, 401);
    assert.equal(await countPayments(app), 2);
  } finally {
    await app.close();
  }
});

Deno.test("[api] disabling a shop refuses its keys on the very next request, and enabling lets them in again", async () => {
  const app = await startTestApp();
  try {
    assert.equal((await callInit(app, paymentBody())).status, 201);
    const opts = { actor: "test", now: Date.now() };
    await setShopStatus(app.kv, app.shop.id, "disabled", opts);
    const refused = await callInit(app, paymentBody());
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, "shop_disabled");
    await setShopStatus(app.kv, app.shop.id, "active", opts);
    assert.equal((await callInit(app, paymentBody())).status, 201);
  } finally {
    await app.close();
  }
});

Deno.test("[api] a shop reads its own payments by our id or its id, and never another shop's", async () => {
  const app = await startTestApp();
  try {
    const created = await callInit(
      app,
      paymentBody({ id: "order-7", postbackUrl: "http://127.0.0.1:9/pb", name: "Ann" }),
    );
    const get = (path: string, key = app.shop.apiKey) =>
      fetch(`${app.baseUrl}/api/v1${path}`, { headers: { authorization: `Bearer ${key}` } }).then(async (r) => ({
        status: r.status,
        body: await r.json(),
      }));
    const byId = await get(`/payments/${created.body.id}`);
    assert.equal(byId.status, 200);
    assert.equal(byId.body.payment.status, "pending");
    assert.equal(byId.body.payment.shopTxId, "order-7");
    assert.equal(byId.body.payment.amount, 1000);
    assert.equal(byId.body.payment.name, "Ann");
    assert.ok(!JSON.stringify(byId.body).includes(app.shop.webhookSecret));
    assert.ok(!("providerUrl" in byId.body.payment));
    const byRef = await get(`/payments?shopTxId=order-7`);
    assert.equal(byRef.body.payment.id, created.body.id);
    assert.equal(byId.body.payment.postbackUrl, "http://127.0.0.1:9/pb");
    // Without the shop's id no postback is ever sent, so the status names no postback URL.
    const anonymous = await callInit(app, paymentBody({ postbackUrl: "http://127.0.0.1:9/pb" }));
    assert.equal(anonymous.status, 201, JSON.stringify(anonymous.body));
    assert.equal((await get(`/payments/${anonymous.body.id}`)).body.payment.postbackUrl, null);
    assert.equal((await get(`/payments/pay_doesnotexist`)).status, 404);
    assert.equal((await get(`/payments?shopTxId=nope`)).status, 404);
    assert.equal((await get(`/payments`)).status, 400);

    // A key of another shop (on the same store) cannot see it.
    const { createShop } = await import("../lib/shops.ts");
    const stranger = await createShop(app.kv, { name: "Stranger" }, { allowLocalUrls: true, now: Date.now() });
    assert.equal((await get(`/payments/${created.body.id}`, stranger.apiKey)).status, 404);
    assert.equal((await get(`/payments?shopTxId=order-7`, stranger.apiKey)).status, 404);
  } finally {
    await app.close();
  }
});

Deno.test("[api] unknown API paths answer JSON 404, unknown pages an HTML 404", async () => {
  const app = await startTestApp();
  try {
    const api = await fetch(`${app.baseUrl}/api/v1/nope`, { headers: { authorization: `Bearer ${app.shop.apiKey}` } });
    assert.equal(api.status, 404);
    assert.equal((await api.json()).status, "error");
    const page = await fetch(`${app.baseUrl}/nope`);
    assert.equal(page.status, 404);
    assert.match(await page.text(), /Page not found/);
    const health = await fetch(`${app.baseUrl}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await app.close();
  }
});

Deno.test("[api] a shop over its rate limit gets 429 with Retry-After", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_PER_MINUTE: "3" } });
  try {
    const get = () =>
      fetch(`${app.baseUrl}/api/v1/payments/pay_x`, { headers: { authorization: `Bearer ${app.shop.apiKey}` } });
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const res = await get();
      statuses.push(res.status);
      if (res.status === 429) {
        assert.ok(Number(res.headers.get("retry-after")) >= 1);
        assert.equal((await res.json()).error.code, "rate_limited");
      } else await res.body?.cancel();
    }
    assert.deepEqual(statuses, [404, 404, 404, 429]);
  } finally {
    await app.close();
  }
});

Deno.test("[api] fund, metal and test codes are no currency: init-payment, checkout, forms and routes refuse them, options never lists them", async (t) => {
  const app = await startTestApp();
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${app.baseUrl}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  // Fund codes are ISO 4217 codes, told as such; metals, the SDR and test codes were never taken, and are told so.
  const FUNDS = ["BOV", "che", "CHW", "CLF", "COU", "MXV", "USN", "UYI", "UYW"];
  const OTHERS = ["XAU", "XAG", "XPT", "XPD", "XDR", "XSU", "XUA", "XBA", "XBB", "XBC", "XBD", "XTS", "XXX"];
  const expected = (code: string) =>
    FUNDS.some((f) => f.toUpperCase() === code)
      ? "is a fund code, not a currency buyers pay in"
      : "is a precious metal, unit of account or test code, not a currency buyers pay in";
  try {
    await t.step("init-payment", async () => {
      for (const currency of [...FUNDS, ...OTHERS]) {
        const res = await callInit(app, paymentBody({ currency }));
        assert.equal(res.status, 400, currency);
        assert.equal(res.body.error.fields.currency, expected(currency.toUpperCase()), currency);
      }
      assert.equal(await countPayments(app), 0);
    });
    await t.step("checkout sessions and forms", async () => {
      for (const currency of ["BOV", "XDR"]) {
        const session = await call("POST", "/checkout/sessions", {
          amount: 2500,
          currency,
          customerEmail: "buyer@example.com",
        });
        assert.equal(session.status, 400, currency);
        assert.equal(session.body.error.fields.currency, expected(currency));
        const form = await call("POST", "/forms", { kind: "fiat", title: "Donate", currency });
        assert.equal(form.status, 400, currency);
        assert.equal(form.body.error.fields.currency, expected(currency));
      }
    });
    await t.step("options", async () => {
      const { fiat } = (await call("GET", "/options")).body;
      assert.ok(fiat.currencies.includes("EUR"));
      assert.ok(fiat.currencies.includes("XOF"), "CFA francs are money people hold");
      for (const code of [...FUNDS, ...OTHERS]) assert.ok(!fiat.currencies.includes(code.toUpperCase()), code);
    });
    await t.step("a route rule", async () => {
      const { setShopRouting } = await import("../lib/accounts/routing.ts");
      await assert.rejects(
        setShopRouting(app.server.ctx, app.shop.id, {
          rules: [{ accountId: "default", currency: "USN", type: null }],
          defaultAccountId: null,
        }, { actor: "test" }),
        (err: Error & { fields?: Record<string, string> }) => {
          assert.equal(err.fields?.["rules.0.currency"], expected("USN"));
          return true;
        },
      );
    });
  } finally {
    await app.close();
  }
});

Deno.test("[api] a payment or checkout session stored in a fund code before fund codes were refused: its retry is answered with it, another body is refused, a new one is refused as before", async (t) => {
  const app = await startTestApp();
  const max = app.config.maxAmount;
  // The fingerprint init-payment stored for `body` had it been sent in `currency` (taken then): the same fields, in
  // the same order, with that currency.
  const paymentHash = (body: Record<string, unknown>, currency: string) =>
    sha256Hex(JSON.stringify({ ...normalizeInit(initPaymentSchema(max).parse(body)), currency }));
  /** Rewrites a payment made in EUR as the code stored it in `currency` before fund codes were refused. */
  const storeAsBefore = async (id: string, currency: string, requestHash: string) => {
    const stored = (await app.kv.get<Payment>(["payments", id])).value!;
    await app.kv.set(["payments", id], { ...stored, currency, requestHash });
  };
  const FUND_CODE = "is a fund code, not a currency buyers pay in";
  try {
    await t.step("init-payment, named by the shop's id or by an Idempotency-Key", async () => {
      const postbackUrl = "http://127.0.0.1:9/postbacks";
      const named: [string, Record<string, unknown>, Record<string, string>][] = [
        ["id", { id: "order-bov", postbackUrl }, {}],
        ["Idempotency-Key", {}, { "idempotency-key": "retry-bov" }],
      ];
      for (const [name, extra, headers] of named) {
        const made = await callInit(app, paymentBody(extra), { headers });
        assert.equal(made.status, 201, JSON.stringify(made.body));
        await storeAsBefore(made.body.id, "BOV", paymentHash(paymentBody(extra), "BOV"));
        const creates = app.sandbox.calls.create;

        const retry = await callInit(app, paymentBody({ ...extra, currency: "bov" }), { headers });
        assert.equal(retry.status, 200, `${name}: ${JSON.stringify(retry.body)}`);
        assert.equal(retry.body.id, made.body.id);
        assert.equal(retry.body.url, made.body.url);
        const other = await callInit(app, paymentBody({ ...extra, currency: "BOV", amount: 1001 }), { headers });
        assert.equal(other.status, 422, `${name}: ${JSON.stringify(other.body)}`);
        assert.equal(other.body.error.code, "idempotency_mismatch");
        // The payment it names is in BOV: the same body in a currency we take is another request.
        const inEur = await callInit(app, paymentBody(extra), { headers });
        assert.equal(inEur.body.error?.code, "idempotency_mismatch", `${name}: ${JSON.stringify(inEur.body)}`);
        assert.equal(app.sandbox.calls.create, creates, "the provider was not asked again");
      }
    });

    await t.step("a new payment in a fund code is refused as before, with every other problem", async () => {
      const before = await countPayments(app);
      for (const headers of [{}, { "idempotency-key": "new-bov" }] as Record<string, string>[]) {
        const res = await callInit(app, paymentBody({ currency: "BOV" }), { headers });
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, "invalid_request");
        assert.equal(res.body.error.message, "The request is invalid.");
        assert.deepEqual(res.body.error.fields, { currency: FUND_CODE });
      }
      const both = await callInit(app, paymentBody({ currency: "BOV", email: "nobody" }));
      assert.deepEqual(Object.keys(both.body.error.fields).sort(), ["currency", "email"]);
      assert.equal(both.body.error.fields.currency, FUND_CODE);
      // A bad Idempotency-Key is named with it, not once the header is right.
      const badKey = await callInit(app, paymentBody({ currency: "BOV" }), {
        headers: { "idempotency-key": "k".repeat(256) },
      });
      assert.equal(badKey.status, 400, JSON.stringify(badKey.body));
      assert.deepEqual(Object.keys(badKey.body.error.fields).sort(), ["Idempotency-Key", "currency"]);
      assert.equal(badKey.body.error.fields.currency, FUND_CODE);
      assert.equal(await countPayments(app), before);
    });

    await t.step("checkout sessions", async () => {
      const call = async (body: unknown, key: string) => {
        const res = await fetch(`${app.baseUrl}/api/v1/checkout/sessions`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${app.shop.apiKey}`,
            "content-type": "application/json",
            "idempotency-key": key,
          },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: await res.json() };
      };
      const body = { amount: 2500, currency: "EUR", customerEmail: "buyer@example.com" };
      const made = await call(body, "session-bov");
      assert.equal(made.status, 201, JSON.stringify(made.body));
      // As the code stored a session in BOV, and its payment.
      const sessionKey = ["checkout_sessions", made.body.sessionId];
      const session = (await app.kv.get<CheckoutSession>(sessionKey)).value!;
      const parsed = checkoutSessionSchema(max).parse(body);
      await app.kv.set(sessionKey, {
        ...session,
        currency: "BOV",
        requestHash: sha256Hex(JSON.stringify({ ...parsed, currency: "BOV" })),
      });
      const returnUrl = checkoutReturnUrl(app.config.publicBaseUrl, session.id);
      const paid = {
        email: body.customerEmail,
        amount: 2500,
        currency: "EUR",
        successUrl: returnUrl,
        errorUrl: returnUrl,
      };
      await storeAsBefore(session.paymentId, "BOV", paymentHash(paid, "BOV"));
      const creates = app.sandbox.calls.create;

      const retry = await call({ ...body, currency: "BOV" }, "session-bov");
      assert.equal(retry.status, 200, JSON.stringify(retry.body));
      assert.equal(retry.body.sessionId, made.body.sessionId);
      assert.equal(retry.body.clientSecret, made.body.clientSecret);
      assert.equal(retry.body.currency, "BOV");
      const other = await call({ ...body, currency: "BOV", amount: 2600 }, "session-bov");
      assert.equal(other.status, 422, JSON.stringify(other.body));
      assert.equal(other.body.error.code, "idempotency_mismatch");
      const fresh = await call({ ...body, currency: "BOV" }, "session-bov-new");
      assert.equal(fresh.status, 400, JSON.stringify(fresh.body));
      assert.equal(fresh.body.error.message, "The request is invalid.");
      assert.deepEqual(fresh.body.error.fields, { currency: FUND_CODE });
      const badKey = await call({ ...body, currency: "BOV" }, "k".repeat(256));
      assert.equal(badKey.status, 400, JSON.stringify(badKey.body));
      assert.deepEqual(Object.keys(badKey.body.error.fields).sort(), ["Idempotency-Key", "currency"]);
      assert.equal(app.sandbox.calls.create, creates, "the provider was not asked again");
    });
  } finally {
    await app.close();
  }
});

Deno.test("[api] init-payment names every bad field in one 400, its URLs' with those the schema refuses, without asking DNS; a stored payment's retry is still answered from the store", async (t) => {
  const lookups: string[] = [];
  const app = await startTestApp({
    allowedHosts: ["127.0.0.1", "shop.example"],
    resolve: (host) => (lookups.push(host), Promise.resolve(["93.184.216.34"])),
  });
  const postbackUrl = "https://shop.example/postbacks";
  try {
    const cases: [string, Record<string, unknown>, Record<string, string>][] = [
      [
        "a bad email and an ftp successUrl",
        { email: "nobody", successUrl: "ftp://x", postbackUrl },
        {
          email: "must be an email address, such as name@example.com",
          successUrl: "must be an absolute http or https URL",
        },
      ],
      [
        "a metal and a host off the allowed list",
        { currency: "XAU", errorUrl: "https://evil.example/x" },
        {
          currency: "is a precious metal, unit of account or test code, not a currency buyers pay in",
          errorUrl: "host evil.example is not in the shop's allowed hosts",
        },
      ],
      [
        "a fund code and a postback URL with credentials",
        { currency: "BOV", postbackUrl: "https://u:p@shop.example/pb" },
        { currency: "is a fund code, not a currency buyers pay in", postbackUrl: "must not contain credentials" },
      ],
      [
        "a bad amount and an id without a postback URL",
        { id: "order-many", amount: 0 },
        {
          amount: "must be more than 0",
          postbackUrl: "is required when id is given and the shop has no default postback URL",
        },
      ],
      [
        "the spec's spelling of successUrl, bad, beside a bad expiresIn",
        { successUrl: undefined, sussessUrl: "javascript:alert(1)", expiresIn: 5 },
        { expiresIn: "must be at least 60 seconds", successUrl: "must be an absolute http or https URL" },
      ],
    ];
    for (const [name, extra, fields] of cases) {
      await t.step(name, async () => {
        const res = await callInit(app, paymentBody(extra));
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, "invalid_request");
        assert.deepEqual(res.body.error.fields, fields);
      });
    }
    assert.deepEqual(lookups, [], "no request refused anyway asked DNS for its postback host");
    assert.equal(await countPayments(app), 0);

    await t.step("a stored payment's retry is answered from the store though the shop's hosts changed", async () => {
      const body = paymentBody({ id: "order-kept", postbackUrl });
      const made = await callInit(app, body);
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const { updateShopSettings } = await import("../lib/shops.ts");
      await updateShopSettings(app.kv, app.shop.id, {
        name: "Test shop",
        allowedHosts: ["shop.example"],
        defaultPostbackUrl: null,
      }, {
        actor: "test",
        allowLocalUrls: true,
        now: Date.now(),
        resolve: () => Promise.resolve(["93.184.216.34"]),
      });
      const retry = await callInit(app, body);
      assert.equal(retry.status, 200, JSON.stringify(retry.body));
      assert.equal(retry.body.id, made.body.id);
      // A new payment with those URLs is refused for each, with a bad email beside them.
      const fresh = await callInit(app, { ...body, id: "order-new", email: "nobody" });
      assert.equal(fresh.status, 400, JSON.stringify(fresh.body));
      assert.deepEqual(Object.keys(fresh.body.error.fields).sort(), ["email", "errorUrl", "successUrl"]);
    });
  } finally {
    await app.close();
  }
});
