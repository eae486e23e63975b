/**
 * Issue 12: postbacks signed with a shop's Ed25519 key pair (Standard Webhooks v1a), both
 * signatures during a switch or rotation, and signed redirects back to the shop, checked with
 * the documentation's own WebCrypto snippets, the Python snippet, the console, the portal, the CLI
 * and the demo shop.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import {
  addCliOperator,
  buyerSettles,
  callInit,
  CLI_OPERATOR,
  freePort,
  paymentBody,
  runShopCli,
  startShopReceiver,
  startTestApp,
  type TestApp,
  waitFor,
} from "../fixtures/app.ts";
import { Browser, operatorBrowser } from "../fixtures/browser.ts";
import { createPortalLink } from "../lib/auth/portal.ts";
import { getShop, getShopEntry, replaceShop } from "../lib/db/shops.ts";
import { listDemoPostbacks } from "../lib/db/demo.ts";
import { checkDemoRedirect } from "../lib/demo.ts";
import { newSigningKeyPair, newWebhookSecret, webhookHeaders } from "../lib/relay/signing.ts";
import {
  endSigningOverlap,
  NoSigningOverlapError,
  REDIRECT_SIGNER_TTL_MS,
  rotateShopSecret,
  SECRET_OVERLAP_MS,
  setRedirectSigning,
  shopSigning,
  SigningLimitError,
  signingSecrets,
  switchShopSigning,
} from "../lib/shops.ts";
import type { AuditEntry } from "../lib/db/audit.ts";
import { verifyPostback } from "../docs/snippets/verify_webcrypto.ts";
import { verifyRedirect } from "../docs/snippets/verify_redirect.ts";

const SNIPPETS = new URL("../docs/snippets/", import.meta.url);

async function paidPostback(app: TestApp, overrides: Record<string, unknown> = {}) {
  const shop = startShopReceiver();
  try {
    const init = await callInit(
      app,
      paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl: shop.url, ...overrides }),
    );
    assert.equal(init.status, 201);
    const backToShop = await buyerSettles(init.body.url, "paid");
    const postback = await waitFor("the postback", () => shop.received[0]);
    return { paymentId: init.body.id as string, backToShop, postback };
  } finally {
    await shop.close();
  }
}

const entriesOf = (headers: Headers) => headers.get("webhook-signature")!.split(" ").map((e) => e.split(",")[0]);

Deno.test("[signatures] a shop on key pairs gets postbacks that verify with its public key and fail with any other", async () => {
  const app = await startTestApp();
  try {
    const { publicKey } = await switchShopSigning(app.kv, app.shop.id, {
      actor: "test",
      now: Date.now(),
      scheme: "ed25519",
      overlapMs: 0,
    });
    assert.match(publicKey!, /^whpk_/);
    const { postback } = await paidPostback(app);
    assert.deepEqual(entriesOf(postback.headers), ["v1a"]);
    const body = await verifyPostback(publicKey!, postback.headers, postback.body) as { type: string };
    assert.equal(body.type, "payment.succeeded");
    await assert.rejects(
      verifyPostback(newSigningKeyPair().publicKey, postback.headers, postback.body),
      /no valid signature/,
    );
    await assert.rejects(verifyPostback(app.shop.webhookSecret, postback.headers, postback.body), /no valid signature/);
    await assert.rejects(
      verifyPostback(publicKey!, postback.headers, postback.body.replace("succeeded", "failed")),
      /no valid signature/,
    );
    // The official library knows only v1: a key-pair postback is not for it (hence the WebCrypto snippet).
    assert.throws(() =>
      new Webhook(app.shop.webhookSecret).verify(postback.body, Object.fromEntries(postback.headers))
    );
  } finally {
    await app.close();
  }
});

Deno.test("[signatures] a switch or rotation signs with the old and the new key for the overlap, then the new only", async (t) => {
  const app = await startTestApp();
  try {
    const now = Date.now();
    const first = await switchShopSigning(app.kv, app.shop.id, { actor: "test", now, scheme: "ed25519" });
    await t.step("switching from the secret: v1 with the old secret and v1a with the new key", async () => {
      const { postback } = await paidPostback(app);
      assert.deepEqual(entriesOf(postback.headers), ["v1a", "v1"]);
      new Webhook(app.shop.webhookSecret).verify(postback.body, Object.fromEntries(postback.headers));
      assert.ok(await verifyPostback(first.publicKey!, postback.headers, postback.body));
      assert.ok(await verifyPostback([first.publicKey!, app.shop.webhookSecret], postback.headers, postback.body));
    });
    await t.step("the overlap ends after 24 hours", async () => {
      const shop = (await getShop(app.kv, app.shop.id))!;
      assert.deepEqual(shop.previousSecrets!.map((p) => p.expiresAt), [now + SECRET_OVERLAP_MS]);
      assert.equal(signingSecrets(shop, now + SECRET_OVERLAP_MS - 1).length, 2);
      assert.deepEqual(signingSecrets(shop, now + SECRET_OVERLAP_MS), [shop.webhookSecret]);
    });
    await t.step(
      "rotating the key pair within the overlap: every key and the old secret verify, each alone",
      async () => {
        const second = await switchShopSigning(app.kv, app.shop.id, { actor: "test", now: Date.now() });
        assert.notEqual(second.publicKey, first.publicKey);
        const { postback } = await paidPostback(app);
        assert.deepEqual(entriesOf(postback.headers), ["v1a", "v1a", "v1"]);
        assert.ok(await verifyPostback(first.publicKey!, postback.headers, postback.body));
        assert.ok(await verifyPostback(second.publicKey!, postback.headers, postback.body));
        assert.ok(await verifyPostback(app.shop.webhookSecret, postback.headers, postback.body), "until its own end");
        await assert.rejects(verifyPostback(newWebhookSecret(), postback.headers, postback.body), /no valid signature/);
      },
    );
  } finally {
    await app.close();
  }
});

Deno.test("[signatures] a second rotation within the overlap keeps the oldest secret signing until its own overlap ends", async (t) => {
  const app = await startTestApp();
  try {
    const oldest = app.shop.webhookSecret;
    const firstAt = Date.now();
    const secondAt = firstAt + 60_000;
    const first = await rotateShopSecret(app.kv, app.shop.id, { actor: "test", now: firstAt });
    // The new secret was lost, say: rotated again an hour into the overlap, before the shop switched.
    const second = await rotateShopSecret(app.kv, app.shop.id, { actor: "test", now: secondAt });
    await t.step("a postback carries one signature per secret, and each verifies it alone", async () => {
      const { postback, backToShop } = await paidPostback(app);
      assert.deepEqual(entriesOf(postback.headers), ["v1", "v1", "v1"]);
      for (const [name, secret] of [["oldest", oldest], ["first", first.secret], ["newest", second.secret]]) {
        const headers = Object.fromEntries(postback.headers);
        assert.doesNotThrow(() => new Webhook(secret).verify(postback.body, headers), name);
        assert.ok(await verifyRedirect(secret, backToShop), `${name}: the redirect too`);
      }
    });
    await t.step("each stops at the end it was given, the oldest first", async () => {
      const shop = (await getShop(app.kv, app.shop.id))!;
      assert.deepEqual(signingSecrets(shop, firstAt + SECRET_OVERLAP_MS - 1), [second.secret, first.secret, oldest]);
      assert.deepEqual(signingSecrets(shop, firstAt + SECRET_OVERLAP_MS), [second.secret, first.secret]);
      assert.deepEqual(signingSecrets(shop, secondAt + SECRET_OVERLAP_MS), [second.secret]);
    });
  } finally {
    await app.close();
  }
});

/** The audit entries of a shop with the given action, oldest first. */
async function auditOf(app: TestApp, action: string): Promise<AuditEntry[]> {
  const all = await Array.fromAsync(app.kv.list<AuditEntry>({ prefix: ["audit"] }));
  return all.map((e) => e.value).filter((e) => e.target === app.shop.id && e.action === action);
}

