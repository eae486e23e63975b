import assert from "node:assert/strict";
import { buyerSettles, callInit, paymentBody, startTestApp, type TestApp, waitFor } from "../fixtures/app.ts";
import { invoiceBody } from "../fixtures/invoices.ts";
import { updateShopSettings } from "../lib/shops.ts";
import { providerRequestId } from "../lib/providers/request_id.ts";
import { TcpRelay } from "../fixtures/tcp_relay.ts";
import { createPayment, getPayment, iteratePaymentIds, reservePaymentName } from "../lib/db/payments.ts";
import { legacyPaymentId } from "../lib/payments/names.ts";
import { type InitPaymentBody, normalizeInit } from "../lib/payments/schema.ts";
import { paymentNameBackfill } from "../lib/payments/backfill.ts";
import { runBackfill } from "../lib/backfills/run.ts";
import { sha256Hex } from "../lib/crypto.ts";
import { sequentialId, sortableId } from "../lib/ids.ts";

Deno.test("[idempotency] the same id and body returns the first answer without a second provider call", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  try {
    const body = paymentBody({ id: "order-1", postbackUrl: "http://127.0.0.1:9/pb" });
    const first = await callInit(app, body);
    assert.equal(first.status, 201);
    // Key order and the spec's spelling of successUrl do not make it a different request.
    const { successUrl, ...rest } = body;
    const second = await callInit(app, { sussessUrl: successUrl, ...rest, currency: "eur" });
    assert.equal(second.status, 200);
    assert.deepEqual(second.body, first.body);
    assert.equal(app.sandbox.calls.create, 1);
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] a retry of a stored payment is answered at once, while the provider is slow or down, or after its URLs were disallowed", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  try {
    const body = paymentBody({ id: "order-kept", postbackUrl: "http://127.0.0.1:9/pb" });
    const first = await callInit(app, body);
    assert.equal(first.status, 201);
    // Far slower than the app's provider timeout: a retry that asked the provider would wait for it and fail.
    app.sandbox.knobs.latencyMs = 5_000;
    const whileSlow = await callInit(app, body);
    assert.equal(whileSlow.status, 200);
    assert.deepEqual(whileSlow.body, first.body);
    app.sandbox.knobs.latencyMs = 0;
    app.sandbox.knobs.failureRate = 1;
    const duringOutage = await callInit(app, body);
    assert.equal(duringOutage.status, 200);
    assert.deepEqual(duringOutage.body, first.body);
    app.sandbox.knobs.failureRate = 0;
    // The shop now allows another host only: its stored payment's URLs were judged when it was made.
    await updateShopSettings(app.kv, app.shop.id, {
      name: "Test shop",
      defaultPostbackUrl: null,
      allowedHosts: ["shop.example"],
    }, { actor: "test", allowLocalUrls: true, now: Date.now() });
    const afterTheRulesChanged = await callInit(app, body);
    assert.equal(afterTheRulesChanged.status, 200);
    assert.deepEqual(afterTheRulesChanged.body, first.body);
    assert.equal(app.sandbox.calls.create, 1, "no retry asked the provider");
    assert.equal((await callInit(app, { ...body, id: "order-new" })).status, 400, "a new payment meets the new rules");
    assert.equal((await callInit(app, { ...body, amount: 1 })).status, 422, "a different body is still refused");
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] the same id with a different body is refused with 422", async () => {
  const app = await startTestApp();
  try {
    await callInit(app, paymentBody({ id: "order-1", postbackUrl: "http://127.0.0.1:9/pb" }));
    const reused = await callInit(app, paymentBody({ id: "order-1", postbackUrl: "http://127.0.0.1:9/pb", amount: 1 }));
    assert.equal(reused.status, 422);
    assert.equal(reused.body.error.code, "idempotency_mismatch");
    assert.equal(reused.body.error.message, "This id was already used for a payment with different details.");
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] 50 concurrent copies make exactly one provider call", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { latencyMs: 150 } });
  try {
    const body = paymentBody({ id: "order-burst", postbackUrl: "http://127.0.0.1:9/pb" });
    const answers = await Promise.all(Array.from({ length: 50 }, () => callInit(app, body)));
    assert.equal(app.sandbox.calls.create, 1);
    const statuses = answers.map((a) => a.status);
    assert.equal(statuses.filter((s) => s === 201).length, 1, statuses.join(","));
    assert.ok(statuses.every((s) => s === 201 || s === 200), statuses.join(","));
    assert.equal(new Set(answers.map((a) => a.body.id)).size, 1, "every copy got the same payment");
    // Once the first finished, a retry gets its answer.
    const later = await callInit(app, body);
    assert.equal(later.status, 200);
    assert.equal(later.body.id, answers[0].body.id);
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] Idempotency-Key works for requests without an id", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  try {
    const headers = { "idempotency-key": "key-123" };
    const first = await callInit(app, paymentBody(), { headers });
    const again = await callInit(app, paymentBody(), { headers });
    assert.equal(first.status, 201);
    assert.equal(again.status, 200);
    assert.equal(again.body.id, first.body.id);
    const different = await callInit(app, paymentBody({ amount: 5 }), { headers });
    assert.equal(different.status, 422);
    // The key matched, not an id the shop never sent: the message names it.
    assert.equal(
      different.body.error.message,
      "This Idempotency-Key was already used for a payment with different details.",
    );
    const noKey = await callInit(app, paymentBody());
    assert.notEqual(noKey.body.id, first.body.id, "without a key every request is new");
    assert.equal(app.sandbox.calls.create, 2);
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] a provider failure stores no answer; the shop's retry succeeds with the same payment", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { failureRate: 1 } });
  try {
    const body = paymentBody({ id: "order-retry", postbackUrl: "http://127.0.0.1:9/pb" });
    const failed = await callInit(app, body);
    assert.equal(failed.status, 502);
    assert.equal(failed.body.error.code, "provider_error");
    assert.ok(!JSON.stringify(failed.body).includes("test-sandbox-token"));
    app.sandbox.knobs.failureRate = 0;
    const retried = await callInit(app, body);
    assert.equal(retried.status, 201, "nothing was stored by the failed attempt");
    assert.match(retried.body.url, /integration\/pay\?id=pay_/);
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] a provider that does not answer in time gets 504", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { latencyMs: 1500 },
    env: { PROVIDER_TIMEOUT_MS: "300" },
  });
  try {
    const res = await callInit(app, paymentBody());
    assert.equal(res.status, 504);
    assert.equal(res.body.error.code, "provider_timeout");
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] copies racing in two isolates commit one payment, and both are answered with it", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { latencyMs: 100 } });
  try {
    const { initPayment } = await import("../lib/payments/init.ts");
    const { getShop } = await import("../lib/db/shops.ts");
    const shop = (await getShop(app.kv, app.shop.id))!;
    const body = paymentBody({ id: "order-twice", postbackUrl: "http://127.0.0.1:9/pb" });
    // A second context on the same store stands for another isolate: no shared in-memory single flight.
    const otherIsolate = { ...app.server.ctx };
    const [a, b] = await Promise.all([initPayment(app.server.ctx, shop, body), initPayment(otherIsolate, shop, body)]);
    // Each isolate asked the provider under an id of its own; the one whose commit took the name is every copy's
    // answer, and the other's payment at Bansky is never shown to anyone (its URL would have been our wrapper's).
    assert.equal(app.sandbox.calls.create, 2, "both isolates asked the provider");
    assert.equal(a.payment.id, b.payment.id, "both are answered with one payment");
    assert.deepEqual([a.replay, b.replay].sort(), [false, true], "and exactly one committed");
    let stored = 0;
    for await (const _ of iteratePaymentIds(app.kv, { shopId: shop.id })) stored++;
    assert.equal(stored, 1);
    const res = await fetch(`${app.sandboxUrl}/payments/${a.payment.providerRef}`, {
      headers: { authorization: "Bearer test-sandbox-token" },
    });
    // Bansky knows the request by our payment id and its fingerprint (lib/providers/request_id.ts).
    assert.equal((await res.json()).merchantId, providerRequestId(a.payment.id, a.payment.requestHash));
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] copies waiting in one isolate get the winner's payment when another isolate stored it first", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { latencyMs: 150 } });
  try {
    const { initPayment } = await import("../lib/payments/init.ts");
    const { getShop } = await import("../lib/db/shops.ts");
    const shop = (await getShop(app.kv, app.shop.id))!;
    const body = paymentBody({ id: "order-contended", postbackUrl: "http://127.0.0.1:9/pb" });
    const otherIsolate = { ...app.server.ctx };
    const first = initPayment(otherIsolate, shop, body);
    await new Promise((r) => setTimeout(r, 30));
    // Three copies in this isolate share one provider call, which commits after the other isolate's.
    const copies = await Promise.allSettled([1, 2, 3].map(() => initPayment(app.server.ctx, shop, body)));
    const winner = await first;
    assert.equal(winner.replay, false);
    for (const c of copies) {
      assert.equal(c.status, "fulfilled", c.status === "rejected" ? String(c.reason) : "");
      if (c.status === "fulfilled") assert.deepEqual([c.value.payment.id, c.value.replay], [winner.payment.id, true]);
    }
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] a shop's names outlive a session-secret rotation: lookups and retries find the payment", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/kv.sqlite3`;
  const before = await startTestApp({ kvPath, env: { SESSION_SECRET: "a".repeat(40) } });
  const shop = before.shop;
  let first, keyed;
  try {
    first = await callInit(before, paymentBody({ id: "order-rot", postbackUrl: "http://127.0.0.1:9/pb" }));
    keyed = await callInit(before, paymentBody(), { headers: { "idempotency-key": "key-rot" } });
    assert.equal(first.status, 201);
    assert.equal(keyed.status, 201);
  } finally {
    await before.close();
  }
  const after = await startTestApp({ kvPath, env: { SESSION_SECRET: "b".repeat(40) } });
  try {
    const asShop = { key: shop.apiKey };
    const lookup = await fetch(`${after.baseUrl}/api/v1/payments?shopTxId=order-rot`, {
      headers: { authorization: `Bearer ${shop.apiKey}` },
    });
    assert.equal(lookup.status, 200);
    assert.equal((await lookup.json()).payment.id, first.body.id);
    const retry = await callInit(after, paymentBody({ id: "order-rot", postbackUrl: "http://127.0.0.1:9/pb" }), asShop);
    assert.equal(retry.status, 200);
    assert.equal(retry.body.id, first.body.id);
    const keyedRetry = await callInit(after, paymentBody(), { ...asShop, headers: { "idempotency-key": "key-rot" } });
    assert.equal(keyedRetry.status, 200);
    assert.equal(keyedRetry.body.id, keyed.body.id);
    const different = await callInit(after, paymentBody({ amount: 7 }), {
      ...asShop,
      headers: { "idempotency-key": "key-rot" },
    });
    assert.equal(different.status, 422);
  } finally {
    await after.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[idempotency] after a provider failure stored nothing, another body with the same id is charged as that body, never as the first", async () => {
  // Bansky makes the payment but its answer is lost on the way back (a reset connection): we answer 502.
  const network = new TcpRelay();
  const app = await startTestApp({ standaloneSandbox: true, env: { BANSKY_API_URL: network.url } });
  network.relayTo(app.sandboxUrl);
  // deno-lint-ignore no-explicit-any
  const atBansky = (ref: string) => (app.sandbox as any).payments.get(ref) as { amount: number; currency: string };
  try {
    const order = { id: "order-504", postbackUrl: "http://127.0.0.1:9/pb" };
    network.loseAnswerTo("POST /payments HTTP/1.1");
    const first = await callInit(app, paymentBody({ ...order, amount: 1000 }));
    assert.equal(network.lost, 1, "Bansky made the payment, and its answer was lost");
    assert.equal(first.status, 502, JSON.stringify(first.body));
    // The shop changes the order (another amount and currency) and sends the same id again. Nothing was stored, so
    // this is the payment now; what the buyer pays at the provider is what the shop is told.
    const second = await callInit(app, paymentBody({ ...order, amount: 250_000, currency: "USD" }));
    assert.equal(second.status, 201, JSON.stringify(second.body));
    const stored = (await getPayment(app.kv, second.body.id))!;
    assert.deepEqual(
      { amount: atBansky(stored.providerRef!).amount, currency: atBansky(stored.providerRef!).currency },
      { amount: 250_000, currency: "USD" },
      "the provider charges the body we stored, not the failed attempt's",
    );
    // From now on the stored payment is what the id names: the first body is refused, the second answered.
    assert.equal((await callInit(app, paymentBody({ ...order, amount: 1000 }))).status, 422);
    assert.equal((await callInit(app, paymentBody({ ...order, amount: 250_000, currency: "USD" }))).status, 200);
  } finally {
    await app.close();
    network.close();
  }
});

