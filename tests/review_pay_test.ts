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