Deno.test("[signatures] at three signing, an overlap of 0 is no overlap: the replaced one stops at once and does not count, so the rotation goes through", async () => {
  const app = await startTestApp();
  try {
    const now = Date.now();
    await switchShopSigning(app.kv, app.shop.id, { actor: "test", now, scheme: "ed25519" });
    const rotated = await rotateShopSecret(app.kv, app.shop.id, { actor: "test", now: now + 1000 });
    const [, ...previous] = signingSecrets((await getShop(app.kv, app.shop.id))!, now + 2000);
    assert.equal(previous.length, 2, "three sign");
    const none = await switchShopSigning(app.kv, app.shop.id, {
      actor: "test",
      now: now + 2000,
      scheme: "hmac",
      overlapMs: 0,
    });
    const shop = (await getShop(app.kv, app.shop.id))!;
    assert.deepEqual(signingSecrets(shop, now + 2000), [none.secret!, ...previous], "the replaced one signs no more");
    assert.ok(!signingSecrets(shop, now + 2000).includes(rotated.secret));
    const [entry] = await auditOf(app, "shop.rotate_secret");
    const { previousSigning: after } = entry.after as { previousSigning: string[] };
    assert.equal(after.length, 2);
    assert.deepEqual(
      after,
      (entry.before as { previousSigning: string[] }).previousSigning,
      "the replaced one not added",
    );
    // Still three sign: a rotation with an overlap is refused, as before.
    await assert.rejects(
      switchShopSigning(app.kv, app.shop.id, { actor: "test", now: now + 3000, scheme: "hmac" }),
      SigningLimitError,
    );
  } finally {
    await app.close();
  }
});

