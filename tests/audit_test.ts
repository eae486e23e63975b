/**
 * Every operator action that changes state writes its audit entry in the same atomic operation as the change: a crash
 * or a store error between two writes would leave the action done but unaudited. Each test records the commits an
 * action makes and finds its entry beside the keys it changes.
 */
import assert from "node:assert/strict";
import { changePassword, createOperatorAccount, signIn, signOut } from "../lib/auth/operators.ts";
import { createPortalLink, signInWithLink } from "../lib/auth/portal.ts";
import { createShop, createShopKey, revokeShopKey } from "../lib/shops.ts";
import { recordCommits, startTestApp, type TestApp } from "../fixtures/app.ts";

/** The keys (their first part) of the one commit of `action` that wrote an audit entry; fails unless there is one. */
async function auditedCommit(app: TestApp, action: () => Promise<unknown>): Promise<string[]> {
  const recorded = recordCommits(app.kv);
  await action().finally(recorded.stop);
  const audited = recorded.commits.filter((keys) => keys.includes("audit"));
  assert.equal(audited.length, 1, `one commit with an audit entry: ${JSON.stringify(recorded.commits)}`);
  return audited[0];
}

Deno.test("[audit] a shop, its keys made and revoked are audited in the write that stores them", async () => {
  const app = await startTestApp();
  try {
    const now = Date.now();
    const by = { actor: "ops@example.com", now };
    let shopId = "";
    const created = await auditedCommit(app, async () => {
      shopId = (await createShop(app.kv, { name: "Audited" }, { ...by, allowLocalUrls: true })).shop.id;
    });
    assert.deepEqual(created.toSorted(), ["api_keys", "api_keys_by_shop", "audit", "shops"]);
    let keyId = "";
    const keyMade = await auditedCommit(app, async () => {
      keyId = (await createShopKey(app.kv, shopId, by)).record.id;
    });
    assert.deepEqual(keyMade.toSorted(), ["api_keys", "api_keys_by_shop", "audit"]);
    const keyRevoked = await auditedCommit(app, () => revokeShopKey(app.kv, { shopId, keyId }, by));
    assert.deepEqual(keyRevoked.toSorted(), ["api_keys", "audit"]);
  } finally {
    await app.close();
  }
});

Deno.test("[audit] an operator made, signing in, changing their password and signing out: each audited in the write that does it", async () => {
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    let password = "";
    const made = await auditedCommit(app, async () => {
      password = (await createOperatorAccount(ctx, "audited@example.com")).password;
    });
    assert.deepEqual(made.toSorted(), ["audit", "operators", "operators_any", "operators_by_email"]);
    let opened!: Awaited<ReturnType<typeof signIn>>;
    const signedIn = await auditedCommit(app, async () => {
      opened = await signIn(ctx, { email: "audited@example.com", password, ip: "127.0.0.1" });
    });
    assert.deepEqual(signedIn.toSorted(), ["audit", "operator_last_signin", "operator_sessions"]);
    const changed = await auditedCommit(
      app,
      () =>
        changePassword(ctx, opened, { current: password, next: "a long new password", repeat: "a long new password" }),
    );
    // The old session ends and the new one starts in the same write as the password.
    assert.deepEqual(changed.toSorted(), ["audit", "operator_sessions", "operator_sessions", "operators"]);
    const signedOut = await auditedCommit(app, () => signOut(ctx, opened.session));
    assert.deepEqual(signedOut.toSorted(), ["audit", "operator_sessions"]);
  } finally {
    await app.close();
  }
});

Deno.test("[audit] a portal sign-in uses its link up, opens its session and is audited in one write", async () => {
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    const link = await createPortalLink(ctx, app.shop.id, "ops@example.com");
    const token = new URL(link).searchParams.get("token")!;
    const signedIn = await auditedCommit(app, () => signInWithLink(ctx, token));
    assert.deepEqual(signedIn.toSorted(), ["audit", "portal_links_used", "portal_sessions"]);
  } finally {
    await app.close();
  }
});
