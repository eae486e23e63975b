/**
 * Provider accounts and routing over real HTTP: the standalone Bansky sandbox
 * hosts several merchant accounts (each its own token and webhook secret);
 * shops are routed to them; payments, webhooks, refunds and cancels go to the
 * payment's own account.
 */
import assert from "node:assert/strict";
import { createAccount, listAllAccounts, rotateAccountCredentials, setAccountActive } from "../lib/accounts/mod.ts";
import { pickAccountId, setShopRouting } from "../lib/accounts/routing.ts";
import { DEFAULT_ACCOUNT_ID, type ProviderAccount } from "../lib/accounts/types.ts";
import { OptionsResponse } from "../lib/accounts/api_schemas.ts";
import { commitPaymentMove, getPayment, getPaymentEntry } from "../lib/db/payments.ts";
import { getRefund } from "../lib/db/refunds.ts";
import { searchAudit } from "../lib/db/audit.ts";
import { signBanskyWebhook } from "../lib/providers/bansky_wire.ts";
import type { Payment } from "../lib/payments/types.ts";
import { createShop } from "../lib/shops.ts";
import {
  buyerSettles,
  callInit,
  freePort,
  paymentBody,
  SANDBOX_TOKEN,
  startTestApp,
  type TestApp,
  type TestAppOptions,
  type TestShop,
  waitFor,
} from "../fixtures/app.ts";
import { operatorBrowser, portalBrowser } from "../fixtures/browser.ts";

const MERCHANTS = {
  orgA: { apiToken: "token-org-a", webhookSecret: "whsec-org-a" },
  orgB: { apiToken: "token-org-b", webhookSecret: "whsec-org-b" },
};

async function withApp(opts: TestAppOptions, fn: (app: TestApp) => Promise<void>) {
  const app = await startTestApp({ standaloneSandbox: true, merchants: MERCHANTS, ...opts });
  try {
    await fn(app);
  } finally {
    await app.close();
  }
}

function bansky(app: TestApp, merchant: keyof typeof MERCHANTS, extra: Record<string, unknown> = {}) {
  return createAccount(app.server.ctx, {
    provider: "bansky",
    label: `Bansky ${merchant}`,
    orgId: merchant === "orgA" ? "891027350515" : "991011000048",
    credentials: { apiUrl: app.sandboxUrl, ...MERCHANTS[merchant] },
    ...extra,
  }, { actor: "test" });
}

async function secondShop(app: TestApp): Promise<TestShop> {
  const { shop, apiKey } = await createShop(app.kv, { name: "Second shop", allowedHosts: [] }, {
    allowLocalUrls: true,
    now: Date.now(),
  });
  return { id: shop.id, apiKey, webhookSecret: shop.webhookSecret };
}

/** A payment made through init-payment with `key` and paid at `merchant`'s sandbox account (whose webhook is held back). */
async function paidAtProvider(app: TestApp, merchant: keyof typeof MERCHANTS, key = app.shop.apiKey): Promise<Payment> {
  const init = await callInit(app, paymentBody(), { key });
  assert.equal(init.status, 201, JSON.stringify(init.body));
  const p = (await getPayment(app.kv, init.body.id))!;
  await fetch(`${app.sandboxUrl}/payments/${p.providerRef}/complete`, {
    method: "POST",
    headers: { authorization: `Bearer ${MERCHANTS[merchant].apiToken}`, "content-type": "application/json" },
    body: JSON.stringify({ outcome: "paid" }),
  }).then((r) => r.body?.cancel());
  return p;
}