Deno.test("[idempotency] a bad Idempotency-Key is named in the same 400 as the body's bad fields (init-payment, checkout sessions, invoices, refunds), and nothing is stored", async (t) => {
  const app = await startTestApp();
  try {
    const paid = await paidPayment(app);
    const stored = () => storedCreates(app);
    const before = await stored();
    const headers = { authorization: `Bearer ${app.shop.apiKey}`, "idempotency-key": "k".repeat(256) };
    const cases: [string, Record<string, unknown>, string][] = [
      ["/init-payment", paymentBody({ email: "not-an-email" }), "email"],
      ["/checkout/sessions", { amount: 2500, currency: "EUR", customerEmail: "not-an-email" }, "customerEmail"],
      ["/invoices", invoiceBody({ amount: "-1" }), "amount"],
      [`/payments/${paid.body.id}/refunds`, { amount: -5 }, "amount"],
    ];
    for (const [path, body, field] of cases) {
      await t.step(`${path.replace(/pay_[^/]+/, "{id}")} names Idempotency-Key and ${field}`, async () => {
        const res = await fetch(`${app.baseUrl}/api/v1${path}`, {
          method: "POST",
          headers: { ...headers, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        const answer = await res.json();
        assert.equal(res.status, 400, JSON.stringify(answer));
        assert.equal(answer.error.code, "invalid_request");
        assert.deepEqual(Object.keys(answer.error.fields).sort(), ["Idempotency-Key", field].sort());
        assert.equal(answer.error.fields["Idempotency-Key"], "must be at most 255 characters long");
      });
    }
    assert.equal(await stored(), before, "nothing was stored");
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] an empty Idempotency-Key is refused (init-payment, checkout sessions, invoices, refunds) rather than taken as no key, and nothing is stored", async (t) => {
  const app = await startTestApp();
  try {
    const paid = await paidPayment(app);
    const stored = () => storedCreates(app);
    const before = await stored();
    // Bodies that are right in every other way: a shop whose key variable came out blank would otherwise get a
    // payment, invoice or refund with no idempotency, and a second one on each retry.
    const cases: [string, Record<string, unknown>][] = [
      ["/init-payment", paymentBody()],
      ["/checkout/sessions", { amount: 2500, currency: "EUR", customerEmail: "buyer@example.com" }],
      ["/invoices", invoiceBody()],
      [`/payments/${paid.body.id}/refunds`, { amount: 100 }],
    ];
    for (const [path, body] of cases) {
      await t.step(path.replace(/pay_[^/]+/, "{id}"), async () => {
        const res = await fetch(`${app.baseUrl}/api/v1${path}`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${app.shop.apiKey}`,
            "content-type": "application/json",
            "idempotency-key": "",
          },
          body: JSON.stringify(body),
        });
        const answer = await res.json();
        assert.equal(res.status, 400, JSON.stringify(answer));
        assert.equal(answer.error.code, "invalid_request");
        assert.deepEqual(answer.error.fields, { "Idempotency-Key": "must not be empty" });
      });
    }
    assert.equal(await stored(), before, "nothing was stored");
  } finally {
    await app.close();
  }
});

/** A payment the buyer paid, so a refund of it can be asked for. */
async function paidPayment(app: TestApp) {
  const paid = await callInit(app, paymentBody());
  assert.equal(paid.status, 201, JSON.stringify(paid.body));
  await buyerSettles(paid.body.url, "paid");
  await waitFor("the payment succeeded", async () => (await getPayment(app.kv, paid.body.id))?.status === "succeeded");
  return paid;
}

/** How many records the creates could have written: payments, checkout sessions, invoices, refunds. */
async function storedCreates(app: TestApp): Promise<number> {
  let n = 0;
  for (const prefix of ["payments", "checkout_sessions", "invoices", "refunds"]) {
    for await (const _ of app.kv.list({ prefix: [prefix] })) n++;
  }
  return n;
}

Deno.test("[idempotency] an Idempotency-Key sent as UTF-8 is a key like any other: its bytes are not read as C1 controls", async () => {
  const app = await startTestApp();
  try {
    // A header's value reaches the app a byte a character: "order-€" sent as UTF-8 (E2 82 AC) reads as "order-â\x82¬".
    // Text fields refuse C1 controls, but a key is no text anyone reads, and its 0x82 is only a byte of the euro sign.
    const key = String.fromCharCode(...new TextEncoder().encode("order-€"));
    const first = await callInit(app, paymentBody(), { headers: { "idempotency-key": key } });
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const retry = await callInit(app, paymentBody(), { headers: { "idempotency-key": key } });
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal(retry.body.paymentId ?? retry.body.id, first.body.paymentId ?? first.body.id);
    // Control characters a header can carry are refused as before.
    const tab = await callInit(app, paymentBody(), { headers: { "idempotency-key": "order\t1" } });
    assert.equal(tab.status, 400);
    assert.equal(tab.body.error.fields["Idempotency-Key"], "must not contain control characters");
  } finally {
    await app.close();
  }
});

/** The id a shop's name for a payment names, as its name's key holds it. */
async function idUnderName(app: TestApp, kind: "shop_ref" | "idempotency_key", value: string) {
  return (await app.kv.get<string>(["payment_names", app.shop.id, kind, value])).value;
}

Deno.test("[idempotency] a named payment gets a time-ordered id like any other, and its name's key says which payment the name names", async () => {
  const app = await startTestApp();
  try {
    const first = await callInit(app, paymentBody({ id: "order-1001", postbackUrl: "http://127.0.0.1:9/pb" }));
    const second = await callInit(app, paymentBody({ id: "order-1002", postbackUrl: "http://127.0.0.1:9/pb" }));
    const keyed = await callInit(app, paymentBody(), { headers: { "idempotency-key": "key-1003" } });
    const ids = [first, second, keyed].map((r) => (assert.equal(r.status, 201), r.body.id as string));
    // Made one after another, their ids sort in that order (written next to each other in the store).
    assert.deepEqual(ids.toSorted(), ids);
    assert.equal(await idUnderName(app, "shop_ref", "order-1001"), ids[0]);
    assert.equal(await idUnderName(app, "shop_ref", "order-1002"), ids[1]);
    assert.equal(await idUnderName(app, "idempotency_key", "key-1003"), ids[2]);
    assert.notEqual(
      ids[0],
      legacyPaymentId(app.server.ctx.paymentIdKey, app.shop.id, { kind: "shop_ref", value: "order-1001" }),
    );
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] a retry after Bansky answered too late asks it for the same payment: the id the failed attempt kept under the name", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { latencyMs: 600 },
    env: { PROVIDER_TIMEOUT_MS: "200" },
  });
  try {
    const body = paymentBody({ id: "order-late", postbackUrl: "http://127.0.0.1:9/pb" });
    assert.equal((await callInit(app, body)).status, 504);
    const kept = await idUnderName(app, "shop_ref", "order-late");
    assert.ok(kept, "the attempt's id is kept under the name");
    assert.equal(await getPayment(app.kv, kept), null, "but no payment is stored");
    // Bansky made the payment after all; the retry finds it there under the same request.
    await new Promise((r) => setTimeout(r, 600));
    app.sandbox.knobs.latencyMs = 0;
    const retried = await callInit(app, body);
    assert.equal(retried.status, 201);
    assert.equal(retried.body.id, kept);
    const stored = (await getPayment(app.kv, kept))!;
    const there = await fetch(`${app.sandboxUrl}/payments/${stored.providerRef}`, {
      headers: { authorization: "Bearer test-sandbox-token" },
    }).then((r) => r.json());
    assert.equal(there.merchantId, providerRequestId(kept, stored.requestHash), "the request the first attempt sent");
  } finally {
    await app.close();
  }
});

Deno.test("[idempotency] a payment named before names were stored is found by its name (retries, lookups) until the backfill gives it its name's key", async () => {
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    const name = { kind: "shop_ref", value: "order-old" } as const;
    const body = paymentBody({ id: "order-old", postbackUrl: "http://127.0.0.1:9/pb" });
    // As an earlier version stored it: under the id derived from the name, with no name's key, and the store not
    // yet backfilled (this version's first start on it).
    const id = legacyPaymentId(ctx.paymentIdKey, app.shop.id, name);
    // (The template is unnamed: a named request would find the store backfilled, which this process then remembers.)
    const made = await callInit(app, paymentBody());
    const template = (await getPayment(app.kv, made.body.id))!;
    const requestHash = requestHashOf(body);
    assert.ok(await createPayment(app.kv, { ...template, id, shopTxId: "order-old", requestHash, seq: sortableId() }));
    await app.kv.delete(["payment_names", app.shop.id, "shop_ref", "order-old"]);
    await app.kv.delete(["backfill_state", "payment_names"]);
    const creates = app.sandbox.calls.create;

    const retried = await callInit(app, body);
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
    assert.equal(retried.body.id, id);
    assert.equal(app.sandbox.calls.create, creates, "answered without asking the provider");
    const looked = await fetch(`${app.baseUrl}/api/v1/payments?shopTxId=order-old`, {
      headers: { authorization: `Bearer ${app.shop.apiKey}` },
    }).then((r) => r.json());
    assert.equal(looked.payment.id, id);

    const run = await runBackfill(ctx, paymentNameBackfill);
    assert.deepEqual([run.done, run.written], [true, 1], "only the old payment needed its name's key");
    assert.equal(await idUnderName(app, "shop_ref", "order-old"), id);
    await app.kv.delete(["backfill_state", "payment_names"]);
    assert.equal((await runBackfill(ctx, paymentNameBackfill)).written, 0, "a second run writes nothing");
    assert.equal((await callInit(app, body)).body.id, id, "found by its name's key now");
  } finally {
    await app.close();
  }
});

/** The fingerprint init-payment keeps of a body (what a retry is matched against), worked out as init.ts does. */
function requestHashOf(body: Record<string, unknown>): string {
  return sha256Hex(JSON.stringify(normalizeInit(body as InitPaymentBody)));
}

Deno.test("[idempotency] a payment made while another isolate's failed attempt kept its id under the name is stored, not refused", async () => {
  const app = await startTestApp({ standaloneSandbox: true, knobs: { latencyMs: 300 } });
  try {
    const { initPayment } = await import("../lib/payments/init.ts");
    const { getShop } = await import("../lib/db/shops.ts");
    const shop = (await getShop(app.kv, app.shop.id))!;
    const body = paymentBody({ id: "order-crossed", postbackUrl: "http://127.0.0.1:9/pb" });
    const made = initPayment(app.server.ctx, shop, body);
    // While this request waits on the provider, a copy in another isolate fails there and keeps its id for a retry.
    await new Promise((r) => setTimeout(r, 100));
    const kept = sequentialId("pay");
    assert.ok(await reservePaymentName(app.kv, shop.id, { kind: "shop_ref", value: "order-crossed" }, kept));
    const { payment, replay } = await made;
    assert.equal(replay, false);
    assert.equal(await idUnderName(app, "shop_ref", "order-crossed"), payment.id);
    assert.equal((await callInit(app, body)).body.id, payment.id, "the retry is answered with it");
  } finally {
    await app.close();
  }
});
