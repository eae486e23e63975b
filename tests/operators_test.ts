/**
 * Disabling an operator (a departed one): from the command line and from the console's Operators page, their
 * password stops signing in (with the wrong password's answer), every session of theirs ends on every server, and
 * their API tokens get 401; enabled, the password signs in again and the old sessions and tokens stay ended. Nobody
 * disables themself from the console, nor the last active operator.
 */
import assert from "node:assert/strict";
import {
  createFirstOperatorAccount,
  createOperatorAccount,
  disableOperator,
  enableOperator,
  OperatorDisableRefusedError,
} from "../lib/auth/operators.ts";
import { authenticateOperatorToken, createOperatorToken } from "../lib/auth/operator_tokens.ts";
import { getOperatorByEmail, updateOperatorPassword } from "../lib/db/operators.ts";
import { hashPassword } from "../lib/auth/passwords.ts";
import { searchAudit } from "../lib/db/audit.ts";
import { startTestApp, type TestApp } from "../fixtures/app.ts";
import { AppError, ValidationError } from "../lib/errors.ts";
import { listOperatorTokens } from "../lib/db/operator_tokens.ts";
import { Browser, operatorBrowser } from "../fixtures/browser.ts";

const PASSWORD = "correct horse battery";

/** The --actor of the operator the test signs in first: the command line's changes are credited to them. */
const AS_OPS = ["--actor", "ops@example.com"];