/** Posts Bansky news signed with `secret` to `/api/payment-verify{path}`. */
function sendBanskyWebhook(app: TestApp, path: string, secret: string, news: Record<string, unknown>) {
  const text = JSON.stringify(news);
  return fetch(`${app.baseUrl}/api/payment-verify${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "bansky-signature": signBanskyWebhook(secret, Math.floor(Date.now() / 1000), text),
    },
    body: text,
  }).then(async (r) => ({ status: r.status, body: await r.json() }));
}

async function api(app: TestApp, key: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${app.baseUrl}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function paid(app: TestApp, key: string, body: Record<string, unknown> = {}): Promise<Payment> {
  const init = await callInit(app, paymentBody(body), { key });
  assert.equal(init.status, 201, JSON.stringify(init.body));
  await buyerSettles(init.body.url, "paid");
  return await waitFor("payment succeeded", async () => {
    const p = await getPayment(app.kv, init.body.id);
    return p?.status === "succeeded" ? p : undefined;
  });
}

Deno.test("[routing] two shops routed to two accounts with different orgIds each take a payment end to end, and each refund goes to its own account", async () => {
  await withApp({}, async (app) => {
    const ctx = app.server.ctx;
    const a = await bansky(app, "orgA");
    const b = await bansky(app, "orgB");
    const shopB = await secondShop(app);
    await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: a.id }, { actor: "test" });
    await setShopRouting(ctx, shopB.id, { rules: [], defaultAccountId: b.id }, { actor: "test" });

    const onA = await paid(app, app.shop.apiKey);
    const onB = await paid(app, shopB.apiKey);
    assert.equal(onA.accountId, a.id);
    assert.equal(onB.accountId, b.id);
    assert.equal(app.sandbox.merchantOf(onA.providerRef!), "orgA");
    assert.equal(app.sandbox.merchantOf(onB.providerRef!), "orgB");

    for (const [p, key, merchant] of [[onA, app.shop.apiKey, "orgA"], [onB, shopB.apiKey, "orgB"]] as const) {
      const res = await api(app, key, "POST", `/payments/${p.id}/refunds`, { amount: 400 });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.refund.status, "succeeded");
      const stored = await getRefund(app.kv, res.body.refund.id);
      assert.equal(stored?.accountId, p.accountId);
      assert.equal(app.sandbox.merchantOf(stored!.providerRef!), merchant, "refunded at the payment's own account");
      assert.equal((await getPayment(app.kv, p.id))?.status, "partially_refunded");
    }

    // A cancel goes to the payment's own account too: the sandbox shows it cancelled to orgB's token only.
    const open = await callInit(app, paymentBody(), { key: shopB.apiKey });
    const cancelled = await api(app, shopB.apiKey, "POST", `/payments/${open.body.id}/cancel`);
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    const ref = (await getPayment(app.kv, open.body.id))!.providerRef;
    const atB = await fetch(`${app.sandboxUrl}/payments/${ref}`, {
      headers: { authorization: `Bearer ${MERCHANTS.orgB.apiToken}` },
    }).then((r) => r.json());
    assert.equal(atB.status, "cancelled");
    const atA = await fetch(`${app.sandboxUrl}/payments/${ref}`, {
      headers: { authorization: `Bearer ${MERCHANTS.orgA.apiToken}` },
    });
    assert.equal(atA.status, 404, "another merchant does not see it");
    await atA.body?.cancel();
  });
});

Deno.test("[routing] rules match by currency and type in order, then the shop's default, then the platform default", async () => {
  const routing = {
    rules: [
      { accountId: "pa_kzt", currency: "KZT", type: null },
      { accountId: "pa_crypto", currency: null, type: "crypto" as const },
      { accountId: "pa_usd_fiat", currency: "USD", type: "fiat" as const },
    ],
    defaultAccountId: "pa_shop_default",
  };
  assert.equal(pickAccountId(routing, "KZT", "crypto"), "pa_kzt", "the first match wins");
  assert.equal(pickAccountId(routing, "EUR", "crypto"), "pa_crypto");
  assert.equal(pickAccountId(routing, "USD", "fiat"), "pa_usd_fiat");
  assert.equal(pickAccountId(routing, "EUR", "fiat"), "pa_shop_default");
  assert.equal(pickAccountId({ ...routing, defaultAccountId: null }, "EUR", "fiat"), DEFAULT_ACCOUNT_ID);
  assert.equal(pickAccountId(undefined, "EUR", "fiat"), DEFAULT_ACCOUNT_ID);

  await withApp({}, async (app) => {
    const a = await bansky(app, "orgA");
    await setShopRouting(app.server.ctx, app.shop.id, {
      rules: [{ accountId: a.id, currency: "kzt" }],
      defaultAccountId: null,
    }, { actor: "test" });
    const kzt = await callInit(app, paymentBody({ currency: "KZT" }));
    const eur = await callInit(app, paymentBody({ currency: "EUR" }));
    assert.equal((await getPayment(app.kv, kzt.body.id))?.accountId, a.id);
    assert.equal((await getPayment(app.kv, eur.body.id))?.accountId, DEFAULT_ACCOUNT_ID);
  });
});

Deno.test("[routing] a payment the shop's routes cannot serve gets 422 no_route and reaches no provider", async () => {
  await withApp({}, async (app) => {
    const ctx = app.server.ctx;
    const kztOnly = await bansky(app, "orgA", { currencies: ["kzt"] });
    await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: kztOnly.id }, { actor: "test" });
    const before = app.sandbox.calls.create;
    const eur = await callInit(app, paymentBody({ currency: "EUR" }));
    assert.equal(eur.status, 422);
    assert.equal(eur.body.error.code, "no_route");
    assert.equal(
      eur.body.error.message,
      "This shop has no route for fiat payments in EUR: the account its routes pick takes no EUR.",
    );
    assert.equal((await callInit(app, paymentBody({ currency: "KZT" }))).status, 201);

    await setAccountActive(ctx, kztOnly.id, false, { actor: "test" });
    const disabled = await callInit(app, paymentBody({ currency: "KZT" }));
    assert.equal(disabled.status, 422, "a disabled account takes no new payments");
    assert.equal(disabled.body.error.code, "no_route");
    assert.match(disabled.body.error.message, /: the account its routes pick is disabled\.$/, "says where to look");
    assert.equal(app.sandbox.calls.create - before, 1);

    await assert.rejects(
      setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: "pa_nope" }, { actor: "test" }),
      (err: Error) => err.name === "ValidationError" && /unknown accounts/.test(err.message),
    );
  });
});

Deno.test("[webhooks] each account verifies its own at /api/payment-verify/{accountId}; news without our payment id is acknowledged and changes nothing", async () => {
  await withApp({ knobs: { dropWebhooks: true } }, async (app) => {
    const a = await bansky(app, "orgA");
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: a.id }, { actor: "test" });
    const p = await paidAtProvider(app, "orgA");
    // We keep no index of the provider's references: news that does not name our payment cannot be placed, so it is
    // acknowledged (the provider stops retrying) and the status check settles the payment instead.
    const unnamed = await sendBanskyWebhook(app, `/${a.id}`, MERCHANTS.orgA.webhookSecret, {
      eventId: "evt_0",
      ref: p.providerRef,
      status: "paid",
    });
    assert.equal(unnamed.status, 200, JSON.stringify(unnamed.body));
    assert.equal(unnamed.body.outcome, "unchanged");
    assert.equal((await getPayment(app.kv, p.id))?.status, "pending");
    const news = { eventId: "evt_1", id: p.id, ref: p.providerRef, status: "paid" };
    assert.equal(
      (await sendBanskyWebhook(app, `/${a.id}`, MERCHANTS.orgB.webhookSecret, news)).status,
      401,
      "another account's secret",
    );
    assert.equal(
      (await sendBanskyWebhook(app, "", MERCHANTS.orgA.webhookSecret, news)).status,
      401,
      "not the default account's",
    );
    assert.equal(
      (await sendBanskyWebhook(app, "/pa_AAAAAAAAAAAAAAAAAAAAAA", "x", news)).status,
      404,
      "unknown account",
    );
    assert.equal((await sendBanskyWebhook(app, "/default/../x", "x", news)).status, 404);
    const ok = await sendBanskyWebhook(app, `/${a.id}`, MERCHANTS.orgA.webhookSecret, news);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.outcome, "applied");
    assert.equal((await getPayment(app.kv, p.id))?.status, "succeeded");
  });
});

Deno.test("[webhooks] an event id is one account's: another account's webhook with the same id is not taken for a duplicate", async () => {
  await withApp({ knobs: { dropWebhooks: true } }, async (app) => {
    const a = await bansky(app, "orgA");
    const b = await bansky(app, "orgB");
    const other = await secondShop(app);
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: a.id }, { actor: "test" });
    await setShopRouting(app.server.ctx, other.id, { rules: [], defaultAccountId: b.id }, { actor: "test" });
    // Both accounts' providers happen to use the same event id.
    const send = (account: ProviderAccount, merchant: keyof typeof MERCHANTS, p: Payment) =>
      sendBanskyWebhook(app, `/${account.id}`, MERCHANTS[merchant].webhookSecret, {
        eventId: "evt_same",
        id: p.id,
        ref: p.providerRef,
        status: "paid",
      });
    const pa = await paidAtProvider(app, "orgA");
    const pb = await paidAtProvider(app, "orgB", other.apiKey);
    assert.equal((await send(a, "orgA", pa)).body.outcome, "applied");
    assert.equal((await send(a, "orgA", pa)).body.outcome, "duplicate", "the same account's again");
    // Signed by B, at B's address, but about A's payment: refused (errors.md's provider webhook table says so).
    const elsewhere = await sendBanskyWebhook(app, `/${b.id}`, MERCHANTS.orgB.webhookSecret, {
      eventId: "evt_elsewhere",
      id: pa.id,
      ref: pa.providerRef,
      status: "paid",
    });
    assert.deepEqual([elsewhere.status, elsewhere.body.error?.code], [400, "invalid_webhook"]);
    const second = await send(b, "orgB", pb);
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal(second.body.outcome, "applied");
    assert.equal((await getPayment(app.kv, pb.id))?.status, "succeeded");
  });
});

Deno.test("[accounts] payments stored before accounts existed use the default account for webhooks and refunds", async () => {
  await withApp({}, async (app) => {
    const init = await callInit(app, paymentBody());
    // Make it look like a record from before: no accountId.
    const entry = await getPaymentEntry(app.kv, init.body.id);
    const { accountId: _, ...old } = entry.value!;
    assert.ok(
      await commitPaymentMove(app.kv, entry as Deno.KvEntry<Payment>, old, {
        events: [],
        jobs: { queue: false, now: Date.now() },
      }),
    );
    await buyerSettles(init.body.url, "paid");
    await waitFor("settled", async () => (await getPayment(app.kv, init.body.id))?.status === "succeeded" || undefined);
    const res = await api(app, app.shop.apiKey, "POST", `/payments/${init.body.id}/refunds`, {});
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.refund.status, "succeeded");
    assert.equal(app.sandbox.merchantOf((await getRefund(app.kv, res.body.refund.id))!.providerRef!), "default");
  });
});

Deno.test("[console] a payment's page names the merchant account it went through and its provider, linked to the account's row; the portal does not", async () => {
  await withApp({}, async (app) => {
    const a = await bansky(app, "orgA");
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: a.id }, { actor: "test" });
    const onA = await callInit(app, paymentBody());
    assert.equal(onA.status, 201, JSON.stringify(onA.body));
    const ops = await operatorBrowser(app);
    const page = (await ops.get(`/admin/payments/${onA.body.id}`)).text;
    assert.match(
      page,
      new RegExp(
        `<dt>Account</dt><dd><span><a href="/admin/accounts#account-${a.id}">Bansky orgA</a> · bansky · <code>${a.id}</code>`,
      ),
    );
    const accounts = (await ops.get("/admin/accounts")).text;
    assert.ok(accounts.includes(`<tr id="account-${a.id}">`), "the link lands on the account's row");

    // A payment from before accounts went through the default account, and says so.
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: null }, { actor: "test" });
    const init = await callInit(app, paymentBody());
    const entry = await getPaymentEntry(app.kv, init.body.id);
    const { accountId: _, ...old } = entry.value!;
    await commitPaymentMove(app.kv, entry as Deno.KvEntry<Payment>, old, {
      events: [],
      jobs: { queue: false, now: Date.now() },
    });
    const older = (await ops.get(`/admin/payments/${init.body.id}`)).text;
    assert.match(
      older,
      /<dt>Account<\/dt><dd><span><a href="\/admin\/accounts#account-default">[^<]+<\/a> · bansky · <code>default<\/code>/,
    );
    assert.ok(accounts.includes(`<tr id="account-default">`));

    const staff = await portalBrowser(app);
    const shopsView = (await staff.get(`/portal/payments/${onA.body.id}`)).text;
    assert.match(shopsView, /<dt>Payment id<\/dt>/);
    assert.doesNotMatch(shopsView, /<dt>Account<\/dt>|Bansky orgA/, "a shop does not see our accounts");
  });
});

Deno.test("[accounts] credentials are never shown back, audited or listed; a rotation takes effect and the default account is fixed", async () => {
  await withApp({}, async (app) => {
    const ctx = app.server.ctx;
    const a = await bansky(app, "orgA", {
      credentials: { apiUrl: app.sandboxUrl, apiToken: "wrong", webhookSecret: "w" },
    });
    const shown = JSON.stringify([a, await listAllAccounts(ctx)]);
    assert.doesNotMatch(shown, /wrong|"w"|apiToken|webhookSecret/);
    assert.equal((await listAllAccounts(ctx))[0].id, DEFAULT_ACCOUNT_ID);
    await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: a.id }, { actor: "test" });
    const refused = await callInit(app, paymentBody());
    assert.equal(refused.status, 502, "the sandbox refuses the wrong token");

    const rotated: ProviderAccount = await rotateAccountCredentials(ctx, a.id, {
      apiUrl: app.sandboxUrl,
      ...MERCHANTS.orgA,
    }, { actor: "test" });
    assert.ok(rotated.credentialsUpdatedAt >= a.credentialsUpdatedAt);
    assert.equal((await callInit(app, paymentBody())).status, 201, "the new credentials are used at once here");
    const audit = JSON.stringify(await searchAudit(app.kv, { query: a.id, limit: 10 }));
    assert.match(audit, /account\.create/);
    assert.match(audit, /account\.rotate/);
    assert.doesNotMatch(audit, /token-org-a|whsec-org-a|wrong/);
    await assert.rejects(
      setAccountActive(ctx, DEFAULT_ACCOUNT_ID, false, { actor: "test" }),
      (err: Error) => err.name === "ConflictError",
    );
  });
});

Deno.test("[options] GET /api/v1/options lists the fiat currencies the shop's routes accept, and the coins invoices take", async () => {
  await withApp({}, async (app) => {
    const options = async () => {
      const res = await api(app, app.shop.apiKey, "GET", "/options");
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return OptionsResponse.parse(res.body);
    };
    const open = await options();
    assert.ok(open.fiat.currencies.includes("EUR") && open.fiat.currencies.includes("JPY"), "the default takes any");
    assert.deepEqual(open.fiat.currencies, [...open.fiat.currencies].sort());
    assert.deepEqual(open.crypto.coins.map((c) => c.id), ["USDT", "BTC", "ETH"]);

    const kzt = await bansky(app, "orgA", { currencies: ["KZT"] });
    const usd = await bansky(app, "orgB", { currencies: ["USD", "EUR"] });
    await setShopRouting(app.server.ctx, app.shop.id, {
      rules: [{ accountId: usd.id, currency: "USD" }, { accountId: usd.id, currency: "GBP" }],
      defaultAccountId: kzt.id,
    }, { actor: "test" });
    assert.deepEqual(
      (await options()).fiat.currencies,
      ["KZT", "USD"],
      "GBP's account does not take GBP; EUR falls to KZT's",
    );
    for (const currency of ["KZT", "USD"]) assert.equal((await callInit(app, paymentBody({ currency }))).status, 201);
    for (const currency of ["EUR", "GBP"]) {
      assert.equal((await callInit(app, paymentBody({ currency }))).body.error.code, "no_route");
    }
    await setAccountActive(app.server.ctx, kzt.id, false, { actor: "test" });
    assert.deepEqual((await options()).fiat.currencies, ["USD"]);
    assert.equal((await api(app, "apay_sk_nope", "GET", "/options")).status, 401);
  });
});

Deno.test("[sandbox] the standalone sandbox takes more merchant accounts from SANDBOX_MERCHANTS", async () => {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "sandbox/main.ts"],
    cwd: new URL("..", import.meta.url),
    env: { SANDBOX_PORT: String(port), SANDBOX_MERCHANTS: "orgA:tok-a:sec-a,orgB:tok-b:sec-b" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const create = (token: string) =>
      waitFor("the sandbox answers", async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${port}/payments`, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: JSON.stringify({
              id: crypto.randomUUID(),
              amount: 100,
              email: "a@b.example",
              postbackUrl: "http://x",
            }),
          });
          await res.body?.cancel();
          return res.status;
        } catch {
          return undefined;
        }
      });
    assert.equal(await create("tok-b"), 201);
    assert.equal(await create("sandbox-token"), 201, "the default merchant stays");
    assert.equal(await create("tok-c"), 401);
  } finally {
    child.kill();
    await child.status;
  }
});

