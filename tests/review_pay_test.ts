/**
 * Review of how a payment becomes paid, failed or expired (money correctness). Each test shows one suspected bug:
 * it asserts the behaviour the docs promise, so it FAILS while the bug is there.
 */
import assert from "node:assert/strict";
import { getPayment } from "../lib/db/payments.ts";
import { callInit, paymentBody, startTestApp, waitFor } from "../fixtures/app.ts";
import { runPaymentCheck } from "../lib/payments/janitor.ts";
import { startShopReceiver } from "../fixtures/app.ts";
import { SANDBOX_TOKEN } from "../fixtures/app.ts";

// ---------------------------------------------------------------------------------------------------------------
// Embedded checkout: confirm says "expired" for a payment the buyer can still pay

Deno.test("[review][checkout] confirm answers 'expired' past expiresAt while the provider can still take the money; the payment then succeeds, not even late", async () => {
  const app = await startTestApp();
  const shop = startShopReceiver();
  try {
    const res = await fetch(`${app.baseUrl}/api/v1/checkout/sessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        id: "order-late-confirm",
        amount: 2500,
        currency: "EUR",
        customerEmail: "buyer@example.com",
        postbackUrl: shop.url,
        expiresIn: 60,
      }),
    });
    const created = await res.json();
    assert.equal(res.status, 201, JSON.stringify(created));
    const confirm = async () => {
      const r = await fetch(`${app.baseUrl}/api/v1/checkout/confirm`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ sessionId: created.sessionId }),
      });
      return (await r.json()).session;
    };
    // expiresAt has passed; the janitor's expiry job has not run yet (it runs on the next sweep).
    app.server.ctx.now = () => Date.now() + 61_000;
    const said = await confirm();
    assert.deepEqual([said.status, said.paymentStatus], ["expired", "pending"]);
    // The shop's server is told the session expired. The buyer, still on the provider's page, pays.
    const payment = (await getPayment(app.kv, said.paymentId))!;
    const paid = await fetch(`${payment.providerUrl}/paid`, { method: "POST", redirect: "manual" });
    await paid.body?.cancel();
    const settled = await waitFor("succeeded", async () => {
      const p = await getPayment(app.kv, payment.id);
      return p?.status === "succeeded" ? p : undefined;
    });
    const told = await waitFor("a postback", () => shop.received.length ? shop.received : undefined);
    const again = await confirm();
    // After "expired", money is only ever news as a late success (late: true), or "expired" was never said.
    assert.deepEqual(
      {
        confirmSaid: said.status,
        late: settled.late ?? false,
        postbacks: told.map((r) => JSON.parse(r.body).type),
        now: again.status,
      },
      { confirmSaid: "expired", late: true, postbacks: ["payment.succeeded"], now: "complete" },
    );
  } finally {
    await shop.close();
    await app.close();
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Postback order: a late success can reach the shop before the expiry it follows

Deno.test("[review] the shop's last word about a late payment is payment.succeeded, even when the payment.expired before it needed a retry", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { refuseCancels: true },
    env: { POSTBACK_SCHEDULE: "0,3" },
  });
  // The shop's endpoint has a hiccup on the first postback only.
  const shop = startShopReceiver((n) => new Response(n === 1 ? "busy" : "ok", { status: n === 1 ? 503 : 200 }));
  try {
    const init = await callInit(app, paymentBody({ id: "order-late-order", postbackUrl: shop.url, expiresIn: 60 }));
    assert.equal(init.status, 201, JSON.stringify(init.body));
    const ref = (await getPayment(app.kv, init.body.id))!.providerRef!;
    app.server.ctx.now = () => Date.now() + 61_000;
    await runPaymentCheck(app.server.ctx, init.body.id);
    assert.equal((await getPayment(app.kv, init.body.id))?.status, "expired");
    await waitFor("the first attempt", () => shop.received.length >= 1 ? true : undefined);
    // The money on its way arrives: late success, its webhook comes at once.
    const res = await fetch(`${app.sandboxUrl}/payments/${ref}/complete`, {
      method: "POST",
      headers: { authorization: `Bearer ${SANDBOX_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ outcome: "paid" }),
    });
    await res.body?.cancel();
    await waitFor(
      "late success",
      async () => (await getPayment(app.kv, init.body.id))?.status === "succeeded" || undefined,
    );
    await waitFor("three attempts", () => shop.received.length >= 3 ? true : undefined, 20_000);
    const delivered = shop.received.slice(1).map((r) => JSON.parse(r.body).type);
    // A shop that applies each delivered postback to its order (postbacks.md's checklist) ends on the last one.
    assert.equal(delivered.at(-1), "payment.succeeded", `delivered in this order: ${delivered.join(", ")}`);
  } finally {
    await shop.close();
    await app.close();
  }
});
