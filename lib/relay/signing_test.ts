import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import {
  appendRedirectParams,
  newSigningKeyPair,
  newWebhookSecret,
  publicKeyOf,
  signRedirect,
  signWebhook,
  verifyRedirect,
  verifyWebhook,
  webhookHeaders,
} from "./signing.ts";

Deno.test("[signing] matches the Standard Webhooks known-answer vector", async () => {
  // From the Standard Webhooks specification's reference test.
  const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const sig = await signWebhook([secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}');
  assert.equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
});

Deno.test("[signing] the standardwebhooks library verifies what we send", async () => {
  const secret = newWebhookSecret();
  assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  const body = JSON.stringify({ type: "payment.succeeded", data: { id: "o-1" } });
  const headers = await webhookHeaders([secret], "msg_abc", Math.floor(Date.now() / 1000), body);
  assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
  assert.throws(() => new Webhook(newWebhookSecret()).verify(body, headers));
  assert.throws(() => new Webhook(secret).verify(body.replace("o-1", "o-2"), headers));
});

Deno.test("[signing] during a rotation both secrets verify", async () => {
  const [oldSecret, newSecret] = [newWebhookSecret(), newWebhookSecret()];
  const now = Math.floor(Date.now() / 1000);
  const headers = new Headers(await webhookHeaders([newSecret, oldSecret], "msg_x", now, "{}"));
  assert.ok(await verifyWebhook(oldSecret, headers, "{}", now));
  assert.ok(await verifyWebhook(newSecret, headers, "{}", now));
  assert.ok(!(await verifyWebhook(newWebhookSecret(), headers, "{}", now)));
  assert.ok(!(await verifyWebhook(newSecret, headers, "{}", now + 301)), "stale timestamps fail");
});

Deno.test("[signing] after a second rotation within the overlap three entries are sent, and each key verifies alone", () => {
  const [oldest, first] = [newWebhookSecret(), newSigningKeyPair()];
  const newest = newWebhookSecret();
  const now = Math.floor(Date.now() / 1000);
  const body = JSON.stringify({ type: "payment.succeeded", data: { id: "o-1" } });
  const headers = webhookHeaders([newest, first.privateKey, oldest], "msg_three", now, body);
  assert.deepEqual(headers["webhook-signature"].split(" ").map((e) => e.split(",")[0]), ["v1", "v1a", "v1"]);
  for (const key of [oldest, first.publicKey, newest]) assert.ok(verifyWebhook(key, new Headers(headers), body, now));
  // The official library checks every v1 entry, so a shop on either shared secret keeps verifying.
  assert.deepEqual(new Webhook(oldest).verify(body, headers), JSON.parse(body));
  assert.deepEqual(new Webhook(newest).verify(body, headers), JSON.parse(body));
  assert.ok(!verifyWebhook(newWebhookSecret(), new Headers(headers), body, now));
});

Deno.test("[signing] a key pair signs v1a that WebCrypto verifies with the public key only", async () => {
  const { privateKey, publicKey } = newSigningKeyPair();
  assert.match(privateKey, /^whsk_[A-Za-z0-9+/]{43}=$/);
  assert.match(publicKey, /^whpk_[A-Za-z0-9+/]{43}=$/);
  assert.equal(publicKeyOf(privateKey), publicKey);
  const now = Math.floor(Date.now() / 1000);
  const body = JSON.stringify({ type: "payment.succeeded", data: { id: "o-1" } });
  const headers = webhookHeaders([privateKey], "msg_k", now, body);
  const [version, sig] = headers["webhook-signature"].split(",");
  assert.equal(version, "v1a");
  const raw = Uint8Array.from(atob(publicKey.slice(5)), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", raw, "Ed25519", false, ["verify"]);
  const signature = Uint8Array.from(atob(sig), (c) => c.charCodeAt(0));
  const content = (b: string) => new TextEncoder().encode(`msg_k.${now}.${b}`);
  assert.ok(await crypto.subtle.verify("Ed25519", key, signature, content(body)));
  assert.ok(!(await crypto.subtle.verify("Ed25519", key, signature, content(body.replace("o-1", "o-2")))));

  assert.ok(verifyWebhook(publicKey, new Headers(headers), body, now));
  assert.ok(!verifyWebhook(newSigningKeyPair().publicKey, new Headers(headers), body, now), "another key fails");
  assert.ok(!verifyWebhook(publicKey, new Headers(headers), body + " ", now), "a changed body fails");
  assert.ok(!verifyWebhook(privateKey, new Headers(headers), body, now), "a private key is no verification key");
  // A v1a signature is not a v1 one: a shared secret never accepts it.
  assert.ok(!verifyWebhook(newWebhookSecret(), new Headers(headers), body, now));
});

Deno.test("[signing] during a switch a postback carries v1 and v1a, each verifying with its own key", () => {
  const secret = newWebhookSecret();
  const pair = newSigningKeyPair();
  const now = Math.floor(Date.now() / 1000);
  const headers = new Headers(webhookHeaders([pair.privateKey, secret], "msg_s", now, "{}"));
  assert.deepEqual(headers.get("webhook-signature")!.split(" ").map((e) => e.split(",")[0]), ["v1a", "v1"]);
  assert.ok(verifyWebhook(secret, headers, "{}", now));
  assert.ok(verifyWebhook(pair.publicKey, headers, "{}", now));
  assert.doesNotThrow(() => new Webhook(secret).verify("{}", Object.fromEntries(headers)));
});

Deno.test("[signing] redirect parameters join the shop's query string and keep its fragment", () => {
  const params = signRedirect([newWebhookSecret()], "pay_1", "succeeded", 1700000000);
  const q = new URLSearchParams(params as unknown as Record<string, string>).toString();
  assert.equal(appendRedirectParams("https://s.example/thanks", params), `https://s.example/thanks?${q}`);
  assert.equal(
    appendRedirectParams("https://s.example/t?order=1&x=a%20b+c#top?x=1", params),
    `https://s.example/t?order=1&x=a%20b+c&${q}#top?x=1`,
  );
  assert.equal(appendRedirectParams("https://s.example/t?", params), `https://s.example/t?${q}`);
  assert.equal(appendRedirectParams("https://s.example/t?a=1&", params), `https://s.example/t?a=1&${q}`);
  assert.equal(appendRedirectParams("https://s.example/t#", params), `https://s.example/t?${q}#`);
});

Deno.test("[signing] a signed redirect verifies, and fails when tampered, stale or checked with another key", () => {
  const secret = newWebhookSecret();
  const pair = newSigningKeyPair();
  const now = Math.floor(Date.now() / 1000);
  const url = new URL(
    appendRedirectParams("https://s.example/t?order=7", signRedirect([secret], "pay_1", "succeeded", now)),
  );
  assert.deepEqual(verifyRedirect(secret, url.searchParams, now), { paymentId: "pay_1", status: "succeeded" });
  assert.equal(url.searchParams.get("order"), "7");
  for (const [name, value] of [["apay_status", "failed"], ["apay_payment", "pay_2"], ["apay_ts", String(now - 1)]]) {
    const tampered = new URLSearchParams(url.searchParams);
    tampered.set(name, value);
    assert.equal(verifyRedirect(secret, tampered, now), null, `${name} tampered`);
  }
  assert.equal(verifyRedirect(newWebhookSecret(), url.searchParams, now), null);
  assert.equal(verifyRedirect(secret, url.searchParams, now + 301), null, "stale");

  const signed = new URLSearchParams(signRedirect([pair.privateKey, secret], "pay_1", "failed", now) as never);
  assert.deepEqual(verifyRedirect(pair.publicKey, signed, now), { paymentId: "pay_1", status: "failed" });
  assert.deepEqual(verifyRedirect(secret, signed, now), { paymentId: "pay_1", status: "failed" });
  assert.equal(verifyRedirect(newSigningKeyPair().publicKey, signed, now), null);
});
