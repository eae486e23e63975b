/**
 * The admin JSON API (/api/admin/v1) and the operator API tokens it takes:
 * tokens from the CLI (shown once, stored hashed, revocable, audited), then
 * accounts, routing and the operation log over HTTP.
 */
import assert from "node:assert/strict";
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { createOperatorToken, revokeOperatorToken } from "../lib/auth/operator_tokens.ts";
import {
  AccountListResponse,
  AccountResponse,
  OperationListResponse,
  RoutingResponse,
} from "../lib/accounts/api_schemas.ts";
import { ErrorResponse } from "../lib/payments/api_schemas.ts";
import { searchAudit } from "../lib/db/audit.ts";
import { callInit, paymentBody, startTestApp, type TestApp, waitFor } from "../fixtures/app.ts";

async function cli(kvPath: string, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/operator.ts", ...args],
    env: { DENO_KV_PATH: kvPath, LOG_LEVEL: "warn", PASSWORD_ITERATIONS: "1000", NEW_DATABASE: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  return { code: out.code, stdout, json: out.code === 0 ? JSON.parse(stdout) : null };
}

async function admin(app: TestApp, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${app.baseUrl}/api/admin/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("[admin api] a token from the CLI is shown once, stored hashed, works, and stops working when revoked", async (t) => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/kv.sqlite3`;
  try {
    assert.equal((await cli(kvPath, "create", "ops@example.com")).code, 0);
    const created = await cli(kvPath, "token", "create", "ops@example.com", "--actor", "ops@example.com");
    assert.equal(created.code, 0);
    const token: string = created.json.token;
    await t.step("prefixed, at least 128 random bits", () => {
      assert.match(token, /^apay_ot_[A-Za-z0-9_-]{32}$/, "192 bits in base64url");
      assert.equal(created.json.email, "ops@example.com");
      assert.match(created.json.tokenId, /^otk_/);
    });
    await t.step("never shown again, and not in KV in the clear", async () => {
      const list = await cli(kvPath, "token", "list");
      assert.equal(list.json.length, 1);
      assert.equal(list.json[0].hint, token.slice(0, 12));
      assert.ok(!list.stdout.includes(token));
      const kv = await Deno.openKv(kvPath);
      try {
        for await (const e of kv.list({ prefix: [] })) {
          assert.ok(!JSON.stringify([e.key, e.value]).includes(token), `token in clear at ${String(e.key[0])}`);
        }
      } finally {
        kv.close();
      }
    });
    await t.step("the token reaches the API; revoked, it gets 401", async () => {
      const app = await startTestApp({ kvPath });
      try {
        const ok = await admin(app, token, "GET", "/accounts");
        assert.equal(ok.status, 200);
        AccountListResponse.strict().parse(ok.body);
        const revoked = await cli(kvPath, "token", "revoke", created.json.tokenId, "--actor", "ops@example.com");
        assert.equal(revoked.code, 0);
        assert.ok(revoked.json.revokedAt);
        const refused = await admin(app, token, "GET", "/accounts");
        assert.equal(refused.status, 401);
        assert.deepEqual(refused.body, {
          status: "error",
          error: { code: "unauthorized", message: "Missing, unknown or revoked operator token." },
        });
        const audit = await searchAudit(app.kv, { query: "operator_token", limit: 10 });
        assert.deepEqual(audit.map((a) => a.action).sort(), ["operator_token.create", "operator_token.revoke"]);
        assert.ok(!JSON.stringify(audit).includes(token), "the audit names the token, never its value");
      } finally {
        await app.close();
      }
    });
    await t.step("an unknown operator gets no token", async () => {
      assert.notEqual(
        (await cli(kvPath, "token", "create", "nobody@example.com", "--actor", "ops@example.com")).code,
        0,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[admin api] accounts, routing and the operation log, in the shop API's error shape", async (t) => {
  const app = await startTestApp({
    standaloneSandbox: true,
    merchants: { orgB: { apiToken: "secret-token-org-b", webhookSecret: "whsec-org-b" } },
  });
  try {
    const ctx = app.server.ctx;
    await createOperatorAccount(ctx, "ops@example.com");
    const { token } = await createOperatorToken(ctx, "ops@example.com", { actor: "test" });

    await t.step("no token, a shop's key or a made-up token: 401", async () => {
      for (const bad of ["", app.shop.apiKey, "apay_ot_madeup"]) {
        const res = await admin(app, bad, "GET", "/accounts");
        assert.equal(res.status, 401, bad);
        ErrorResponse.parse(res.body);
      }
    });

    let accountId = "";
    await t.step("POST /accounts creates an account and never answers its credentials", async () => {
      const res = await admin(app, token, "POST", "/accounts", {
        provider: "bansky",
        label: "Org B",
        orgId: "991011000048",
        currencies: ["eur"],
        credentials: { apiUrl: app.sandboxUrl, apiToken: "secret-token-org-b", webhookSecret: "whsec-org-b" },
      });
      assert.equal(res.status, 201);
      AccountResponse.strict().parse(res.body);
      assert.deepEqual(res.body.account.currencies, ["EUR"]);
      assert.ok(!JSON.stringify(res.body).includes("secret-token-org-b"));
      assert.ok(!JSON.stringify(res.body).includes("whsec-org-b"));
      accountId = res.body.account.id;
      const [entry] = await searchAudit(app.kv, { query: "account.create", limit: 1 });
      assert.match(entry.actor, /^ops@example\.com \(token otk_/);

      const bad = await admin(app, token, "POST", "/accounts", { provider: "paypal", label: "", credentials: {} });
      assert.equal(bad.status, 400);
      ErrorResponse.parse(bad.body);
      assert.equal(bad.body.error.code, "invalid_request");
      assert.ok(bad.body.error.fields.provider);
    });

    await t.step("GET /accounts lists the default account and the new one", async () => {
      const res = await admin(app, token, "GET", "/accounts");
      assert.equal(res.status, 200);
      AccountListResponse.strict().parse(res.body);
      assert.deepEqual(res.body.accounts.map((a: { id: string }) => a.id), ["default", accountId]);
    });

    await t.step("PUT then GET a shop's routing; unknown accounts and shops are refused", async () => {
      const routing = { rules: [{ accountId, currency: "EUR", type: null }], defaultAccountId: null };
      const put = await admin(app, token, "PUT", `/shops/${app.shop.id}/routing`, routing);
      assert.equal(put.status, 200);
      RoutingResponse.strict().parse(put.body);
      const got = await admin(app, token, "GET", `/shops/${app.shop.id}/routing`);
      assert.equal(got.status, 200);
      assert.deepEqual(got.body, { status: "success", shopId: app.shop.id, routing });

      // Named by the field that holds it, as every refusal: the second rule's, and the default's.
      const unknownAccount = await admin(app, token, "PUT", `/shops/${app.shop.id}/routing`, {
        rules: [{ accountId, currency: "EUR", type: null }, { accountId: "pa_nope", currency: "USD", type: null }],
        defaultAccountId: "pa_nope",
      });
      assert.equal(unknownAccount.status, 400);
      ErrorResponse.parse(unknownAccount.body);
      assert.deepEqual(unknownAccount.body.error.fields, {
        "rules.1.accountId": "is not an account",
        defaultAccountId: "is not an account",
      });
      const unknownShop = await admin(app, token, "GET", "/shops/shop_nope/routing");
      assert.equal(unknownShop.status, 404);
      ErrorResponse.parse(unknownShop.body);
      // An id too long to be a shop's (or for a KV key) is not found either, read or written; nothing changes.
      const overLong = `/shops/shop_${"x".repeat(3000)}/routing`;
      for (const res of [await admin(app, token, "GET", overLong), await admin(app, token, "PUT", overLong, routing)]) {
        assert.equal(res.status, 404, JSON.stringify(res.body));
        assert.deepEqual(res.body, { status: "error", error: { code: "not_found", message: "Unknown shop." } });
      }
      assert.deepEqual((await admin(app, token, "GET", `/shops/${app.shop.id}/routing`)).body.routing, routing);
    });

    await t.step("GET /operations filters by shop and account, newest first, with a limit", async () => {
      for (let i = 0; i < 2; i++) assert.equal((await callInit(app, paymentBody())).status, 201);
      // Entries are written beside the call (shared commits), so wait until both are there.
      await waitFor("both create calls logged", async () => {
        const r = await admin(app, token, "GET", `/operations?accountId=${accountId}`);
        return r.body.operations.length === 2 || undefined;
      });
      const byShop = await admin(app, token, "GET", `/operations?shopId=${app.shop.id}&limit=1`);
      assert.equal(byShop.status, 200);
      OperationListResponse.strict().parse(byShop.body);
      assert.equal(byShop.body.operations.length, 1);
      const [op] = byShop.body.operations;
      assert.equal(op.accountId, accountId);
      assert.equal(op.orgId, "991011000048");
      assert.equal(op.operation, "create");
      const byAccount = await admin(app, token, "GET", `/operations?accountId=${accountId}`);
      assert.equal(byAccount.body.operations.length, 2);
      assert.ok(byAccount.body.operations[0].id > byAccount.body.operations[1].id, "newest first");
      const none = await admin(app, token, "GET", "/operations?accountId=default");
      assert.equal(none.body.operations.length, 0);
      const bad = await admin(app, token, "GET", "/operations?limit=0");
      assert.equal(bad.status, 400);
      ErrorResponse.parse(bad.body);
    });

    await t.step("a token revoked in the library stops at once", async () => {
      const second = await createOperatorToken(ctx, "ops@example.com", { actor: "test" });
      assert.equal((await admin(app, second.token, "GET", "/accounts")).status, 200);
      await revokeOperatorToken(ctx, second.record.id, { actor: "test" });
      assert.equal((await admin(app, second.token, "GET", "/accounts")).status, 401);
    });
  } finally {
    await app.close();
  }
});
