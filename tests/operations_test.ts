/**
 * The operation log, and accounts, routes and the log in the console and on
 * the command line.
 */
import assert from "node:assert/strict";
import { createAccount } from "../lib/accounts/mod.ts";
import { addShopRoute, setShopRouting } from "../lib/accounts/routing.ts";
import type { ShopRouting } from "../lib/accounts/types.ts";
import { getAccountWithCredentials } from "../lib/db/accounts.ts";
import { getPayment } from "../lib/db/payments.ts";
import { getShop, getShopEntry, replaceShop, type Shop } from "../lib/db/shops.ts";
import { listOperations, type OperationEntry } from "../lib/db/operations.ts";
import { searchAudit } from "../lib/db/audit.ts";
import { createShop } from "../lib/shops.ts";
import { buyerSettles, callInit, paymentBody, startTestApp, type TestApp, waitFor } from "../fixtures/app.ts";
import { operatorBrowser } from "../fixtures/browser.ts";

const MERCHANTS = {
  orgA: { apiToken: "token-org-a", webhookSecret: "whsec-org-a" },
  orgB: { apiToken: "token-org-b", webhookSecret: "whsec-org-b" },
};

async function withApp(fn: (app: TestApp) => Promise<void>) {
  const app = await startTestApp({ standaloneSandbox: true, merchants: MERCHANTS });
  try {
    await fn(app);
  } finally {
    await app.close();
  }
}

function bansky(app: TestApp, merchant: keyof typeof MERCHANTS, orgId: string) {
  return createAccount(app.server.ctx, {
    provider: "bansky",
    label: `Bansky ${merchant}`,
    orgId,
    credentials: { apiUrl: app.sandboxUrl, ...MERCHANTS[merchant] },
  }, { actor: "test" });
}

async function api(app: TestApp, key: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${app.baseUrl}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("[operations] every provider call is logged with its shop, account, orgId, amount, outcome and duration", async () => {
  await withApp(async (app) => {
    const ctx = app.server.ctx;
    const a = await bansky(app, "orgA", "891027350515");
    const b = await bansky(app, "orgB", "991011000048");
    const { shop: shopB, apiKey: keyB } = await createShop(app.kv, { name: "Shop B", allowedHosts: [] }, {
      allowLocalUrls: true,
      now: Date.now(),
    });
    await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: a.id }, { actor: "test" });
    await setShopRouting(ctx, shopB.id, { rules: [], defaultAccountId: b.id }, { actor: "test" });

    const paid = async (key: string) => {
      const init = await callInit(app, paymentBody({ amount: 2500 }), { key });
      await buyerSettles(init.body.url, "paid");
      await waitFor("paid", async () => (await getPayment(app.kv, init.body.id))?.status === "succeeded" || undefined);
      const refund = await api(app, key, "POST", `/payments/${init.body.id}/refunds`, { amount: 700 });
      assert.equal(refund.status, 201, JSON.stringify(refund.body));
      return init.body.id as string;
    };
    const onA = await paid(app.shop.apiKey);
    const onB = await paid(keyB);
    const open = await callInit(app, paymentBody(), { key: keyB });
    assert.equal((await api(app, keyB, "POST", `/payments/${open.body.id}/cancel`)).status, 200);

    const byShop = (shopId: string, n: number) =>
      waitFor(`${n} entries of ${shopId}`, async () => {
        const entries = await listOperations(app.kv, { shopId, limit: 50 });
        return entries.length >= n ? entries : undefined;
      });
    const opsA = await byShop(app.shop.id, 3);
    const opsB = await byShop(shopB.id, 5);
    const kinds = (ops: OperationEntry[], paymentId: string) =>
      ops.filter((o) => o.paymentId === paymentId).map((o) => o.operation).sort();
    assert.deepEqual(kinds(opsA, onA), ["create", "refund", "status"], "create, the webhook's status check, refund");
    assert.deepEqual(kinds(opsB, onB), ["create", "refund", "status"]);
    assert.deepEqual(kinds(opsB, open.body.id), ["cancel", "create"]);
    for (const o of opsA) assert.equal(o.orgId, "891027350515");
    for (const o of opsB) {
      assert.equal(o.orgId, "991011000048");
      assert.equal(o.accountId, b.id);
      assert.equal(o.provider, "bansky");
      assert.equal(o.outcome, "ok");
      assert.ok(o.durationMs >= 0);
    }
    const refund = opsA.find((o) => o.operation === "refund")!;
    assert.equal(refund.amount, 700, "a refund's entry carries the refund's amount");
    assert.equal(refund.status, "succeeded");
    assert.match(refund.refundId!, /^re_/);
    // The refund call's entry is stored in the same commit as the refund's outcome (one commit, not two).
    let opStamp: string | undefined;
    for await (
      const { value, versionstamp } of app.kv.list<OperationEntry | OperationEntry[]>({ prefix: ["provider_ops"] })
    ) {
      if ([value].flat().some((o) => o.id === refund.id)) opStamp = versionstamp;
    }
    assert.equal(opStamp, (await app.kv.get(["refunds", refund.refundId!])).versionstamp);
    const create = opsA.find((o) => o.operation === "create")!;
    assert.equal(create.amount, 2500);
    assert.equal(create.currency, "EUR");
    assert.equal(create.providerRef, (await getPayment(app.kv, onA))!.providerRef);

    // A failing call is logged with its error, never with the token.
    await fetch(`${app.sandboxUrl}/knobs`, {
      method: "POST",
      headers: { authorization: `Bearer test-sandbox-token`, "content-type": "application/json" },
      body: JSON.stringify({ failureRate: 1 }),
    }).then((r) => r.body?.cancel());
    assert.equal((await callInit(app, paymentBody(), { key: keyB })).status, 502);
    const failed = await waitFor("the failed create", async () => {
      const [e] = await listOperations(app.kv, { accountId: b.id, outcome: "error", limit: 1 });
      return e;
    });
    assert.equal(failed.operation, "create");
    assert.match(failed.error!, /answered 503/);
    assert.doesNotMatch(JSON.stringify(failed), /token-org-b|whsec-org-b/);
    assert.equal((await listOperations(app.kv, { shopId: app.shop.id, outcome: "error", limit: 10 })).length, 0);
  });
});

