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
import { getRefund } from "../lib/db/refunds.ts";
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
