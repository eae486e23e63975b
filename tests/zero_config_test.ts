import assert from "node:assert/strict";
import { startTestApp, waitFor } from "../fixtures/app.ts";
import { listDemoPostbacks, MAX_DEMO_POSTBACKS } from "../lib/db/demo.ts";
import { webhookHeaders } from "../lib/relay/signing.ts";

Deno.test("[demo] the demo shop buys through our API and shows the verified postback", async () => {
  const app = await startTestApp({ env: { DEMO: "1" } });
  try {
    const page = await fetch(`${app.baseUrl}/demo`).then((r) => r.text());
    assert.match(page, /Buy for 10\.00 EUR/);
    const buy = await fetch(`${app.baseUrl}/demo/buy`, { method: "POST", redirect: "manual" });
    await buy.body?.cancel();
    assert.equal(buy.status, 303);
    const payUrl = buy.headers.get("location")!;
    assert.match(payUrl, /\/integration\/pay\?id=pay_/);
    const toProvider = await fetch(payUrl, { redirect: "manual" });
    await toProvider.body?.cancel();
    const providerPage = await fetch(toProvider.headers.get("location")!).then((r) => r.text());
    assert.match(providerPage, /10\.00 EUR/);
    assert.match(providerPage, />Pay</);
    assert.match(providerPage, />Decline</);
    const paid = await fetch(`${toProvider.headers.get("location")}/paid`, { method: "POST", redirect: "manual" });
    await paid.body?.cancel();
    const shown = await waitFor("the postback on the demo page", async () => {
      const html = await fetch(`${app.baseUrl}/demo`).then((r) => r.text());
      return html.includes("payment.succeeded") ? html : undefined;
    });
    assert.match(shown, /class="ok">verified</);
  } finally {
    await app.close();
  }
});

Deno.test("[demo] a postback with a bad signature is answered 400 and not kept", async () => {
  const app = await startTestApp({ env: { DEMO: "1" } });
  try {
    const res = await fetch(`${app.baseUrl}/demo/postback`, {
      method: "POST",
      headers: {
        "webhook-id": "msg_x",
        "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
        "webhook-signature": "v1,AAAA",
      },
      body: JSON.stringify({ type: "payment.succeeded", data: { id: "forged" } }),
    });
    assert.equal(res.status, 400);
    await res.body?.cancel();
    assert.deepEqual(await listDemoPostbacks(app.kv, 100), []);
    assert.doesNotMatch(await fetch(`${app.baseUrl}/demo`).then((r) => r.text()), /forged/);
  } finally {
    await app.close();
  }
});

Deno.test("[demo] the demo receiver keeps only short fields of the newest signed postbacks", async () => {
  const app = await startTestApp({ env: { DEMO: "1" } });
  try {
    const demo = app.server.demo!;
    const huge = "x".repeat(20_000); // three of them stay under the 64 KiB body limit
    for (let i = 0; i < MAX_DEMO_POSTBACKS + 5; i++) {
      const body = JSON.stringify({ type: huge, data: { id: huge, paymentId: huge } });
      const headers = await webhookHeaders([demo.webhookSecret], `msg_${i}`, Math.floor(Date.now() / 1000), body);
      const res = await fetch(`${app.baseUrl}/demo/postback`, { method: "POST", headers, body });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    const kept = await listDemoPostbacks(app.kv, 1000);
    assert.equal(kept.length, MAX_DEMO_POSTBACKS);
    assert.ok(kept.every((p) => p.verified && JSON.stringify(p).length < 400), "only short fields are stored");
  } finally {
    await app.close();
  }
});

Deno.test("[config] a bad environment stops start-up with one message naming each bad variable", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts"],
    env: { PORT: "http", JOBS_QUEUE: "sometimes", DENO_KV_PATH: ":memory:" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 1);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.match(stderr, /Invalid configuration/);
  assert.match(stderr, /PORT/);
  assert.match(stderr, /JOBS_QUEUE/);
});

Deno.test("[secrets] provider token, webhook secrets and API keys never reach logs or responses", async () => {
  const lines: string[] = [];
  const original = { log: console.log, error: console.error, warn: console.warn };
  const capture = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  console.log = console.error = console.warn = capture;
  const app = await startTestApp({ standaloneSandbox: true, env: { LOG_LEVEL: "debug" } });
  const bodies: string[] = [];
  try {
    const call = async (body: unknown) => {
      const res = await fetch(`${app.baseUrl}/api/v1/init-payment`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      bodies.push(await res.text());
    };
    await call({
      email: "a@b.co",
      amount: 100,
      currency: "EUR",
      successUrl: "http://127.0.0.1/s",
      errorUrl: "http://127.0.0.1/e",
    });
    app.sandbox.knobs.failureRate = 1;
    await call({
      email: "a@b.co",
      amount: 100,
      currency: "EUR",
      successUrl: "http://127.0.0.1/s",
      errorUrl: "http://127.0.0.1/e",
    });
    await call({ email: "bad" });
  } finally {
    console.log = original.log;
    console.error = original.error;
    console.warn = original.warn;
    await app.close();
  }
  const everything = lines.join("\n") + bodies.join("\n");
  assert.ok(lines.some((l) => l.includes("provider init failed")), "the failure was logged");
  for (
    const secret of [
      app.config.bansky!.apiToken,
      app.config.bansky!.webhookSecret,
      app.shop.apiKey,
      app.shop.webhookSecret,
    ]
  ) {
    assert.ok(!everything.includes(secret), `leaked ${secret.slice(0, 6)}…`);
  }
});