Deno.test("[signatures] a third rotation within the overlaps is refused, changes nothing and is audited as refused; ending the overlap stops every previous one", async (t) => {
  const app = await startTestApp();
  try {
    const now = Date.now();
    const switched = await switchShopSigning(app.kv, app.shop.id, { actor: "test", now, scheme: "ed25519" });
    const rotated = await rotateShopSecret(app.kv, app.shop.id, { actor: "test", now: now + 1000 });
    await t.step("three sign: a fourth would end one early, so it is refused, saying until when", async () => {
      const before = await getShopEntry(app.kv, app.shop.id);
      for (const scheme of ["hmac", "ed25519"] as const) {
        await assert.rejects(
          switchShopSigning(app.kv, app.shop.id, { actor: "test", now: now + 2000, scheme }),
          (err) => {
            assert.ok(err instanceof SigningLimitError);
            assert.equal(err.status, 409);
            assert.equal(err.freesAt, now + SECRET_OVERLAP_MS, "when the oldest stops");
            assert.match(err.message, /^3 secrets or keys sign this shop's postbacks already, the most at once\./);
            assert.match(err.message, /stops signing at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: rotate again after that/);
            assert.ok(!err.message.includes("whsec_") && !err.message.includes("whsk_"));
            return true;
          },
        );
      }
      const after = await getShopEntry(app.kv, app.shop.id);
      assert.equal(after.versionstamp, before.versionstamp, "nothing written");
      assert.equal((await auditOf(app, "shop.switch_signing")).length, 2, "no rotation audited");
      // Each refusal is: the rotation asked for, why it was refused, the signing it left as it was; no secret.
      const [rotation, switching, ...more] = [
        ...await auditOf(app, "shop.rotate_secret.refused"),
        ...await auditOf(app, "shop.switch_signing.refused"),
      ];
      assert.equal(more.length, 0);
      assert.equal((rotation.after as Record<string, unknown>).requestedScheme, "hmac");
      assert.equal((switching.after as Record<string, unknown>).requestedScheme, "ed25519");
      for (const entry of [rotation, switching]) {
        assert.equal(entry.actor, "test");
        assert.equal(entry.at, now + 2000);
        const { refused, reason, overlapHours, previousSigning } = entry.after as Record<string, unknown>;
        assert.equal(refused, "signing_limit");
        assert.match(String(reason), /^3 secrets or keys sign this shop's postbacks already, the most at once\./);
        assert.equal(overlapHours, 24);
        assert.deepEqual(previousSigning, (entry.before as Record<string, unknown>).previousSigning);
        assert.equal((previousSigning as string[]).length, 2);
      }
      const audit = JSON.stringify(await Array.fromAsync(app.kv.list({ prefix: ["audit"] })));
      assert.ok(!audit.includes("whsec_") && !audit.includes("whsk_"), "no secret in the audit log");
      assert.equal(
        signingSecrets(after.value!, now + SECRET_OVERLAP_MS).length,
        2,
        "and one is free once the oldest ends",
      );
    });
    await t.step("ending the overlap: only the current secret signs, from the next postback on; audited", async () => {
      await endSigningOverlap(app.kv, app.shop.id, { actor: "ops@example.com", now: now + 3000 });
      const shop = (await getShop(app.kv, app.shop.id))!;
      assert.deepEqual(signingSecrets(shop, now + 3000), [rotated.secret]);
      const { postback } = await paidPostback(app);
      assert.deepEqual(entriesOf(postback.headers), ["v1"]);
      new Webhook(rotated.secret).verify(postback.body, Object.fromEntries(postback.headers));
      await assert.rejects(verifyPostback(switched.publicKey!, postback.headers, postback.body), /no valid signature/);
      await assert.rejects(
        verifyPostback(app.shop.webhookSecret, postback.headers, postback.body),
        /no valid signature/,
      );
      const [entry, ...more] = await auditOf(app, "shop.end_signing_overlap");
      assert.equal(more.length, 0);
      assert.equal(entry.actor, "ops@example.com");
      const until = (ms: number) => new Date(ms).toISOString();
      assert.deepEqual((entry.before as { previousSigning: string[] }).previousSigning, [
        `ed25519 until ${until(now + 1000 + SECRET_OVERLAP_MS)}`,
        `hmac until ${until(now + SECRET_OVERLAP_MS)}`,
      ]);
      assert.deepEqual((entry.after as { previousSigning: string[] }).previousSigning, []);
      const audit = JSON.stringify(await Array.fromAsync(app.kv.list({ prefix: ["audit"] })));
      assert.ok(!audit.includes("whsec_") && !audit.includes("whsk_"), "no secret in the audit log");
    });
    await t.step("with no overlap left there is nothing to end; a rotation goes through again", async () => {
      await assert.rejects(
        endSigningOverlap(app.kv, app.shop.id, { actor: "test", now: now + 4000 }),
        (err) => err instanceof NoSigningOverlapError && /no overlap to end/.test(err.message),
      );
      assert.equal((await auditOf(app, "shop.end_signing_overlap")).length, 1);
      const again = await rotateShopSecret(app.kv, app.shop.id, { actor: "test", now: now + 5000 });
      const shop = (await getShop(app.kv, app.shop.id))!;
      assert.deepEqual(signingSecrets(shop, now + 5000), [again.secret, rotated.secret]);
    });
  } finally {
    await app.close();
  }
});

Deno.test("[signatures] a shop stored with the one previous secret of before keeps it signing through another rotation", async () => {
  const app = await startTestApp();
  try {
    const entry = await getShopEntry(app.kv, app.shop.id);
    const legacy = newWebhookSecret();
    const until = Date.now() + 3_600_000;
    const audit = {
      at: Date.now(),
      actor: "test",
      action: "shop.update" as const,
      target: app.shop.id,
      before: null,
      after: null,
    };
    assert.ok(
      await replaceShop(app.kv, entry as Deno.KvEntry<NonNullable<typeof entry.value>>, {
        ...entry.value!,
        previousWebhookSecret: legacy,
        previousSecretExpiresAt: until,
      }, audit),
    );
    const { secret } = await rotateShopSecret(app.kv, app.shop.id, { actor: "test", now: Date.now() });
    const shop = (await getShop(app.kv, app.shop.id))!;
    assert.deepEqual(signingSecrets(shop, Date.now()), [secret, app.shop.webhookSecret, legacy]);
    assert.deepEqual(signingSecrets(shop, until), [secret, app.shop.webhookSecret], "until its own end");
    assert.ok(!("previousWebhookSecret" in shop) && !("previousSecretExpiresAt" in shop), "kept in the list's form");
  } finally {
    await app.close();
  }
});

Deno.test("[signatures] the buyer comes back with signed parameters, the shop's own query string and fragment intact", async (t) => {
  const app = await startTestApp();
  try {
    const successUrl = "http://127.0.0.1:9/shop/done?order=A%201&note=x+y#receipt";
    const { paymentId, backToShop } = await paidPostback(app, { successUrl });
    await t.step("the parameters are added before the fragment, after the shop's own", async () => {
      assert.ok(backToShop.startsWith("http://127.0.0.1:9/shop/done?order=A%201&note=x+y&apay_payment="), backToShop);
      assert.ok(backToShop.endsWith("#receipt"), backToShop);
      const q = new URL(backToShop).searchParams;
      assert.equal(q.get("order"), "A 1");
      assert.equal(q.get("apay_payment"), paymentId);
      assert.ok(["pending", "succeeded"].includes(q.get("apay_status")!), "our status when the buyer passed");
      assert.deepEqual(await verifyRedirect(app.shop.webhookSecret, backToShop), {
        paymentId,
        status: q.get("apay_status"),
      });
    });
    const again = await fetch(`${app.baseUrl}/integration/success?id=${paymentId}`, { redirect: "manual" });
    await again.body?.cancel();
    const signed = again.headers.get("location")!;
    await t.step("once settled the status says so, and the signature verifies", async () => {
      assert.deepEqual(await verifyRedirect(app.shop.webhookSecret, signed), { paymentId, status: "succeeded" });
    });
    await t.step("a tampered parameter, another key or an old timestamp fails", async () => {
      for (const [name, value] of [["apay_status", "failed"], ["apay_payment", "pay_someoneelse"], ["apay_ts", "1"]]) {
        const url = new URL(signed);
        url.searchParams.set(name, value);
        assert.equal(await verifyRedirect(app.shop.webhookSecret, url), null, name);
      }
      assert.equal(await verifyRedirect(newWebhookSecret(), signed), null);
      assert.equal(await verifyRedirect(app.shop.webhookSecret, signed, Math.floor(Date.now() / 1000) + 301), null);
      const noSig = new URL(signed);
      noSig.searchParams.delete("apay_sig");
      assert.equal(await verifyRedirect(app.shop.webhookSecret, noSig), null);
    });
    await t.step("a shop on key pairs: Ed25519, verified with its public key", async () => {
      const { publicKey } = await switchShopSigning(app.kv, app.shop.id, {
        actor: "test",
        now: Date.now(),
        scheme: "ed25519",
        overlapMs: 0,
      });
      const res = await fetch(`${app.baseUrl}/integration/success?id=${paymentId}`, { redirect: "manual" });
      await res.body?.cancel();
      const url = res.headers.get("location")!;
      assert.match(new URL(url).searchParams.get("apay_sig")!, /^v1a,/);
      assert.deepEqual(await verifyRedirect(publicKey!, url), { paymentId, status: "succeeded" });
      assert.equal(await verifyRedirect(app.shop.webhookSecret, url), null);
      assert.equal(await verifyRedirect(newSigningKeyPair().publicKey, url), null);
    });
    await t.step("a shop that turned signed redirects off gets its URL exactly as it gave it", async () => {
      await setRedirectSigning(app.kv, app.shop.id, false, { actor: "test", now: Date.now() });
      const res = await fetch(`${app.baseUrl}/integration/success?id=${paymentId}`, { redirect: "manual" });
      await res.body?.cancel();
      assert.equal(res.headers.get("location"), successUrl);
      await setRedirectSigning(app.kv, app.shop.id, true, { actor: "test", now: Date.now() });
      const back = await fetch(`${app.baseUrl}/integration/success?id=${paymentId}`, { redirect: "manual" });
      await back.body?.cancel();
      assert.match(back.headers.get("location")!, /&apay_payment=/);
    });
  } finally {
    await app.close();
  }
});

Deno.test("[signatures] a change made by another isolate reaches this one's redirects within the cache's time", async () => {
  const app = await startTestApp();
  const realNow = app.server.ctx.now;
  try {
    const init = await callInit(app, paymentBody());
    const location = async () => {
      const res = await fetch(`${app.baseUrl}/integration/error?id=${init.body.id}`, { redirect: "manual" });
      await res.body?.cancel();
      return res.headers.get("location")!;
    };
    assert.ok(await verifyRedirect(app.shop.webhookSecret, await location()));
    // Another isolate rotates: this one's cache does not hear of it.
    const entry = await getShopEntry(app.kv, app.shop.id);
    const rotated = newWebhookSecret();
    const audit = {
      at: Date.now(),
      actor: "test",
      action: "shop.rotate_secret" as const,
      target: app.shop.id,
      before: null,
      after: null,
    };
    assert.ok(
      await replaceShop(app.kv, entry as Deno.KvEntry<NonNullable<typeof entry.value>>, {
        ...entry.value!,
        webhookSecret: rotated,
        signRedirects: true,
      }, audit),
    );
    assert.equal(await verifyRedirect(rotated, await location()), null, "still the cached secret");
    app.server.ctx.now = () => realNow() + REDIRECT_SIGNER_TTL_MS + 1;
    const later = await location();
    assert.ok(await verifyRedirect(rotated, later, Math.floor(app.server.ctx.now() / 1000)));
  } finally {
    app.server.ctx.now = realNow;
    await app.close();
  }
});

Deno.test("[signatures] the console switches a shop to key pairs and shows the public key; the portal shows it too; no secret leaks", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    const shopPage = `/admin/shops/${app.shop.id}`;
    await b.get(shopPage);
    const switched = await b.post(`${shopPage}/signing`, { scheme: "ed25519", confirm: "yes" });
    assert.equal(switched.status, 303);
    const page = (await b.get(shopPage)).text;
    const shop = (await getShop(app.kv, app.shop.id))!;
    const { publicKey } = shopSigning(shop);
    assert.ok(publicKey && page.includes(publicKey), "the public key on the shop page");
    assert.match(page, /Rotation in progress/);
    assert.ok(!page.includes(shop.webhookSecret) && !page.includes("whsk_"), "never the private key");
    assert.ok(!page.includes(app.shop.webhookSecret));

    const offAsk = await b.post(`${shopPage}/redirect-signing`, { on: "0" });
    assert.match(offAsk.text, /Turn signed redirects off\?/, "turning them off asks first without JavaScript");
    assert.notEqual((await getShop(app.kv, app.shop.id))!.signRedirects, false, "nothing changed yet");
    assert.match((await b.get(shopPage)).text, /data-confirm="Turn signed redirects off\?/, "and with it");
    const off = await b.post(`${shopPage}/redirect-signing`, { on: "0", confirm: "yes" });
    assert.equal(off.status, 303);
    assert.equal((await getShop(app.kv, app.shop.id))!.signRedirects, false);

    const ask = await b.post(`${shopPage}/signing`, { scheme: "hmac" });
    assert.match(ask.text, /Switch this shop back to a shared secret\?/, "asks first without JavaScript");
    assert.equal(shopSigning((await getShop(app.kv, app.shop.id))!).scheme, "ed25519", "nothing changed yet");
    const back = await b.post(`${shopPage}/signing`, { scheme: "hmac", confirm: "yes" });
    assert.equal(back.status, 303);
    const secret = (await b.get(shopPage)).text.match(/whsec_[A-Za-z0-9+/=]+/)?.[0];
    assert.ok(secret, "a new shared secret, shown once");
    assert.equal((await getShop(app.kv, app.shop.id))!.webhookSecret, secret);
    assert.ok(!(await b.get(shopPage)).text.includes(secret), "and only once");

    const audit = JSON.stringify(
      await Array.fromAsync(app.kv.list({ prefix: [] })).then((all) =>
        all.filter((e) => String(e.key[0]).startsWith("audit")).map((e) => e.value)
      ),
    );
    assert.ok(audit.includes(publicKey), "the audit log names the public key");
    assert.ok(!audit.includes("whsk_") && !audit.includes("whsec_"), "and no secret");

    // The shop's staff see how postbacks are signed in their portal: which sign, until when.
    await endSigningOverlap(app.kv, app.shop.id, { actor: "test", now: Date.now() });
    await switchShopSigning(app.kv, app.shop.id, { actor: "test", now: Date.now(), scheme: "ed25519" });
    const portalKey = shopSigning((await getShop(app.kv, app.shop.id))!).publicKey!;
    const link = new URL(await createPortalLink(app.server.ctx, app.shop.id, "test"));
    const staff = new Browser(app);
    await staff.get(link.pathname + link.search);
    assert.equal((await staff.post("/portal/signin", { token: link.searchParams.get("token")! })).status, 303);
    const portal = (await staff.get("/portal/deliveries")).text;
    assert.ok(portal.includes(portalKey), "the public key in the portal");
    assert.match(portal, /<strong>Current<\/strong> key pair \(v1a\): signs until it is replaced/);
    assert.match(
      portal,
      /<strong>Previous<\/strong> shared secret \(v1\) ending in …\S{4}: signs until \d{4}-[\d:\- ]+ UTC, then stops/,
    );
    assert.ok(!portal.includes("whsk_") && !portal.includes("whsec_"));
    assert.ok(!portal.includes('action="/admin/'), "no operator forms in the portal");
  } finally {
    await app.close();
  }
});

Deno.test("[signatures] the demo shop shows verified for the redirect and the postback, with a secret and with a key pair", async (t) => {
  const app = await startTestApp({ env: { DEMO: "1" } });
  try {
    const buyAndReturn = async () => {
      const buy = await fetch(`${app.baseUrl}/demo/buy`, { method: "POST", redirect: "manual" });
      await buy.body?.cancel();
      const back = await buyerSettles(buy.headers.get("location")!, "paid");
      assert.match(back, /\/demo\/result\?outcome=success&order=demo_[^&]+&apay_payment=pay_/);
      return await fetch(back).then((r) => r.text());
    };
    await t.step("with the shared secret", async () => {
      assert.match(await buyAndReturn(), /data-redirect-signature="verified">verified</);
      await waitFor("a verified postback", async () => (await listDemoPostbacks(app.kv, 10)).length === 1 || undefined);
      assert.match(await fetch(`${app.baseUrl}/demo`).then((r) => r.text()), /class="ok">verified</);
    });
    await t.step("on a key pair (v1a only)", async () => {
      const demo = app.server.demo!;
      await switchShopSigning(app.kv, demo.shopId, { actor: "test", now: Date.now(), scheme: "ed25519", overlapMs: 0 });
      assert.match(await buyAndReturn(), /data-redirect-signature="verified">verified</);
      const kept = await waitFor("two postbacks", async () => {
        const list = await listDemoPostbacks(app.kv, 10);
        return list.length === 2 ? list : undefined;
      });
      assert.ok(kept.every((p) => p.verified));
    });
    await t.step(
      "the page says paid only on a verified redirect of its own order, never on the URL's word",
      async () => {
        const buy = await fetch(`${app.baseUrl}/demo/buy`, { method: "POST", redirect: "manual" });
        await buy.body?.cancel();
        const back = new URL(await buyerSettles(buy.headers.get("location")!, "paid"));
        const order = back.searchParams.get("order")!;
        // Back through our success wrapper once the provider's word has come: signed as succeeded.
        const paid = await waitFor("the payment succeeded", async () => {
          const res = await fetch(`${app.baseUrl}/integration/success?id=${back.searchParams.get("apay_payment")}`, {
            redirect: "manual",
          });
          await res.body?.cancel();
          const to = new URL(res.headers.get("location")!);
          return to.searchParams.get("apay_status") === "succeeded" ? to : undefined;
        });
        const own = await fetch(paid).then((r) => r.text());
        assert.match(own, /<h1>Thank you!<\/h1>/);
        // The same signed parameters on another order's page: refused, and no thanks.
        paid.searchParams.set("order", "demo_someone_else");
        const other = await fetch(paid).then((r) => r.text());
        assert.match(other, /data-redirect-signature="other_order">INVALID: another order's payment</);
        assert.doesNotMatch(other, /Thank you/);
        // A lookup of the order that got no answer proves neither way: not "another order's", and no thanks.
        const unanswered = await checkDemoRedirect(app.server.ctx, app.server.demo!, {
          query: new URL(paid).searchParams,
          order,
          selfUrl: `http://127.0.0.1:${freePort()}`,
        });
        assert.deepEqual(unanswered, { state: "unchecked" });
        // "success" typed into the URL by hand proves nothing.
        const typed = await fetch(`${app.baseUrl}/demo/result?outcome=success&order=${order}`).then((r) => r.text());
        assert.match(typed, /<h1>We are confirming your payment<\/h1>/);
        assert.doesNotMatch(typed, /Thank you/);
      },
    );
    await t.step("a tampered redirect shows INVALID", async () => {
      const html = await fetch(
        `${app.baseUrl}/demo/result?outcome=success&order=x&apay_payment=pay_x&apay_status=succeeded&apay_ts=${
          Math.floor(Date.now() / 1000)
        }&apay_sig=v1a%2CAAAA`,
      ).then((r) => r.text());
      assert.match(html, /data-redirect-signature="invalid">INVALID</);
    });
  } finally {
    await app.close();
  }
});

function pythonWithCryptography(): boolean {
  try {
    return new Deno.Command("python3", { args: ["-c", "import cryptography"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "[signatures] the Python snippet verifies v1a postbacks with the public key",
  ignore: !pythonWithCryptography(),
  async fn() {
    const pair = newSigningKeyPair();
    const secret = newWebhookSecret();
    const body = JSON.stringify({ type: "payment.succeeded", data: { id: "o-1" } });
    const now = Math.floor(Date.now() / 1000);
    const both = webhookHeaders([pair.privateKey, secret], "msg_py", now, body);
    const keyOnly = webhookHeaders([pair.privateKey], "msg_py", now, body);
    const cases = [
      { secret: pair.publicKey, headers: both, body },
      { secret, headers: both, body },
      { secret: newSigningKeyPair().publicKey, headers: both, body },
      { secret: pair.publicKey, headers: keyOnly, body: body + " " },
      { secret, headers: keyOnly, body },
    ];
    const driver = `
import json, sys
sys.path.insert(0, sys.argv[1])
from verify import verify_postback
results = []
for case in json.load(sys.stdin):
    try:
        results.append({"ok": True, "data": verify_postback(case["secret"], case["headers"], case["body"].encode())})
    except ValueError as e:
        results.append({"ok": False, "error": str(e)})
print(json.dumps(results))`;
    const child = new Deno.Command("python3", {
      args: ["-c", driver, SNIPPETS.pathname],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { PYTHONDONTWRITEBYTECODE: "1" },
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify(cases)));
    await writer.close();
    const out = await child.output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const results = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.deepEqual(results[0], { ok: true, data: JSON.parse(body) });
    assert.deepEqual(results[1], { ok: true, data: JSON.parse(body) });
    assert.deepEqual(results.slice(2), [
      { ok: false, error: "no valid signature" },
      { ok: false, error: "no valid signature" },
      { ok: false, error: "no valid signature" },
    ]);
  },
});

Deno.test("[signatures] the CLI switches a shop to key pairs and lists its public key, never the private one", async () => {
  const dir = await Deno.makeTempDir();
  const run = (...args: string[]) => runShopCli(`${dir}/kv.sqlite3`, ...args);
  try {
    await addCliOperator(`${dir}/kv.sqlite3`);
    const created = (await run("create", "--name", "Acme")).json;
    const switched = await run("signing", created.shopId, "ed25519", "--overlap-hours", "2");
    assert.match(switched.json.publicKey, /^whpk_/);
    assert.ok(!switched.text.includes("whsk_"));
    assert.equal(switched.json.previousSigning.length, 1);
    assert.equal(switched.json.previousSigning[0].signingScheme, "hmac");
    const signsUntil = Date.parse(switched.json.previousSigning[0].signsUntil);
    assert.ok(Math.abs(signsUntil - (Date.now() + 2 * 3_600_000)) < 60_000, "the secret signs 2 hours more");
    const rotated = await run("signing", created.shopId, "ed25519");
    assert.deepEqual(
      rotated.json.previousSigning.map((p: { signingScheme: string }) => p.signingScheme),
      ["ed25519", "hmac"],
      "the first rotation's key and the secret before it, newest first",
    );
    assert.equal(rotated.json.previousSigning[1].signsUntil, switched.json.previousSigning[0].signsUntil);
    await assert.rejects(run("signing", created.shopId, "hmac"), /signing_limit: 3 secrets or keys sign/);
    const ended = await run("signing", created.shopId, "end-overlap");
    assert.deepEqual(ended.json.previousSigning, []);
    assert.equal(ended.json.publicKey, rotated.json.publicKey);
    assert.ok(!ended.text.includes("whsk_") && !ended.text.includes("whsec_"));
    await assert.rejects(run("signing", created.shopId, "end-overlap"), /no_signing_overlap/);
    const list = await run("list");
    assert.equal(list.json[0].publicKey, rotated.json.publicKey);
    assert.deepEqual(list.json[0].previousSigning, []);
    assert.equal(list.json[0].signingScheme, "ed25519");
    assert.ok(!list.text.includes("whsk_") && !list.text.includes("whsec_"));
    const off = await run("redirects", created.shopId, "off");
    assert.equal(off.json.signRedirects, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[signatures] the CLI at three signing: a rotation with an overlap is refused, audited and told the way out; --overlap-hours 0 goes through; a bad overlap changes nothing", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/kv.sqlite3`;
  const run = (...args: string[]) => runShopCli(kvPath, ...args);
  /** Runs the command expecting it to fail; its error output. */
  const refused = async (...args: string[]) => {
    const err = await run(...args).then(() => null, (e: Error) => e.message);
    assert.ok(err, `${args.join(" ")} should fail`);
    return err;
  };
  try {
    await addCliOperator(kvPath);
    const { shopId } = (await run("create", "--name", "Acme")).json;
    await run("signing", shopId, "ed25519");
    await run("signing", shopId, "hmac");
    for (const hours of ["-1", "721", "abc", ""]) {
      assert.match(
        // Written with "=", as a value starting with "-" must be.
        await refused("signing", shopId, "hmac", `--overlap-hours=${hours}`),
        hours === "" ? /Option '--overlap-hours' has an empty value/ : /--overlap-hours must be/,
        hours,
      );
    }
    const limit = await refused("signing", shopId, "hmac", "--overlap-hours", "1");
    assert.match(limit, /signing_limit: 3 secrets or keys sign/);
    assert.match(limit, /Or rotate with --overlap-hours 0: the replaced one then stops at once\./);
    const none = await run("signing", shopId, "hmac", "--overlap-hours", "0");
    assert.match(none.json.webhookSecret, /^whsec_/);
    assert.deepEqual(
      none.json.previousSigning.map((p: { signingScheme: string }) => p.signingScheme),
      ["ed25519", "hmac"],
      "the two that signed before it, not the one it replaced",
    );

    const kv = await Deno.openKv(kvPath);
    try {
      const audit = (await Array.fromAsync(kv.list<AuditEntry>({ prefix: ["audit"] }))).map((e) => e.value);
      const refusals = audit.filter((e) => e.action.endsWith(".refused"));
      assert.equal(refusals.length, 1, "the refused rotation, not the bad overlaps");
      assert.equal(refusals[0].action, "shop.rotate_secret.refused");
      assert.equal(refusals[0].actor, `${CLI_OPERATOR} (cli)`);
      const after = refusals[0].after as Record<string, unknown>;
      assert.equal(after.overlapHours, 1);
      assert.equal(after.refused, "signing_limit");
      assert.ok(!JSON.stringify(audit).includes("whsec_") && !JSON.stringify(audit).includes("whsk_"), "no secret");
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[signatures] the postbacks and redirects pages show the snippets the tests run and the rules", async () => {
  const { docLibrary } = await import("../routes/docs/_shared.tsx");
  const { PUBLIC_DOCS } = await import("../lib/docs/catalog.ts");
  const { escapeHtml } = await import("../lib/docs/markdown.ts");
  const library = docLibrary(PUBLIC_DOCS);
  for (
    const [slug, file, texts] of [
      ["postbacks", "verify_webcrypto.ts", ["v1a,", "whpk_", "Ed25519", "both the old and the new"]],
      ["redirects", "verify_redirect.ts", ["apay_payment", "apay_status", "apay_ts", "apay_sig", "source of truth"]],
    ] as const
  ) {
    const page = await library.page(slug);
    assert.ok(page, slug);
    const code = (await Deno.readTextFile(new URL(file, SNIPPETS))).replace(/\n+$/, "");
    assert.ok(page.html.includes(`<code class="language-ts">${escapeHtml(code)}\n</code>`), `${slug} shows ${file}`);
    for (const text of texts) assert.ok(page.html.includes(escapeHtml(text)), `${slug}: ${text}`);
    assert.ok(!page.html.includes("dead-link"), `${slug}: every link resolves`);
  }
});