Deno.test("[sandbox] its knobs answer whatever faults they set: a failure rate of 1 or a long latency can be undone", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  try {
    const knobs = async (body: Record<string, unknown>) => {
      const started = performance.now();
      const res = await fetch(`${app.sandboxUrl}/knobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${SANDBOX_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json(), ms: performance.now() - started };
    };
    assert.equal((await knobs({ failureRate: 1, latencyMs: 5_000 })).status, 200);
    const undone = await knobs({ failureRate: 0, latencyMs: 0 });
    assert.equal(undone.status, 200, JSON.stringify(undone.body));
    assert.ok(undone.ms < 2_000, `the knobs waited ${undone.ms} ms`);
    assert.deepEqual([undone.body.failureRate, undone.body.latencyMs], [0, 0]);
    const refused = await fetch(`${app.sandboxUrl}/knobs`, { method: "POST", body: "{}" });
    await refused.body?.cancel();
    assert.equal(refused.status, 401, "still our token only");
  } finally {
    await app.close();
  }
});

Deno.test("[webhooks] another account's signed webhook naming our payment id and reference moves nothing", async () => {
  // Webhooks find payments by our id alone (no index of references): the account check is what keeps them apart.
  await withApp({ knobs: { dropWebhooks: true } }, async (app) => {
    const a = await bansky(app, "orgA");
    const b = await bansky(app, "orgB");
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: a.id }, { actor: "test" });
    const p = await paidAtProvider(app, "orgA");
    const news = { eventId: "evt_b", id: p.id, ref: p.providerRef, status: "paid" };
    const res = await sendBanskyWebhook(app, `/${b.id}`, MERCHANTS.orgB.webhookSecret, news);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "invalid_webhook");
    assert.equal((await getPayment(app.kv, p.id))?.status, "pending");
  });
});
