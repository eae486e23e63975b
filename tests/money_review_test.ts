/**
 * Money-correctness review of refunds and settlement (fresh-eyes review).
 *
 * Tests named "[money] BUG:" assert the correct behaviour and FAIL on the code as reviewed: each one confirms a
 * bug. Each moves to refunds_test.ts or stripe_test.ts, renamed for the behaviour it checks, with its fix.
 */
import assert from "node:assert/strict";
import { createAccount } from "../lib/accounts/mod.ts";
import { setShopRouting } from "../lib/accounts/routing.ts";
import type { ProviderAccount } from "../lib/accounts/types.ts";
import { getPayment as getPaymentRecord } from "../lib/db/payments.ts";
import { getRefund, getRefundReservation } from "../lib/db/refunds.ts";
import { callInit, paymentBody, startShopReceiver, startTestApp, type TestApp, waitFor } from "../fixtures/app.ts";
import { StripeFake } from "../fixtures/stripe_fake.ts";

const STRIPE_KEY = "sk_test_platform";
const ORG = "acct_1MoneyReview";

async function api(app: TestApp, method: string, path: string, body?: unknown, key = app.shop.apiKey) {
  const res = await fetch(`${app.baseUrl}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** Runs the due jobs as if the clock were `aheadMs` later. */
async function sweepAt(app: TestApp, aheadMs: number) {
  const ctx = app.server.ctx;
  const realNow = ctx.now;
  ctx.now = () => realNow() + aheadMs;
  try {
    await app.server.runner.sweep();
    await app.server.runner.idle();
  } finally {
    ctx.now = realNow;
  }
}

async function withStripe(fn: (app: TestApp, fake: StripeFake, stripe: ProviderAccount) => Promise<void>) {
  const app = await startTestApp({ standaloneSandbox: true, env: { JOBS_QUEUE: "off" } });
  const fake = new StripeFake(STRIPE_KEY, { [ORG]: { webhookSecret: "whsec_money" } });
  try {
    const stripe = await createAccount(app.server.ctx, {
      provider: "stripe",
      label: "Stripe (money review)",
      orgId: "991011000099",
      credentials: { secretKey: STRIPE_KEY, webhookSecret: "whsec_money", connectedAccountId: ORG, apiUrl: fake.url },
    }, { actor: "test" });
    fake.accounts[ORG].webhookUrl = `${app.baseUrl}/api/payment-verify/${stripe.id}`;
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    await fn(app, fake, stripe);
  } finally {
    await fake.close();
    await app.close();
  }
}

Deno.test("[money] BUG: a refund Stripe refuses outright (400, e.g. after a Dashboard refund) stays pending for ever, its amount reserved, and the shop never gets refund.failed", async () => {
  await withStripe(async (app, fake) => {
    const init = await callInit(app, paymentBody({ amount: 4200 }));
    assert.equal(init.status, 201, JSON.stringify(init.body));
    const session = fake.sessions.get((await getPaymentRecord(app.kv, init.body.id))!.providerRef!)!;
    await (await fetch(`${fake.url}/pay/${session.id}/paid`, { method: "POST", redirect: "manual" })).body?.cancel();
    await waitFor(
      "succeeded",
      async () => ((await getPaymentRecord(app.kv, init.body.id))?.status === "succeeded") || undefined,
    );

    // The merchant refunded 2000 in Stripe's Dashboard (no metadata: our webhook handler ignores it).
    fake.refunds.set("re_dashboard", {
      id: "re_dashboard",
      object: "refund",
      account: ORG,
      amount: 2000,
      payment_intent: session.payment_intent!,
      status: "succeeded",
      metadata: {},
      created: Math.floor(Date.now() / 1000),
    });
    // The shop refunds the whole order through us: Stripe answers 400 "Refund exceeds the charge".
    const r = await api(app, "POST", `/payments/${init.body.id}/refunds`, {});
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.refund.status, "pending", "Stripe's definitive 400 is answered as 'pending'");
    // A day of checks later (10 s, 30 s, 2 min, 10 min, 1 h, 6 h ...), every one a refused POST /v1/refunds.
    for (const ahead of [61_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000, 8 * 3_600_000, 20 * 3_600_000]) {
      await sweepAt(app, ahead);
    }
    const stored = (await getRefund(app.kv, r.body.refund.id))!;
    const reserved = (await getRefundReservation(app.kv, init.body.id)).value;
    const remainder = await api(app, "POST", `/payments/${init.body.id}/refunds`, { amount: 2200 });
    console.log(
      `refund status after a day: ${stored.status}, provider calls ${stored.checks}, reserved ${reserved}; ` +
        `refunding the real remainder (2200): ${remainder.status} ${remainder.body.error?.code ?? ""}`,
    );
    assert.equal(stored.status, "failed", "a refusal by the provider should fail the refund and free its amount");
    assert.equal(remainder.status, 201, "what is really left at Stripe should stay refundable");
  });
});

Deno.test("[money] BUG: Stripe turns a succeeded refund into failed (card closed: the money goes back to the merchant's balance); we keep 'succeeded' and the shop is never told", async () => {
  const shop = startShopReceiver();
  await withStripe(async (app, fake) => {
    const init = await callInit(
      app,
      paymentBody({ amount: 5000, id: `o-${crypto.randomUUID()}`, postbackUrl: shop.url }),
    );
    assert.equal(init.status, 201, JSON.stringify(init.body));
    const session = fake.sessions.get((await getPaymentRecord(app.kv, init.body.id))!.providerRef!)!;
    await (await fetch(`${fake.url}/pay/${session.id}/paid`, { method: "POST", redirect: "manual" })).body?.cancel();
    await waitFor(
      "succeeded",
      async () => ((await getPaymentRecord(app.kv, init.body.id))?.status === "succeeded") || undefined,
    );
    const r = await api(app, "POST", `/payments/${init.body.id}/refunds`, { amount: 5000 });
    assert.equal(r.body.refund.status, "succeeded");
    const ref = (await getRefund(app.kv, r.body.refund.id))!.providerRef!;
    // Days later Stripe reports the refund failed (status succeeded -> failed, as in charge.refund.updated /
    // refund.failed with failure_reason expired_or_canceled_card).
    const answered = await fake.settleRefund(ref, "failed");
    await new Promise((res) => setTimeout(res, 300));
    const stored = (await getRefund(app.kv, r.body.refund.id))!;
    const p = (await getPaymentRecord(app.kv, init.body.id))!;
    const types = shop.received.map((x) => JSON.parse(x.body).type);
    console.log(
      `webhook answered ${answered}; refund ${stored.status}; payment ${p.status} refundedAmount ${p.refundedAmount}; postbacks ${types}`,
    );
    assert.equal(stored.status, "failed", "Stripe says the buyer did not get the money back");
    assert.ok(types.includes("refund.failed"), "the shop should hear of it");
  });
  await shop.close();
});
