import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { newWebhookSecret, signWebhook, verifyWebhook, webhookHeaders } from "./signing.ts";

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