async function cli(kvPath: string, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/operator.ts", ...args],
    env: { DENO_KV_PATH: kvPath, LOG_LEVEL: "warn", PASSWORD_ITERATIONS: "1000", NEW_DATABASE: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  return {
    code: out.code,
    json: out.code === 0 ? JSON.parse(stdout) : null,
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** An admin API call with an operator token: its status. */
async function adminStatus(app: TestApp, token: string): Promise<number> {
  const res = await fetch(`${app.baseUrl}/api/admin/v1/accounts`, { headers: { authorization: `Bearer ${token}` } });
  await res.body?.cancel();
  return res.status;
}

/** A sign-in from a fresh browser: its status and the line the page says on top. */
async function signIn(app: TestApp, email: string, password: string) {
  const b = new Browser(app);
  await b.get("/admin/login");
  const res = await b.post("/admin/login", { email, password });
  return { status: res.status, said: res.text.match(/<p class="flash bad"[^>]*>([^<]*)<\/p>/)?.[1] ?? null };
}

/** Whether a browser's session still opens the console: 200, or 303 to the sign-in page. */
async function consoleStatus(b: Browser): Promise<number> {
  return (await b.get("/admin")).status;
}

Deno.test("[operators] disabled from the command line: password, sessions on every server and API tokens stop at once; enabled, the password signs in again", async (t) => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/kv.sqlite3`;
  const app = await startTestApp({ kvPath });
  // A second server on the same store, as Deploy's isolates or several processes are.
  const other = await startTestApp({ kvPath });
  try {
    await operatorBrowser(app, "ops@example.com");
    const leaver = await operatorBrowser(app, "leaver@example.com");
    const elsewhere = new Browser(other);
    elsewhere.cookies = new Map(leaver.cookies);
    const { token, record } = await createOperatorToken(app.server.ctx, "leaver@example.com", { actor: "test" });
    assert.equal(await consoleStatus(leaver), 200);
    assert.equal(await consoleStatus(elsewhere), 200, "the same session on the other server");
    assert.equal(await adminStatus(app, token), 200);
    const wrongPassword = await signIn(app, "leaver@example.com", "not the password");

    await t.step(
      "disable: done, credited to the operator who ran it from the command line, the token named as revoked",
      async () => {
        const disabled = await cli(kvPath, "disable", "--email", "Leaver@Example.com", ...AS_OPS);
        assert.equal(disabled.code, 0, disabled.stderr);
        assert.equal(disabled.json.email, "leaver@example.com");
        assert.equal(disabled.json.status, "disabled");
        assert.deepEqual(disabled.json.revokedTokenIds, [record.id]);
        const [entry] = await searchAudit(app.kv, { query: "operator.disable", limit: 5 });
        assert.equal(entry.actor, "ops@example.com (cli)");
        assert.equal(entry.target, "leaver@example.com");
        assert.deepEqual(entry.after, { status: "disabled", revoked: [record.id] });
      },
    );

    await t.step("the password no longer signs in, with the wrong password's answer", async () => {
      const refused = await signIn(app, "leaver@example.com", PASSWORD);
      assert.equal(refused.status, 401);
      assert.equal(refused.said, wrongPassword.said);
      assert.equal(refused.said, "Wrong email or password.");
      // The audit tells operators what the guesser is not told.
      const [failed] = await searchAudit(app.kv, { query: "signin.failed", limit: 1 });
      assert.deepEqual(failed.after, { reason: "operator disabled" });
    });

    await t.step("every session ends, on both servers, and the token gets 401", async () => {
      assert.equal(await consoleStatus(leaver), 303);
      assert.equal(await consoleStatus(elsewhere), 303);
      assert.equal(await adminStatus(app, token), 401);
      assert.equal(await adminStatus(other, token), 401);
    });

    await t.step("the list shows it; a new token for them is refused", async () => {
      const listed = await cli(kvPath, "list");
      const row = listed.json.find((o: { email: string }) => o.email === "leaver@example.com");
      assert.equal(row.status, "disabled");
      assert.equal(row.activeTokens, 0);
      assert.ok(row.lastSignInAt, "their last sign-in is recorded");
      const refused = await cli(kvPath, "token", "create", "leaver@example.com", ...AS_OPS);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /operator_disabled/);
    });

    await t.step("enable: the password signs in again; the old session and token stay ended", async () => {
      const enabled = await cli(kvPath, "enable", "--email", "leaver@example.com", ...AS_OPS);
      assert.equal(enabled.code, 0, enabled.stderr);
      assert.equal(enabled.json.status, "active");
      assert.equal((await signIn(app, "leaver@example.com", PASSWORD)).status, 303);
      assert.equal(await consoleStatus(leaver), 303);
      assert.equal(await consoleStatus(elsewhere), 303);
      assert.equal(await adminStatus(app, token), 401);
      const [entry] = await searchAudit(app.kv, { query: "operator.enable", limit: 1 });
      assert.equal(entry.actor, "ops@example.com (cli)");
      assert.equal(entry.target, "leaver@example.com");
    });

    await t.step("the last active operator cannot be disabled", async () => {
      assert.equal((await cli(kvPath, "disable", "--email", "leaver@example.com", ...AS_OPS)).code, 0);
      const refused = await cli(kvPath, "disable", "--email", "ops@example.com", ...AS_OPS);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /last_active_operator: ops@example\.com is the last active operator/);
      assert.equal((await signIn(app, "ops@example.com", PASSWORD)).status, 303, "still signs in");
    });

    await t.step("usage: disable and enable listed once, the token commands once", async () => {
      const usage = await cli(kvPath, "disable");
      assert.equal(usage.code, 2);
      for (const line of ["disable --email EMAIL", "enable --email EMAIL", "token create EMAIL", "token revoke"]) {
        assert.equal(usage.stderr.split(line).length - 1, 1, line);
      }
      assert.equal((await cli(kvPath, "disable", "--email", "nobody@example.com", ...AS_OPS)).code, 2);
    });
  } finally {
    await other.close();
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[operators] the console's Operators page: Disable asks first, then ends the operator's access; nobody disables themself; Enable", async (t) => {
  const app = await startTestApp();
  try {
    const ops = await operatorBrowser(app, "ops@example.com");
    const leaver = await operatorBrowser(app, "leaver@example.com");
    const { token } = await createOperatorToken(app.server.ctx, "leaver@example.com", { actor: "test" });
    const ids = {
      ops: (await getOperatorByEmail(app.kv, "ops@example.com"))!.id,
      leaver: (await getOperatorByEmail(app.kv, "leaver@example.com"))!.id,
    };
    const leaverStatus = `/admin/operators/${ids.leaver}/status`;

    await t.step("the page lists operators, is in the navigation, and asks before Disable", async () => {
      const page = await ops.get("/admin/operators");
      assert.equal(page.status, 200);
      assert.match(page.text, /<a href="\/admin\/operators" aria-current="page">Operators<\/a>/);
      assert.match(page.text, /<div>ops@example\.com \(you\)<\/div>/);
      assert.match(page.text, /leaver@example\.com/);
      assert.match(page.text, /there are no roles/);
      assert.match(
        page.text,
        /data-confirm="Disable leaver@example\.com\? Their password stops signing in and their sessions end at once; their API token is revoked\."/,
      );
      assert.ok(!page.text.includes(`/admin/operators/${ids.ops}/status`), "no Disable on your own row");
      assert.match(page.text, /<td data-label="API tokens">1 active<\/td>/);
      assert.equal(buttonClass(page.text, "Disable"), "danger small");
    });

    await t.step("without the page's script, a page of its own asks; nothing is done yet", async () => {
      const ask = await ops.post(leaverStatus, { status: "disabled" });
      assert.equal(ask.status, 200);
      assert.match(ask.text, /Please confirm/);
      assert.match(ask.text, /Disable leaver@example\.com\?/);
      assert.match(ask.text, /name="confirm" value="yes"/);
      assert.match(ask.text, /name="status" value="disabled"/);
      assert.equal(buttonClass(ask.text, "Disable operator"), "danger");
      assert.equal(await consoleStatus(leaver), 200, "still signed in");
      assert.equal(await adminStatus(app, token), 200);
    });

    await t.step("a post naming no status changes nothing, confirmed or not", async () => {
      for (const fields of [{ confirm: "yes" }, { status: "off", confirm: "yes" }] as Record<string, string>[]) {
        const odd = await ops.post(leaverStatus, fields);
        assert.ok(odd.status >= 400, `${JSON.stringify(fields)}: ${odd.status}`);
        assert.equal(await consoleStatus(leaver), 200, "still signed in");
      }
    });

    await t.step("confirmed: disabled, their session and token end, the audit names who did it", async () => {
      const done = await ops.post(leaverStatus, { status: "disabled", confirm: "yes" });
      assert.equal(done.status, 303);
      assert.equal(done.location, "/admin/operators");
      const page = await ops.get("/admin/operators");
      assert.match(page.text, /leaver@example\.com is disabled: their password no longer signs in/);
      assert.match(page.text, /<span class="bad">disabled /);
      assert.equal(buttonClass(page.text, "Enable"), "secondary small", "enabling takes nothing away");
      assert.equal(await consoleStatus(leaver), 303);
      assert.equal(await adminStatus(app, token), 401);
      assert.equal((await signIn(app, "leaver@example.com", PASSWORD)).status, 401);
      const [entry] = await searchAudit(app.kv, { query: "operator.disable", limit: 1 });
      assert.equal(entry.actor, "ops@example.com");
      assert.equal(entry.target, "leaver@example.com");
      assert.match((await ops.get("/admin/audit")).text, /disabled the operator <code>leaver@example\.com<\/code>/);
    });

    await t.step("their own account: refused, asked or confirmed, with the reason", async () => {
      for (const confirm of ["", "yes"]) {
        await ops.get("/admin/operators");
        const refused = await ops.post(`/admin/operators/${ids.ops}/status`, { status: "disabled", confirm });
        assert.equal(refused.status, 422, confirm);
        assert.match(refused.text, /Not disabled: You cannot disable your own account/, confirm);
      }
      assert.equal(await consoleStatus(ops), 200);
    });

    await t.step("enable: the password signs in again, the old session stays ended", async () => {
      await ops.get("/admin/operators");
      const done = await ops.post(leaverStatus, { status: "active" });
      assert.equal(done.status, 303);
      assert.match((await ops.get("/admin/operators")).text, /leaver@example\.com is enabled/);
      assert.equal((await signIn(app, "leaver@example.com", PASSWORD)).status, 303);
      assert.equal(await consoleStatus(leaver), 303);
      const [entry] = await searchAudit(app.kv, { query: "operator.enable", limit: 1 });
      assert.equal(entry.actor, "ops@example.com");
    });
  } finally {
    await app.close();
  }
});

Deno.test("[operators] of two first operators made at once with no one to name (no --actor), one is made, as cli; the other is refused and makes nothing", async () => {
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    // Both read a store with no operator before either writes: the write itself must refuse the second.
    const both = await Promise.allSettled([
      createFirstOperatorAccount(ctx, "one@example.com"),
      createFirstOperatorAccount(ctx, "two@example.com"),
    ]);
    const refused = both.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason);
    assert.equal(refused.length, 1, JSON.stringify(both.map((r) => r.status)));
    assert.ok(refused[0] instanceof ValidationError);
    assert.match(refused[0].message, /^--actor EMAIL is required: another operator was made at the same moment/);
    assert.deepEqual(refused[0].fields, { actor: "is required" });
    const made = (both.find((r) => r.status === "fulfilled") as PromiseFulfilledResult<{ operator: { email: string } }>)
      .value.operator.email;
    const other = made === "one@example.com" ? "two@example.com" : "one@example.com";
    assert.equal(await getOperatorByEmail(app.kv, other), null, "the refused one made nothing");
    const audit = (await searchAudit(app.kv, { query: "operator.create", limit: 10 }))
      .filter((e) => e.action === "operator.create");
    assert.deepEqual(audit.map((e) => [e.actor, e.target]), [["cli", made]]);

    // Later, one at a time: refused by the read, and an operator named as its maker still makes one.
    await assert.rejects(
      createFirstOperatorAccount(ctx, other),
      (err: Error) => err instanceof ValidationError && /the store has an operator already/.test(err.message),
    );
    await createOperatorAccount(ctx, other, { actor: `${made} (cli)` });
  } finally {
    await app.close();
  }
});

Deno.test("[operators] a store whose operators were made before the first operator's mark still refuses a first operator", async () => {
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    await createOperatorAccount(ctx, "old@example.com");
    // As an older version left it: operators, and no mark that there are.
    await app.kv.delete(["operators_any"]);
    await assert.rejects(
      createFirstOperatorAccount(ctx, "new@example.com"),
      (err: Error) => err instanceof ValidationError && /the store has an operator already/.test(err.message),
    );
    await createOperatorAccount(ctx, "new@example.com", { actor: "old@example.com (cli)" });
    assert.ok(await getOperatorByEmail(app.kv, "new@example.com"));
  } finally {
    await app.close();
  }
});

Deno.test("[operators] two disablings at once leave an operator who can sign in", async () => {
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    const [a, b] = await Promise.all(["a@example.com", "b@example.com"].map(async (email) => {
      const { operator } = await createOperatorAccount(ctx, email);
      await updateOperatorPassword(app.kv, operator.id, await hashPassword(PASSWORD, 1000));
      return (await getOperatorByEmail(app.kv, email))!;
    }));
    // From the console, each disabling the other.
    const crossed = await Promise.allSettled([
      disableOperator(ctx, b.id, { actor: a.email, by: a }),
      disableOperator(ctx, a.id, { actor: b.email, by: b }),
    ]);
    assert.equal(crossed.filter((r) => r.status === "fulfilled").length, 1, JSON.stringify(crossed));
    // From the command line, both at once.
    const enabled = crossed[0].status === "fulfilled" ? b : a;
    await enableOperator(ctx, enabled.id, { actor: "test" });
    const both = await Promise.allSettled([
      disableOperator(ctx, a.id, { actor: "cli" }),
      disableOperator(ctx, b.id, { actor: "cli" }),
    ]);
    const refused = both.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason);
    assert.equal(refused.length, 1);
    assert.ok(refused[0] instanceof OperatorDisableRefusedError);
    assert.equal(refused[0].code, "last_active_operator");
    const statuses = await Promise.all([a, b].map((o) => signIn(app, o.email, PASSWORD)));
    assert.deepEqual(statuses.map((s) => s.status).sort(), [303, 401]);
  } finally {
    await app.close();
  }
});

function buttonClass(html: string, label: string): string {
  const found = html.match(new RegExp(`<button type="submit"(?: class="([^"]*)")?>${label}</button>`));
  assert.ok(found, `a "${label}" button`);
  return found[1] ?? "";
}

Deno.test("[operators] an API token asked for while its operator is being disabled is refused, not stored beside the revoked ones (and so not working again after an enable)", async () => {
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    const { operator: leaving } = await createOperatorAccount(ctx, "leaving@example.com");
    await createOperatorAccount(ctx, "staying@example.com");
    // The token's maker reads the operator (active); the disabling commits; then the token would be stored. The
    // disabling revoked the tokens it listed, which this one was not among.
    let raced = false;
    const kv = new Proxy(ctx.kv, {
      get(target, prop) {
        if (prop === "get") {
          return async (key: Deno.KvKey) => {
            const entry = await target.get(key);
            if (!raced && key[0] === "operators" && key[1] === leaving.id) {
              raced = true;
              await disableOperator(ctx, leaving.id, { actor: "test" });
            }
            return entry;
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const racing = { ...ctx, kv } as typeof ctx;
    await assert.rejects(
      createOperatorToken(racing, leaving.email, { actor: "test" }),
      (err: unknown) => err instanceof AppError && err.code === "operator_disabled",
    );
    assert.ok(raced);
    await enableOperator(ctx, leaving.id, { actor: "test" });
    const tokens = (await listOperatorTokens(app.kv)).filter((t) => t.operatorId === leaving.id);
    assert.deepEqual(tokens.filter((t) => t.revokedAt === null), [], "no token of theirs works after the enable");
  } finally {
    await app.close();
  }
});

Deno.test("[operators] an API token made while its operator is being disabled (after the disabling listed their tokens, before it committed) does not outlive the disabling and work again after an enable", async () => {
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    const { operator: leaving } = await createOperatorAccount(ctx, "leaving@example.com");
    await createOperatorAccount(ctx, "staying@example.com");
    // The disabling lists the operator's tokens; right then a token is asked for (the operator still reads active),
    // and only then does the disabling commit.
    let made: string | null = null;
    const kv = new Proxy(ctx.kv, {
      get(target, prop) {
        if (prop === "list") {
          return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
            const inner = target.list(selector, options);
            if (made !== null || !("prefix" in selector) || selector.prefix[0] !== "operator_tokens") return inner;
            return (async function* () {
              for await (const e of inner) yield e;
              made = (await createOperatorToken(ctx, leaving.email, { actor: "test" })).token;
            })();
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    await disableOperator({ ...ctx, kv } as typeof ctx, leaving.id, { actor: "test" });
    assert.ok(made, "the token was made during the disabling");
    await enableOperator(ctx, leaving.id, { actor: "test" });
    const works = await authenticateOperatorToken(ctx, `Bearer ${made}`).then(() => true, () => false);
    assert.equal(works, false, "a token made before the disabling committed is not trusted after the enable");
  } finally {
    await app.close();
  }
});

Deno.test("[operators] several API tokens asked for at once for one operator are all made", async () => {
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    const { operator } = await createOperatorAccount(ctx, "bot@example.com");
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => createOperatorToken(ctx, operator.email, { actor: "test" })),
    );
    const failed = results.filter((r) => r.status === "rejected").map((r) =>
      String((r as PromiseRejectedResult).reason)
    );
    assert.deepEqual(failed, [], "no token creation fails because another token of the same operator was made");
  } finally {
    await app.close();
  }
});

Deno.test("[operators] a password change is not refused because an API token of the operator was made meanwhile", async () => {
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    const { operator } = await createOperatorAccount(ctx, "pw@example.com");
    // Right after the password change reads the operator, a token is made (an API client of theirs, say).
    let made = false;
    const kv = new Proxy(ctx.kv, {
      get(target, prop) {
        if (prop === "get") {
          return async (key: Deno.KvKey, o?: { consistency?: Deno.KvConsistencyLevel }) => {
            const e = await target.get(key, o);
            if (!made && key[0] === "operators") {
              made = true;
              await createOperatorToken(ctx, operator.email, { actor: "test" });
            }
            return e;
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    await updateOperatorPassword(kv, operator.id, "new-hash", { expected: operator });
    assert.ok(made);
  } finally {
    await app.close();
  }
});

Deno.test("[operators] a session token names its audience, and a portal session token is never taken for an operator's, even with an operator and a session stored under its ids; one issued before audiences still works", async () => {
  const { decodeJwt, SignJWT } = await import("jose");
  const { authenticateOperator, signIn } = await import("../lib/auth/operators.ts");
  const { createPortalLink, signInWithLink } = await import("../lib/auth/portal.ts");
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    const { password } = await createOperatorAccount(ctx, "ops@example.com");
    const { token, session, operator } = await signIn(ctx, { email: "ops@example.com", password, ip: "127.0.0.1" });
    assert.equal(decodeJwt(token).aud, "operator-session");
    assert.equal((await authenticateOperator(ctx, token))?.session.id, session.id);
    // A token from before audiences (live for up to 12 hours after an upgrade) still opens its session.
    const now = Math.floor(Date.now() / 1000);
    const legacy = (sid: string, sub: string) =>
      new SignJWT({ sid }).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setIssuedAt(now)
        .setExpirationTime(now + 3600).sign(ctx.sessionKey);
    assert.equal((await authenticateOperator(ctx, await legacy(session.id, operator.id)))?.session.id, session.id);

    // A shop's staff session: signed with the same key. Were the store ever to hold an operator and an operator
    // session under its ids, its token still is not an operator's.
    const link = await createPortalLink(ctx, app.shop.id, "ops@example.com");
    const portalToken = await signInWithLink(ctx, new URL(link).searchParams.get("token")!);
    const { sid, sub } = decodeJwt(portalToken) as { sid: string; sub: string };
    await app.kv.set(["operators", sub], { ...operator, id: sub });
    await app.kv.set(["operator_sessions", sid], { ...session, id: sid, operatorId: sub });
    assert.equal(await authenticateOperator(ctx, portalToken), null, "a portal session token");
    // Without an audience, only an operator session's id is taken.
    assert.equal(await authenticateOperator(ctx, await legacy(sid, sub)), null, "no audience, a portal session's id");
  } finally {
    await app.close();
  }
});