Deno.test("[console] accounts: create, disable and rotate with a confirmation step; a shop's routes; the operation log filtered", async () => {
  await withApp(async (app) => {
    const b = await operatorBrowser(app);
    await b.get("/admin/accounts");
    const bad = await b.post("/admin/accounts", {
      provider: "bansky",
      label: "Org A",
      orgId: "891027350515",
      currencies: "EUR, nope",
      apiUrl: app.sandboxUrl,
      apiToken: "token-org-a",
      webhookSecret: "whsec-org-a",
    });
    assert.equal(bad.status, 400);
    assert.doesNotMatch(bad.text, /token-org-a|whsec-org-a/, "typed credentials are not sent back");
    const made = await b.post("/admin/accounts", {
      provider: "bansky",
      label: "Org A",
      orgId: "891027350515",
      currencies: "eur",
      apiUrl: app.sandboxUrl,
      apiToken: "token-org-a",
      webhookSecret: "whsec-org-a",
    });
    assert.equal(made.status, 303);
    const list = await b.get("/admin/accounts");
    const id = list.text.match(/pa_[A-Za-z0-9_-]{22}/)![0];
    assert.match(list.text, /891027350515/);
    assert.doesNotMatch(list.text, /token-org-a|whsec-org-a/);

    // Routing: the shop's default account, set on its routing page.
    await b.get(`/admin/shops/${app.shop.id}/routing`);
    const routed = await b.post(`/admin/shops/${app.shop.id}/routing`, { op: "default", defaultAccountId: id });
    assert.equal(routed.status, 303);
    assert.equal((await getShop(app.kv, app.shop.id))?.routing?.defaultAccountId, id);
    await b.get(`/admin/shops/${app.shop.id}/routing`);
    await b.post(`/admin/shops/${app.shop.id}/routing`, { op: "add", accountId: "default", currency: "usd", type: "" });
    assert.deepEqual((await getShop(app.kv, app.shop.id))?.routing?.rules, [
      { accountId: "default", currency: "USD", type: null },
    ]);
    const init = await callInit(app, paymentBody());
    assert.equal(init.status, 201);
    assert.equal((await getPayment(app.kv, init.body.id))?.accountId, id);

    // The log, filtered by shop, account and outcome.
    await waitFor("logged", async () => (await listOperations(app.kv, { accountId: id, limit: 1 }))[0]);
    const log = await b.get(`/admin/operations?shopId=${app.shop.id}&accountId=${id}&outcome=ok`);
    assert.equal(log.status, 200);
    assert.match(log.text, new RegExp(init.body.id));
    assert.match(log.text, /891027350515/);
    const none = await b.get(`/admin/operations?accountId=${id}&outcome=error`);
    assert.doesNotMatch(none.text, new RegExp(init.body.id));
    assert.match(none.text, /No provider calls match/);

    // Rotation: the first post only asks; the second shows the form; the third replaces.
    await b.get("/admin/accounts");
    const ask = await b.post(`/admin/accounts/${id}/rotate`, {});
    assert.equal(ask.status, 200);
    assert.match(ask.text, /Replace the credentials of Org A/);
    const form = await b.post(`/admin/accounts/${id}/rotate`, { confirm: "yes" });
    assert.match(form.text, /name="apiToken"/);
    // The API URL is no secret: the form shows where the account calls now and keeps it unless changed.
    assert.ok(
      form.text.includes(`name="apiUrl" type="url" value="${app.sandboxUrl}"`),
      "the current API URL, filled in",
    );
    assert.ok(form.text.includes(`It calls the provider at <code>${app.sandboxUrl}</code> now.`), "and said");
    assert.doesNotMatch(form.text, /token-org-a|whsec-org-a/, "never the token or the webhook secret");
    const typo = await b.post(`/admin/accounts/${id}/rotate`, {
      confirm: "yes",
      apiUrl: "not a url",
      apiToken: "token-org-b",
      webhookSecret: "whsec-org-b",
    });
    assert.equal(typo.status, 400);
    // What is not a URL is not shown back: it may be a secret pasted into the wrong box.
    assert.doesNotMatch(typo.text, /value="not a url"/, "not shown back");
    // Credentials belong in their own fields: a URL carrying them (or a query, even an empty one) is refused, and
    // shown back without them.
    for (const apiUrl of ["https://user:s3cret@bansky.example/api?key=QSECRET", "https://bansky.example/api?"]) {
      const refused = await b.post(`/admin/accounts/${id}/rotate`, {
        confirm: "yes",
        apiUrl,
        apiToken: "token-org-b",
        webhookSecret: "whsec-org-b",
      });
      assert.equal(refused.status, 400, apiUrl);
      assert.match(refused.text, /must be a base address without credentials, query or fragment/);
      assert.doesNotMatch(refused.text, /s3cret|QSECRET/);
      assert.ok(refused.text.includes('name="apiUrl" type="url" value="https://bansky.example/api"'), apiUrl);
    }
    // An account stored before such URLs were refused: its form shows the address without what may be secret.
    const stored = (await getAccountWithCredentials(app.kv, id))!;
    await app.kv.set(["provider_account_credentials", id], {
      ...stored.credentials,
      apiUrl: "https://legacy:LEGACYPW@bansky.example/api?token=QTOKEN",
    });
    const legacy = await b.post(`/admin/accounts/${id}/rotate`, { confirm: "yes" });
    assert.doesNotMatch(legacy.text, /LEGACYPW|QTOKEN/);
    assert.match(legacy.text, /It calls the provider at <code>https:\/\/bansky\.example\/api<\/code> now/);
    assert.doesNotMatch(typo.text, /token-org|whsec-org/, "the typed secrets do not");
    const rotated = await b.post(`/admin/accounts/${id}/rotate`, {
      confirm: "yes",
      apiUrl: app.sandboxUrl,
      apiToken: "token-org-b",
      webhookSecret: "whsec-org-b",
    });
    assert.equal(rotated.status, 303);
    const after = await callInit(app, paymentBody());
    assert.equal(app.sandbox.merchantOf((await getPayment(app.kv, after.body.id))!.providerRef!), "orgB");

    // Disabling asks first; then new payments get no_route.
    await b.get("/admin/accounts");
    const confirm = await b.post(`/admin/accounts/${id}/active`, { active: "no" });
    assert.match(confirm.text, /Disable Org A/);
    assert.equal((await callInit(app, paymentBody())).status, 201, "nothing changed before the confirmation");
    await b.post(`/admin/accounts/${id}/active`, { active: "no", confirm: "yes" });
    assert.equal((await callInit(app, paymentBody())).body.error.code, "no_route");
    const audit = await b.get("/admin/audit?q=" + id);
    assert.doesNotMatch(audit.text, /token-org|whsec-org/);
  });
});

/** The --actor of the operator a CLI test makes first (`operator create ops@example.com`, which needs none). */
const AS_OPS = ["--actor", "ops@example.com"];

/** Runs an operator command against a KV file (made if it is not there yet); returns its parsed JSON output. */
async function cli(kvPath: string, script: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `cli/${script}.ts`, ...args],
    env: { DENO_KV_PATH: kvPath, LOG_LEVEL: "warn", NEW_DATABASE: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  return {
    code: out.code,
    stdout,
    json: out.code === 0 ? JSON.parse(stdout) : null,
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("[cli] account create, list and disable; shop route adds a rule or sets the default", async () => {
  const dir = await Deno.makeTempDir();
  const kv = `${dir}/kv.sqlite3`;
  try {
    // The store's first operator needs no --actor; every change after names them.
    assert.equal((await cli(kv, "operator", ["create", "ops@example.com"], { PASSWORD_ITERATIONS: "1000" })).code, 0);
    const secrets = { ACCOUNT_API_TOKEN: "cli-token", ACCOUNT_WEBHOOK_SECRET: "cli-secret" };
    const made = await cli(kv, "account", [
      "create",
      "--label",
      "Org A",
      "--org-id",
      "891027350515",
      "--api-url",
      "https://bansky.example/v1",
      "--currency",
      "KZT",
      ...AS_OPS,
    ], secrets);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.json.id, /^pa_/);
    assert.equal(made.json.webhookPath, `/api/payment-verify/${made.json.id}`);
    assert.doesNotMatch(made.stdout, /cli-token|cli-secret/);
    const missing = await cli(kv, "account", [
      "create",
      "--label",
      "X",
      "--org-id",
      "1",
      "--api-url",
      "https://x.example",
      ...AS_OPS,
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /"ACCOUNT_API_TOKEN":"is required"/);

    const stripe = await cli(kv, "account", [
      "create",
      "--provider",
      "stripe",
      "--label",
      "Org B",
      "--org-id",
      "991011000048",
      "--connected-account",
      "acct_1OrgB",
      ...AS_OPS,
    ], { ACCOUNT_SECRET_KEY: "sk_test_cli", ACCOUNT_WEBHOOK_SECRET: "whsec_cli" });
    assert.equal(stripe.code, 0, stripe.stderr);
    assert.equal(stripe.json.provider, "stripe");
    assert.doesNotMatch(stripe.stdout, /sk_test_cli|whsec_cli/);

    const list = await cli(kv, "account", ["list"]);
    assert.deepEqual(list.json.map((a: { id: string }) => a.id), ["default", made.json.id, stripe.json.id]);
    assert.doesNotMatch(list.stdout, /cli-token|cli-secret/);

    const shop = await cli(kv, "shop", ["create", "--name", "Acme", ...AS_OPS]);
    const rule = await cli(kv, "shop", [
      "route",
      shop.json.shopId,
      "--account",
      made.json.id,
      "--currency",
      "kzt",
      ...AS_OPS,
    ]);
    assert.equal(rule.code, 0, rule.stderr);
    assert.deepEqual(rule.json.routing.rules, [{ accountId: made.json.id, currency: "KZT", type: null }]);
    const def = await cli(kv, "shop", ["route", shop.json.shopId, "--account", made.json.id, ...AS_OPS]);
    assert.equal(def.json.routing.defaultAccountId, made.json.id);
    const unknown = await cli(kv, "shop", ["route", shop.json.shopId, "--account", "pa_nope", ...AS_OPS]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /invalid_request: .* \{"--account":"is not an account"\}/);

    const disabled = await cli(kv, "account", ["disable", made.json.id, ...AS_OPS]);
    assert.equal(disabled.json.active, false);
    assert.equal(
      (await cli(kv, "account", ["disable", "default", ...AS_OPS])).code,
      2,
      "the default account lives in the env",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[accounts] the console's Add rule for a rule the shop has already adds no second copy and says so, as the CLI's shop route does", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    const path = `/admin/shops/${app.shop.id}/routing`;
    const rules = async () => (await getShop(app.kv, app.shop.id))?.routing?.rules;
    const audited = async () =>
      (await searchAudit(app.kv, { query: "shop.routing", limit: 100 })).filter((e) => e.action === "shop.routing")
        .length;
    await b.get(path);
    const added = await b.post(path, { op: "add", accountId: "default", currency: "usd", type: "fiat" });
    assert.equal(added.status, 303, added.text);
    assert.deepEqual(await rules(), [{ accountId: "default", currency: "USD", type: "fiat" }]);
    assert.equal(await audited(), 1);

    // The same rule again (the form sent twice, or another operator's page): the page says so, nothing is written.
    await b.get(path);
    const again = await b.post(path, { op: "add", accountId: "default", currency: "USD", type: "fiat" });
    assert.equal(again.status, 200);
    assert.match(
      again.text,
      /<p class="flash ok" role="status">Not added: the shop has this rule already\. Nothing changed\.<\/p>/,
    );
    assert.match(again.text, /<ol class="routes">/, "the routing page, with its rules");
    assert.deepEqual(await rules(), [{ accountId: "default", currency: "USD", type: "fiat" }]);
    assert.equal(await audited(), 1, "no audit entry for a change that was not made");

    // The CLI's check is the same one: a rule the console added is one it has, and the other way round.
    assert.equal(
      (await addShopRoute(app.server.ctx, app.shop.id, { accountId: "default", currency: "usd", type: "fiat" }, {
        actor: "cli",
      })).changed,
      false,
    );
    await addShopRoute(app.server.ctx, app.shop.id, { accountId: "default", currency: "EUR" }, { actor: "cli" });
    await b.get(path);
    const cliRule = await b.post(path, { op: "add", accountId: "default", currency: "eur", type: "" });
    assert.equal(cliRule.status, 200);
    assert.match(cliRule.text, /Not added: the shop has this rule already/);

    // Another rule for the same currency (another type) is a rule of its own.
    await b.get(path);
    const other = await b.post(path, { op: "add", accountId: "default", currency: "USD", type: "" });
    assert.equal(other.status, 303);
    assert.equal((await rules())?.length, 3);
  } finally {
    await app.close();
  }
});

Deno.test("[accounts] removing a routing rule asks first, and removes the rule the page showed, not whatever moved into its place", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    const usd = { accountId: "default", currency: "USD", type: null };
    const eur = { accountId: "default", currency: "EUR", type: "fiat" as const };
    await setShopRouting(app.server.ctx, app.shop.id, { defaultAccountId: null, rules: [usd, eur] }, { actor: "test" });
    const path = `/admin/shops/${app.shop.id}/routing`;
    const page = await b.get(path);
    assert.match(page.text, /data-confirm="Remove the rule &quot;USD, any type → /);

    // Without the page's script: the question on a page of its own, nothing removed yet.
    const asked = await b.post(path, { op: "remove", index: "0", rule: "default|USD|" });
    assert.equal(asked.status, 200);
    assert.match(asked.text, /Remove the rule &quot;USD, any type/);
    assert.equal((await getShop(app.kv, app.shop.id))?.routing?.rules.length, 2);

    await b.get(path);
    const removed = await b.post(path, { op: "remove", index: "0", rule: "default|USD|", confirm: "yes" });
    assert.equal(removed.status, 303);
    assert.deepEqual((await getShop(app.kv, app.shop.id))?.routing?.rules, [eur]);

    // A second operator's page still showed USD first: its removal of "rule 0" does not take EUR away.
    await b.get(path);
    const stale = await b.post(path, { op: "remove", index: "0", rule: "default|USD|", confirm: "yes" });
    assert.equal(stale.status, 409);
    assert.match(stale.text, /the rules changed since the page was shown/);
    assert.deepEqual((await getShop(app.kv, app.shop.id))?.routing?.rules, [eur]);
  } finally {
    await app.close();
  }
});

Deno.test("[accounts] a routing change made while the console's removal was being saved is not written over", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    const usd = { accountId: "default", currency: "USD", type: null };
    const eur = { accountId: "default", currency: "EUR", type: "fiat" as const };
    const gbp = { accountId: "default", currency: "GBP", type: null };
    const ctx = app.server.ctx;
    await setShopRouting(ctx, app.shop.id, { defaultAccountId: null, rules: [usd, eur] }, { actor: "test" });
    const path = `/admin/shops/${app.shop.id}/routing`;
    await b.get(path);
    // Another operator adds a rule after this removal read the rules and before it saved them (while it checked the
    // accounts its rules name).
    const find = ctx.providers.find.bind(ctx.providers);
    let raced = false;
    ctx.providers.find = async (id: string) => {
      if (!raced) {
        raced = true;
        await setShopRouting(ctx, app.shop.id, { defaultAccountId: null, rules: [usd, eur, gbp] }, { actor: "other" });
      }
      return await find(id);
    };
    const res = await b.post(path, { op: "remove", index: "0", rule: "default|USD|", confirm: "yes" });
    assert.ok(raced);
    assert.equal(res.status, 409);
    assert.match(res.text, /the rules changed since the page was shown/);
    assert.deepEqual((await getShop(app.kv, app.shop.id))?.routing?.rules, [usd, eur, gbp], "the other change stands");
  } finally {
    await app.close();
  }
});

Deno.test("[accounts] a routing rule stored in a fund code before they were refused stays while other rules change; a new or changed one is refused", async () => {
  const app = await startTestApp();
  const ctx = app.server.ctx;
  const shopId = app.shop.id;
  const FUND_CODE = "is a fund code, not a currency buyers pay in";
  const bov = { accountId: "default", currency: "BOV", type: null };
  const eur = { accountId: "default", currency: "EUR", type: "fiat" as const };
  const usd = { accountId: "default", currency: "USD", type: null };
  const gbp = { accountId: "default", currency: "GBP", type: null };
  const currencies = async () => (await getShop(app.kv, shopId))?.routing?.rules.map((r) => r.currency);
  const refused = async (change: Promise<unknown>, field: string) => {
    await assert.rejects(change, (err: Error & { fields?: Record<string, string> }) => {
      assert.deepEqual(err.fields, { [field]: FUND_CODE });
      return true;
    });
  };
  try {
    // As the code stored a rule in BOV before fund codes were refused.
    const entry = await getShopEntry(app.kv, shopId);
    const stored: ShopRouting = { rules: [bov, eur], defaultAccountId: null };
    const audit = {
      at: Date.now(),
      actor: "test",
      action: "shop.routing" as const,
      target: shopId,
      before: null,
      after: stored,
    };
    assert.ok(await replaceShop(app.kv, entry as Deno.KvEntry<Shop>, { ...entry.value!, routing: stored }, audit));

    // The admin API's PUT (the whole list, the BOV rule as it was, in any case), the CLI's add, the console's add.
    await setShopRouting(ctx, shopId, { rules: [usd, { ...bov, currency: "bov" }, eur], defaultAccountId: null }, {
      actor: "test",
    });
    await addShopRoute(ctx, shopId, { accountId: "default", currency: "GBP" }, { actor: "cli" });
    const b = await operatorBrowser(app);
    const path = `/admin/shops/${shopId}/routing`;
    await b.get(path);
    const added = await b.post(path, { op: "add", accountId: "default", currency: "JPY", type: "" });
    assert.equal(added.status, 303, added.text);
    assert.deepEqual(await currencies(), ["USD", "BOV", "EUR", "GBP", "JPY"]);

    // A new rule in a fund code, or the stored one changed, is refused as before; nothing is saved.
    await refused(
      setShopRouting(ctx, shopId, { rules: [usd, bov, eur, { ...gbp, currency: "USN" }], defaultAccountId: null }, {
        actor: "test",
      }),
      "rules.3.currency",
    );
    await refused(
      setShopRouting(ctx, shopId, { rules: [usd, { ...bov, type: "fiat" }, eur], defaultAccountId: null }, {
        actor: "test",
      }),
      "rules.1.currency",
    );
    await refused(
      addShopRoute(ctx, shopId, { accountId: "default", currency: "CLF" }, { actor: "cli" }),
      "rules.5.currency",
    );
    await b.get(path);
    const bad = await b.post(path, { op: "add", accountId: "default", currency: "MXV", type: "" });
    assert.equal(bad.status, 400);
    // Named as the page numbers its rules (the one added is the sixth), not by the API's position from 0.
    assert.match(bad.text, /Not saved: Rule 6: currency is a fund code, not a currency buyers pay in/);
    assert.doesNotMatch(bad.text, /rules\.5/);
    const noAccount = await b.post(path, { op: "add", accountId: "pa_nope", currency: "EUR", type: "" });
    assert.equal(noAccount.status, 400);
    assert.match(noAccount.text, /Not saved: Rule 6: account is not an account/);
    assert.deepEqual(await currencies(), ["USD", "BOV", "EUR", "GBP", "JPY"]);

    // Taken away, it does not come back.
    await setShopRouting(ctx, shopId, { rules: [usd, eur], defaultAccountId: null }, { actor: "test" });
    await refused(
      setShopRouting(ctx, shopId, { rules: [usd, eur, bov], defaultAccountId: null }, { actor: "test" }),
      "rules.2.currency",
    );
  } finally {
    await app.close();
  }
});
