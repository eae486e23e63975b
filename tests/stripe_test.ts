/**
 * The Stripe adapter: the real `stripe` SDK against a local fake of the
 * Stripe endpoints it calls (fixtures/stripe_fake.ts), next to the Bansky
 * sandbox, with signed webhooks both ways.
 */
import assert from "node:assert/strict";
import { createAccount, rotateAccountCredentials } from "../lib/accounts/mod.ts";
import { setShopRouting } from "../lib/accounts/routing.ts";
import type { ProviderAccount } from "../lib/accounts/types.ts";
import { getPayment } from "../lib/db/payments.ts";
import { getPaidOrphan } from "../lib/db/paid_orphans.ts";
import { markOrphanHandled } from "../lib/payments/orphans.ts";
import { runPaymentCheck } from "../lib/payments/janitor.ts";
import { commitRefundUpdate, getRefund, getRefundEntry, getRefundReservation } from "../lib/db/refunds.ts";
import { deleteBackfillState } from "../lib/db/backfills.ts";
import { runBackfill } from "../lib/backfills/run.ts";
import { REVERSAL_CHECK_CATCH_UP_MS, reversalCheckBackfill } from "../lib/refunds/backfill.ts";
import { REVERSAL_CHECK_MS } from "../lib/refunds/settle.ts";
import type { Refund } from "../lib/refunds/types.ts";
import { describePayment } from "../lib/payments/admin.ts";
import type { Payment } from "../lib/payments/types.ts";
import { runRefundRecheck } from "../lib/refunds/recheck.ts";
import { countScheduledJobs } from "../lib/db/jobs.ts";
import { listOperations } from "../lib/db/operations.ts";
import { createShop } from "../lib/shops.ts";
import {
  buyerSettles,
  callInit,
  capturingLog,
  paymentBody,
  scrapeSample,
  startShopReceiver,
  startTestApp,
  sweepAt,
  type TestApp,
  waitFor,
} from "../fixtures/app.ts";
import { StripeFake } from "../fixtures/stripe_fake.ts";
import { StripeProvider } from "../lib/providers/stripe.ts";
import { ProviderRefusedError, UpstreamError } from "../lib/errors.ts";
import { ErrorResponse } from "../lib/payments/api_schemas.ts";
import { OptionsResponse } from "../lib/accounts/api_schemas.ts";
import { operatorBrowser, portalBrowser } from "../fixtures/browser.ts";
import { log } from "../lib/log.ts";
import { formatTime } from "../components/admin_layout.tsx";

const STRIPE_KEY = "sk_test_platform";
const ORG2 = "acct_1Org2";

async function withStripe(
  fn: (app: TestApp, fake: StripeFake, stripe: ProviderAccount) => Promise<void>,
  env: Record<string, string> = {},
) {
  const app = await startTestApp({
    standaloneSandbox: true,
    merchants: { orgA: { apiToken: "token-org-a", webhookSecret: "whsec-org-a" } },
    env,
  });
  const fake = new StripeFake(STRIPE_KEY, {
    [ORG2]: { webhookSecret: "whsec_stripe_org2" },
    acct_1Other: { webhookSecret: "whsec_stripe_other" },
  });
  try {
    const stripe = await createAccount(app.server.ctx, {
      provider: "stripe",
      label: "Stripe org 2",
      orgId: "991011000048",
      credentials: {
        secretKey: STRIPE_KEY,
        webhookSecret: "whsec_stripe_org2",
        connectedAccountId: ORG2,
        apiUrl: fake.url,
      },
    }, { actor: "test" });
    fake.accounts[ORG2].webhookUrl = `${app.baseUrl}/api/payment-verify/${stripe.id}`;
    await fn(app, fake, stripe);
  } finally {
    await fake.close();
    await app.close();
  }
}

async function api(app: TestApp, key: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${app.baseUrl}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/**
 * A payment of the shop's, routed to the Stripe account, paid by the buyer and settled here; with the shop's id and
 * postback URL when one is given.
 */
async function paidOnStripe(
  app: TestApp,
  fake: StripeFake,
  stripe: ProviderAccount,
  amount: number,
  postbackUrl?: string,
) {
  await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
  const named = postbackUrl ? { id: `o-${crypto.randomUUID()}`, postbackUrl } : {};
  const init = await callInit(app, paymentBody({ ...named, amount }));
  assert.equal(init.status, 201, JSON.stringify(init.body));
  await buyerSettles(init.body.url, "paid");
  await waitFor("paid", async () => (await getPayment(app.kv, init.body.id))?.status === "succeeded" || undefined);
  const session = fake.sessions.get((await getPayment(app.kv, init.body.id))!.providerRef!)!;
  return { id: init.body.id as string, session };
}

const METRICS_TOKEN = "metrics-token-for-tests-0123456789";

/** Refused news of money on sessions no stored payment names, as /metrics counts them for the account. */
const paidOrphans = (app: TestApp, account: ProviderAccount) =>
  scrapeSample(app, METRICS_TOKEN, "aimbrellapay_paid_orphan_webhooks_total", {
    provider: "stripe",
    account: account.id,
  });

/** Paid orphans no operator has marked handled on the account, as /metrics counts them from the store. */
const unhandledOrphans = (app: TestApp, account: ProviderAccount) =>
  scrapeSample(app, METRICS_TOKEN, "aimbrellapay_paid_orphans_unhandled", { provider: "stripe", account: account.id });

/** The types of the postbacks a shop's receiver got, in order. */
const postbackTypes = (shop: { received: { body: string }[] }) => shop.received.map((x) => JSON.parse(x.body).type);

/** Wraps the fake's request handler (to delay or replace its answers); the returned function puts it back. */
function interceptFake(
  fake: StripeFake,
  wrap: (req: Request, handle: (req: Request) => Promise<Response>) => Promise<Response>,
) {
  // deno-lint-ignore no-explicit-any
  const f = fake as any;
  const handle = f.handle.bind(fake);
  f.handle = (req: Request) => wrap(req, handle);
  return () => {
    f.handle = handle;
  };
}

Deno.test("[stripe] two shops routed to a Bansky account and a Stripe connected account each take a payment end to end, the log names each orgId, and each refund goes to its own account", async () => {
  await withStripe(async (app, fake, stripe) => {
    const ctx = app.server.ctx;
    const bansky = await createAccount(ctx, {
      provider: "bansky",
      label: "Bansky org 1",
      orgId: "891027350515",
      credentials: { apiUrl: app.sandboxUrl, apiToken: "token-org-a", webhookSecret: "whsec-org-a" },
    }, { actor: "test" });
    const { shop: shop2, apiKey: key2 } = await createShop(app.kv, { name: "Org 2 shop", allowedHosts: [] }, {
      allowLocalUrls: true,
      now: Date.now(),
    });
    await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: bansky.id }, { actor: "test" });
    await setShopRouting(ctx, shop2.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });

    const take = async (key: string) => {
      const init = await callInit(app, paymentBody({ amount: 4200, currency: "EUR" }), { key });
      assert.equal(init.status, 201, JSON.stringify(init.body));
      const landed = await buyerSettles(init.body.url, "paid");
      assert.match(landed, /shop\/success/);
      return await waitFor("succeeded", async () => {
        const p = await getPayment(app.kv, init.body.id);
        return p?.status === "succeeded" ? p : undefined;
      });
    };
    const onBansky = await take(app.shop.apiKey);
    const onStripe = await take(key2);
    assert.equal(onStripe.provider, "stripe");
    assert.equal(onStripe.accountId, stripe.id);
    const session = fake.sessions.get(onStripe.providerRef!)!;
    assert.equal(session.account, ORG2, "the session was made on the organisation's connected account");
    assert.equal(session.client_reference_id, onStripe.id);
    assert.equal(session.amount_total, 4200);
    assert.equal(session.currency, "eur");
    assert.deepEqual(fake.delivered, [{ type: "checkout.session.completed", status: 200 }]);

    for (const [p, key] of [[onBansky, app.shop.apiKey], [onStripe, key2]] as const) {
      const res = await api(app, key, "POST", `/payments/${p.id}/refunds`, { amount: 1000 });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.refund.status, "succeeded");
    }
    const stripeRefunds = [...fake.refunds.values()];
    assert.equal(stripeRefunds.length, 1, "one refund reached Stripe");
    assert.equal(stripeRefunds[0].account, ORG2);
    assert.equal(stripeRefunds[0].payment_intent, session.payment_intent);
    assert.equal(stripeRefunds[0].amount, 1000);
    assert.equal(app.sandbox.calls.refund, 1, "and one reached Bansky");

    const logged = async (shopId: string) =>
      await waitFor("entries", async () => {
        const e = await listOperations(app.kv, { shopId, limit: 20 });
        return e.length >= 3 ? e : undefined;
      });
    for (const e of await logged(app.shop.id)) assert.equal(e.orgId, "891027350515");
    const stripeOps = await logged(shop2.id);
    for (const e of stripeOps) assert.deepEqual([e.orgId, e.provider, e.outcome], ["991011000048", "stripe", "ok"]);
    assert.deepEqual(stripeOps.map((e) => e.operation).sort(), ["create", "refund", "status"]);
    const refundId = stripeOps.find((e) => e.operation === "refund")!.refundId!;
    assert.equal((await getRefund(app.kv, refundId))?.providerRef, stripeRefunds[0].id);
  });
});

Deno.test("[stripe] webhooks are verified by the SDK: a bad signature and a stale timestamp are refused; other event types, and another connected account's events (which every Connect endpoint of the platform hears), are acknowledged and change nothing", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const init = await callInit(app, paymentBody());
    const ref = (await getPayment(app.kv, init.body.id))!.providerRef!;
    const url = `${app.baseUrl}/api/payment-verify/${stripe.id}`;
    const event = (
      account: string,
      type = "checkout.session.completed",
      clientReferenceId: string | null = init.body.id,
    ) =>
      JSON.stringify({
        id: `evt_${crypto.randomUUID()}`,
        object: "event",
        type,
        account,
        data: {
          object: {
            id: ref,
            object: "checkout.session",
            client_reference_id: clientReferenceId,
            status: "complete",
            payment_status: "paid",
          },
        },
      });
    const post = (payload: string, signature: string) =>
      fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "stripe-signature": signature },
        body: payload,
      })
        .then(async (r) => ({ status: r.status, body: await r.json() }));

    const own = event(ORG2);
    assert.equal((await post(own, fake.sign("whsec_wrong", own))).status, 401);
    const stale = await post(own, fake.sign("whsec_stripe_org2", own, Math.floor(Date.now() / 1000) - 3600));
    assert.equal(stale.status, 401);
    assert.match(stale.body.error.message, /stale timestamp/);
    // Another connected account's event reaches every Connect endpoint of the platform: acknowledged, never applied.
    const other = event("acct_1Other");
    const theirs = await post(other, fake.sign("whsec_stripe_org2", other));
    assert.deepEqual([theirs.status, theirs.body.outcome], [200, "unchanged"], "another account's event");
    assert.equal((await getPayment(app.kv, init.body.id))!.status, "pending");
    const unrelated = event(ORG2, "customer.created");
    const ack = await post(unrelated, fake.sign("whsec_stripe_org2", unrelated));
    assert.equal(ack.status, 200);
    assert.equal(ack.body.outcome, "unchanged");
    // A session without our payment id was made by someone else on the account (a payment link): not ours to apply.
    const foreign = event(ORG2, "checkout.session.completed", null);
    const ignored = await post(foreign, fake.sign("whsec_stripe_org2", foreign));
    assert.equal(ignored.status, 200);
    assert.equal(ignored.body.outcome, "unchanged");

    // Signed and ours, but the session is still open at Stripe: the claim is not confirmed yet.
    const early = await post(own, fake.sign("whsec_stripe_org2", own));
    assert.equal(early.status, 409);
    assert.equal((await getPayment(app.kv, init.body.id))?.status, "pending");
  });
});

Deno.test("[stripe] a cancel expires the Checkout Session; a crypto payment routed to Stripe gets no_route", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const crypto = await callInit(app, paymentBody({ type: "crypto" }));
    assert.equal(crypto.status, 422);
    assert.equal(crypto.body.error.code, "no_route");
    assert.match(crypto.body.error.message, /takes no crypto payments\.$/);
    assert.equal(fake.calls["POST /v1/checkout/sessions"] ?? 0, 0);

    const init = await callInit(app, paymentBody({ currency: "USD" }));
    const again = await callInit(
      app,
      paymentBody({ currency: "USD", id: "order-1", postbackUrl: "http://127.0.0.1:9/pb" }),
    );
    const retry = await callInit(
      app,
      paymentBody({ currency: "USD", id: "order-1", postbackUrl: "http://127.0.0.1:9/pb" }),
    );
    assert.equal(retry.body.id, again.body.id);
    const cancelled = await api(app, app.shop.apiKey, "POST", `/payments/${init.body.id}/cancel`);
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    assert.equal(cancelled.body.payment.status, "cancelled");
    const ref = (await getPayment(app.kv, init.body.id))!.providerRef!;
    assert.equal(fake.sessions.get(ref)?.status, "expired");
    // Expiring it again at Stripe is refused; the adapter reports what the session is instead.
    const second = await app.server.ctx.providers.forPayment((await getPayment(app.kv, init.body.id))!);
    assert.deepEqual(await second.adapter.cancel(ref), { cancelled: false, status: "expired" });
  });
});

Deno.test("[stripe] the console rotates a Stripe account's credentials with Stripe's own fields", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const b = await operatorBrowser(app);
    await b.get("/admin/accounts");
    await b.post(`/admin/accounts/${stripe.id}/rotate`, {});
    const form = await b.post(`/admin/accounts/${stripe.id}/rotate`, { confirm: "yes" });
    assert.match(form.text, /name="connectedAccountId"/);
    assert.doesNotMatch(form.text, /name="apiToken"/);
    // What is no secret comes filled in, so replacing the secrets keeps it; the secrets never show.
    assert.ok(form.text.includes(`name="connectedAccountId" type="text" value="${ORG2}"`), "the connected account");
    assert.ok(form.text.includes(`name="apiUrl" type="url" value="${fake.url}"`), "the API host");
    assert.doesNotMatch(form.text, new RegExp(`${STRIPE_KEY}|whsec_stripe_org2`));
    const withKey = await createAccount(app.server.ctx, {
      provider: "stripe",
      label: "Stripe with checkout",
      orgId: "991011000049",
      credentials: {
        secretKey: STRIPE_KEY,
        webhookSecret: "whsec_stripe_org2",
        connectedAccountId: ORG2,
        publishableKey: "pk_test_embedded123",
      },
    }, { actor: "test" });
    await b.post(`/admin/accounts/${withKey.id}/rotate`, {});
    const keyForm = await b.post(`/admin/accounts/${withKey.id}/rotate`, { confirm: "yes" });
    assert.ok(keyForm.text.includes('name="publishableKey" type="text" value="pk_test_embedded123"'), keyForm.text);
    assert.doesNotMatch(keyForm.text, /name="apiUrl" type="url" value="http/, "Stripe's own host: nothing to keep");
    // A secret key pasted into the wrong box is refused and not shown back.
    const pasted = await b.post(`/admin/accounts/${withKey.id}/rotate`, {
      confirm: "yes",
      secretKey: STRIPE_KEY,
      webhookSecret: "whsec_stripe_org2",
      connectedAccountId: "sk_test_pastedsecret",
      publishableKey: "sk_test_pastedsecret",
    });
    assert.equal(pasted.status, 400);
    assert.doesNotMatch(pasted.text, /pastedsecret/);
    const done = await b.post(`/admin/accounts/${stripe.id}/rotate`, {
      confirm: "yes",
      secretKey: STRIPE_KEY,
      webhookSecret: "whsec_stripe_other",
      connectedAccountId: "acct_1Other",
      apiUrl: fake.url,
    });
    assert.equal(done.status, 303, done.text.slice(0, 300));
    const init = await callInit(app, paymentBody());
    assert.equal(init.status, 201, JSON.stringify(init.body));
    const ref = (await getPayment(app.kv, init.body.id))!.providerRef!;
    assert.equal(fake.sessions.get(ref)?.account, "acct_1Other", "new payments go to the new connected account");
  });
});

Deno.test("[stripe] a refund Stripe settles later arrives by refund.updated, is confirmed with Stripe, and moves the payment", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const init = await callInit(app, paymentBody({ amount: 3000 }));
    await buyerSettles(init.body.url, "paid");
    await waitFor("paid", async () => (await getPayment(app.kv, init.body.id))?.status === "succeeded" || undefined);
    fake.asyncRefunds = true;
    const res = await api(app, app.shop.apiKey, "POST", `/payments/${init.body.id}/refunds`, { amount: 3000 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.refund.status, "pending");
    const ref = (await getRefund(app.kv, res.body.refund.id))!.providerRef!;
    assert.equal(await fake.settleRefund(ref, "succeeded"), 200);
    assert.equal((await getRefund(app.kv, res.body.refund.id))?.status, "succeeded");
    assert.equal((await getPayment(app.kv, init.body.id))?.status, "refunded");
    const checks = await waitFor("refund status logged", async () => {
      const e = await listOperations(app.kv, { accountId: stripe.id, limit: 20 });
      return e.some((o) => o.operation === "refund_status") ? e : undefined;
    });
    assert.equal(checks.find((o) => o.operation === "refund_status")?.status, "succeeded");
  });
});

Deno.test("[stripe] a re-check of a payment Stripe does not know (404: made on the connected account used before) says so on the payment's page and leaves its status", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const init = await callInit(app, paymentBody());
    assert.equal(init.status, 201, JSON.stringify(init.body));
    const ref = (await getPayment(app.kv, init.body.id))!.providerRef!;
    assert.equal(fake.sessions.get(ref)?.account, ORG2);
    // The account now calls another connected account, which does not see the sessions of the one before.
    await rotateAccountCredentials(app.server.ctx, stripe.id, {
      secretKey: STRIPE_KEY,
      webhookSecret: "whsec_stripe_other",
      connectedAccountId: "acct_1Other",
      apiUrl: fake.url,
    }, { actor: "test" });
    const b = await operatorBrowser(app);
    await b.get(`/admin/payments/${init.body.id}`);
    const asked = fake.calls["GET /v1/checkout/sessions/{id}"] ?? 0;
    const res = await b.post(`/admin/payments/${init.body.id}/recheck`, {});
    assert.equal(fake.calls["GET /v1/checkout/sessions/{id}"], asked + 1, "Stripe was asked, once");
    assert.equal(res.status, 422, "a refusal shown on the payment's page");
    assert.match(res.text, /<h1>Payment<\/h1>/);
    assert.ok(res.text.includes(init.body.id));
    assert.match(
      res.text,
      /role="alert">Not re-checked: The provider does not know this payment \(it answered 404 to the status check\)\. Our status is left as it is\./,
    );
    assert.ok(!res.text.includes(STRIPE_KEY), "never our key");
    assert.doesNotMatch(res.text, /No such checkout\.session|invalid_request_error/, "never Stripe's own words");
    assert.equal((await getPayment(app.kv, init.body.id))!.status, "pending", "our status is left as it is");
    const status = (await listOperations(app.kv, { shopId: app.shop.id, limit: 20 })).find((e) =>
      e.operation === "status"
    );
    assert.deepEqual([status?.provider, status?.outcome], ["stripe", "error"], "the operation log has the call");
  });
});

Deno.test("[stripe] amounts go to Stripe in Stripe's own minor units: ISK with two decimals, MGA with none, three-decimal currencies in steps of ten; one Stripe cannot take is refused before it is asked", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const sent = async (amount: number, currency: string) => {
      const init = await callInit(app, paymentBody({ amount, currency }));
      assert.equal(init.status, 201, JSON.stringify(init.body));
      const p = (await getPayment(app.kv, init.body.id))!;
      assert.equal(p.amount, amount, "stored as the shop gave it, in ISO 4217 minor units");
      return { payment: p, total: fake.sessions.get(p.providerRef!)!.amount_total };
    };
    // 1000 krónur: Stripe's API keeps ISK with two decimals ("an ISK amount of 100 represents 1 króna").
    assert.equal((await sent(1000, "ISK")).total, 100_000);
    // 1000.00 ariary (ISO 4217: two decimals): Stripe takes MGA with none.
    assert.equal((await sent(100_000, "MGA")).total, 1000);
    assert.equal((await sent(1000, "EUR")).total, 1000);
    assert.equal((await sent(12_340, "KWD")).total, 12_340);

    const sessions = fake.sessions.size;
    for (const [amount, currency, why] of [[150, "MGA", /whole MGA/], [12_345, "KWD", /multiple of 10/]] as const) {
      const refused = await callInit(app, paymentBody({ amount, currency }));
      assert.equal(refused.status, 422, JSON.stringify(refused.body));
      assert.match(refused.body.error.fields.amount, why);
      ErrorResponse.parse(refused.body);
    }
    assert.equal(fake.sessions.size, sessions, "Stripe was not asked");

    // A refund goes in Stripe's units too: 300 krónur of a paid ISK payment.
    const { payment } = await sent(2000, "ISK");
    await buyerSettles(`${app.baseUrl}/integration/pay?id=${payment.id}`, "paid");
    await waitFor("paid", async () => (await getPayment(app.kv, payment.id))?.status === "succeeded" || undefined);
    const res = await api(app, app.shop.apiKey, "POST", `/payments/${payment.id}/refunds`, { amount: 300 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.refund.amount, 300);
    const intent = fake.sessions.get(payment.providerRef!)!.payment_intent;
    assert.deepEqual([...fake.refunds.values()].filter((r) => r.payment_intent === intent).map((r) => r.amount), [
      30_000,
    ]);

    // A refund Stripe cannot take exactly (part of an ariary) fails at once, and its amount stays refundable.
    const mga = (await sent(100_000, "MGA")).payment;
    await buyerSettles(`${app.baseUrl}/integration/pay?id=${mga.id}`, "paid");
    await waitFor("paid", async () => (await getPayment(app.kv, mga.id))?.status === "succeeded" || undefined);
    const part = await api(app, app.shop.apiKey, "POST", `/payments/${mga.id}/refunds`, { amount: 150 });
    assert.equal(part.body.refund.status, "failed", JSON.stringify(part.body));
    const whole = await api(app, app.shop.apiKey, "POST", `/payments/${mga.id}/refunds`, { amount: 100_000 });
    assert.equal(whole.body.refund.status, "succeeded", JSON.stringify(whole.body));
  });
});

Deno.test("[stripe] a refund Stripe refuses outright (400: more than is left there, say after a Dashboard refund) fails at once: its amount is free again, the shop gets refund.failed, and the operation log has Stripe's reason", async () => {
  const shop = startShopReceiver();
  await withStripe(async (app, fake, stripe) => {
    const { id, session } = await paidOnStripe(app, fake, stripe, 4200, shop.url);
    // The merchant refunded 2000 in Stripe's Dashboard (no metadata: our webhook handler ignores it).
    fake.refunds.set("re_dashboard", {
      id: "re_dashboard",
      object: "refund",
      account: ORG2,
      amount: 2000,
      payment_intent: session.payment_intent!,
      status: "succeeded",
      metadata: {},
      created: Math.floor(Date.now() / 1000),
    });
    // The shop refunds the whole order through us: Stripe answers 400 "Refund exceeds the charge".
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, {});
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.refund.status, "failed");
    assert.equal(r.body.refund.failureReason, "The provider refused the refund request.");
    assert.equal((await getRefundReservation(app.kv, id)).value, 0, "its amount is free again");
    assert.equal(await countScheduledJobs(app.kv, "refund"), 0);
    await waitFor("refund.failed postback", () => postbackTypes(shop).includes("refund.failed") || undefined);
    const call = await waitFor(
      "the refused call logged",
      async () =>
        (await listOperations(app.kv, { shopId: app.shop.id, limit: 20 })).find((e) => e.operation === "refund"),
    );
    assert.equal(call.outcome, "error");
    assert.match(
      call.error!,
      /POST \/v1\/refunds answered 400 \(StripeInvalidRequestError\): Refund exceeds the charge\./,
    );
    assert.ok(!call.error!.includes(STRIPE_KEY), "never our key");
    // A day of sweeps asks Stripe nothing more: its answer would be the same.
    const asked = fake.calls["POST /v1/refunds"];
    await sweepAt(app, 86_400_000);
    assert.equal(fake.calls["POST /v1/refunds"], asked);
    // What is really left at Stripe stays refundable.
    const remainder = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 2200 });
    assert.equal(remainder.status, 201, JSON.stringify(remainder.body));
    assert.equal(remainder.body.refund.status, "succeeded");
  }, { JOBS_QUEUE: "off" });
  await shop.close();
});

Deno.test("[stripe] a refund Stripe does not answer (429, 500, or 409: the same key in flight) stays pending with its amount held, and the job asks again until Stripe answers", async () => {
  await withStripe(async (app, fake, stripe) => {
    const { id } = await paidOnStripe(app, fake, stripe, 3000);
    // The 500 first: a retry met by one asks again at once under a new key (once it found no refund of ours).
    const answers = [
      [500, "api_error", null],
      [429, "rate_limit_error", null],
      [409, "invalid_request_error", "idempotency_key_in_use"],
    ] as const;
    let n = 0;
    const restore = interceptFake(fake, (req, handle) => {
      if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/refunds" || n >= answers.length) {
        return handle(req);
      }
      const [status, type, code] = answers[n++];
      const error = { type, message: "Try again later.", ...(code ? { code } : {}) };
      return Promise.resolve(Response.json({ error }, { status }));
    });
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 1000 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.refund.status, "pending");
    for (const ahead of [61_000, 5 * 60_000]) {
      await sweepAt(app, ahead);
      assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "pending");
      assert.equal((await getRefundReservation(app.kv, id)).value, 1000);
    }
    assert.equal(n, 3, "every answer was no answer");
    await sweepAt(app, 30 * 60_000);
    restore();
    assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "succeeded");
    assert.equal((await getPayment(app.kv, id))!.refundedAmount, 1000);
    assert.equal([...fake.refunds.values()].length, 1);
  }, { JOBS_QUEUE: "off" });
});

Deno.test("[stripe] a refund Stripe reverses after it succeeded (refund.updated: succeeded -> failed, the card was closed) fails: the payment's refundedAmount goes down and its status back, the amount is free again, and the shop gets refund.failed", async () => {
  const shop = startShopReceiver();
  await withStripe(async (app, fake, stripe) => {
    const { id } = await paidOnStripe(app, fake, stripe, 5000, shop.url);
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 5000 });
    assert.equal(r.body.refund.status, "succeeded");
    assert.equal((await getPayment(app.kv, id))!.status, "refunded");
    await waitFor("refund.succeeded", () => postbackTypes(shop).includes("refund.succeeded") || undefined);
    const ref = (await getRefund(app.kv, r.body.refund.id))!.providerRef!;
    // Days later Stripe reports the refund failed (failure_reason expired_or_canceled_card).
    assert.equal(await fake.settleRefund(ref, "failed"), 200);
    const stored = (await getRefund(app.kv, r.body.refund.id))!;
    assert.equal(stored.status, "failed", "Stripe says the buyer did not get the money back");
    const p = (await getPayment(app.kv, id))!;
    assert.deepEqual([p.status, p.refundedAmount], ["succeeded", 0]);
    assert.equal((await getRefundReservation(app.kv, id)).value, 0);
    assert.equal(await countScheduledJobs(app.kv, "refund_recheck"), 0, "the webhook's reversal ends the re-checks");
    await waitFor("refund.failed", () => postbackTypes(shop).includes("refund.failed") || undefined);
    // The same news again is a duplicate.
    assert.equal(await fake.settleRefund(ref, "failed"), 200);
    await new Promise((res) => setTimeout(res, 200));
    assert.deepEqual(postbackTypes(shop), ["payment.succeeded", "refund.succeeded", "refund.failed"]);
    // Stripe gave the money back to the merchant's balance: the shop can refund it again.
    const again = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, {});
    assert.deepEqual([again.status, again.body.refund.amount, again.body.refund.status], [201, 5000, "succeeded"]);
  });
  await shop.close();
});

const DAY_MS = 86_400_000;

Deno.test("[stripe] a refund Stripe reverses days after its success, its webhook lost, is found by the re-check a day after the success (an hour after Stripe failed to answer): it fails, the payment's refundedAmount and status go back, the amount is free again, and the shop gets refund.failed, once however many runs", async () => {
  const shop = startShopReceiver();
  await withStripe(async (app, fake, stripe) => {
    const { id } = await paidOnStripe(app, fake, stripe, 5000, shop.url);
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 3000 });
    assert.equal(r.body.refund.status, "succeeded", JSON.stringify(r.body));
    assert.equal((await getPayment(app.kv, id))!.status, "partially_refunded");
    await waitFor("refund.succeeded", () => postbackTypes(shop).includes("refund.succeeded") || undefined);
    const refundId = r.body.refund.id as string;
    const ref = (await getRefund(app.kv, refundId))!.providerRef!;
    // Hours later the buyer's bank sends the refund back, and Stripe's refund.failed never reaches us.
    assert.equal(await fake.reverseRefund(ref, { sendEvent: false }), 0);
    let reads = 0;
    let down = false;
    interceptFake(fake, (req, handle) => {
      if (req.method !== "GET" || !new URL(req.url).pathname.startsWith("/v1/refunds/")) return handle(req);
      reads++;
      return down ? Promise.resolve(Response.json({ error: { type: "api_error" } }, { status: 500 })) : handle(req);
    });

    // Within the day, nothing asks Stripe: its webhook has every chance first.
    await sweepAt(app, 12 * 3_600_000);
    assert.equal(reads, 0);
    // A day after the success the re-check asks; Stripe answers 500: nothing changes, and it asks again an hour on.
    down = true;
    await sweepAt(app, DAY_MS + 60_000);
    assert.equal(reads, 1);
    assert.equal((await getRefund(app.kv, refundId))!.status, "succeeded");
    assert.equal((await getPayment(app.kv, id))!.refundedAmount, 3000);
    down = false;
    await sweepAt(app, DAY_MS + 30 * 60_000);
    assert.equal(reads, 1, "the retry waits its hour");
    // Two runs at once (two processes' sweeps): one reversal.
    const ctx = app.server.ctx;
    const realNow = ctx.now;
    ctx.now = () => realNow() + DAY_MS + 62 * 60_000;
    try {
      await Promise.all([runRefundRecheck(ctx, refundId), runRefundRecheck(ctx, refundId)]);
    } finally {
      ctx.now = realNow;
    }
    const stored = (await getRefund(app.kv, refundId))!;
    assert.equal(stored.status, "failed");
    assert.match(stored.failureReason!, /reversed the refund after it had succeeded/);
    const p = (await getPayment(app.kv, id))!;
    assert.deepEqual([p.status, p.refundedAmount], ["succeeded", 0]);
    assert.equal((await getRefundReservation(app.kv, id)).value, 0);
    assert.equal(await countScheduledJobs(app.kv, "refund_recheck"), 0, "its re-checks ended with it");
    await waitFor("refund.failed", () => postbackTypes(shop).includes("refund.failed") || undefined);
    // Later sweeps ask Stripe nothing more and tell the shop nothing more.
    const asked = reads;
    await sweepAt(app, 40 * DAY_MS);
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(reads, asked);
    assert.deepEqual(postbackTypes(shop), ["payment.succeeded", "refund.succeeded", "refund.failed"]);
    // The money is back in the account's balance at Stripe: the shop can refund it again.
    const again = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, {});
    assert.deepEqual([again.status, again.body.refund.amount, again.body.refund.status], [201, 5000, "succeeded"]);
  }, { JOBS_QUEUE: "off" });
  await shop.close();
});

Deno.test("[stripe] a refund that stands is asked about 1, 5, 10 and 30 days after its success and then never again; each re-check changes nothing but its job", async () => {
  const shop = startShopReceiver();
  await withStripe(async (app, fake, stripe) => {
    const { id } = await paidOnStripe(app, fake, stripe, 5000, shop.url);
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, {});
    assert.equal(r.body.refund.status, "succeeded", JSON.stringify(r.body));
    await waitFor("refund.succeeded", () => postbackTypes(shop).includes("refund.succeeded") || undefined);
    const before = (await getRefund(app.kv, r.body.refund.id))!;
    const paymentBefore = await getPayment(app.kv, id);
    assert.equal(await countScheduledJobs(app.kv, "refund_recheck"), 1);
    const reads = () => fake.calls["GET /v1/refunds/{id}"] ?? 0;
    for (const [days, asked] of [[0.5, 0], [1, 1], [3, 1], [5, 2], [9, 2], [10, 3], [29, 3], [30, 4], [90, 4]]) {
      await sweepAt(app, days * DAY_MS + 60_000);
      assert.equal(reads(), asked, `asked ${asked} times after ${days} days`);
    }
    const after = (await getRefund(app.kv, r.body.refund.id))!;
    assert.equal(after.recheckAt, null, "its re-checks are through");
    assert.deepEqual({ ...after, recheckAt: before.recheckAt }, before, "nothing else of the refund changed");
    assert.deepEqual(await getPayment(app.kv, id), paymentBefore);
    assert.equal((await getRefundReservation(app.kv, id)).value, 5000);
    assert.equal(await countScheduledJobs(app.kv, "refund_recheck"), 0);
    assert.deepEqual(postbackTypes(shop), ["payment.succeeded", "refund.succeeded"]);
  }, { JOBS_QUEUE: "off" });
  await shop.close();
});

Deno.test("[stripe] a refund whose answer was lost is found by its id in Stripe's list before it is asked for again, so a retry after Stripe's 24 h idempotency window refunds once", async () => {
  await withStripe(async (app, fake, stripe) => {
    const { id } = await paidOnStripe(app, fake, stripe, 5000);
    // The first POST /v1/refunds lands at Stripe, but its answer comes after our timeout (2 s in tests).
    let slow = true;
    interceptFake(fake, async (req, handle) => {
      const res = await handle(req);
      if (slow && req.method === "POST" && new URL(req.url).pathname === "/v1/refunds") {
        slow = false;
        await new Promise((r) => setTimeout(r, 2500));
      }
      return res;
    });
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 2000 });
    assert.equal(r.body.refund.status, "pending");
    assert.equal([...fake.refunds.values()].length, 1, "Stripe made the refund");
    await new Promise((res) => setTimeout(res, 700));
    // No webhook reached us and no job ran for a day (the process was down); Stripe prunes idempotency keys after
    // 24 hours.
    fake.now = () => Date.now() + 25 * 3_600_000;
    await sweepAt(app, 25 * 3_600_000);
    const ours = (await getRefund(app.kv, r.body.refund.id))!;
    const atStripe = [...fake.refunds.values()].filter((x) => x.metadata.refundId === r.body.refund.id);
    assert.equal(atStripe.length, 1, "one refund of ours is one refund at Stripe");
    assert.deepEqual([ours.status, ours.providerRef], ["succeeded", atStripe[0].id]);
    assert.equal((await getPayment(app.kv, id))!.refundedAmount, 2000);
    assert.equal(fake.calls["GET /v1/refunds"], 1, "the retry looked first");
    assert.equal(fake.calls["POST /v1/refunds"], 1, "and found it: no second request");
  }, { JOBS_QUEUE: "off" });
});

Deno.test("[stripe] a buyer who types an amount the shop's provider cannot take exactly (MGA in part of an ariary) is asked to round it on the amount field, not told the form is out of order", async () => {
  await withStripe(async (app, _fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const form = (await api(app, app.shop.apiKey, "POST", "/forms", { kind: "fiat", title: "Gift", currency: "MGA" }))
      .body.form;
    const submit = async (amount: string) => {
      const page = await (await fetch(`${app.baseUrl}/forms/${form.id}`)).text();
      const token = page.match(/name="_token" value="([^"]+)"/)![1];
      const res = await fetch(`${app.baseUrl}/forms/${form.id}/submit`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin" },
        body: new URLSearchParams({ _token: token, amount, email: "buyer@example.com" }),
        redirect: "manual",
      });
      return { status: res.status, html: await res.text() };
    };
    const odd = await submit("10.50");
    assert.equal(odd.status, 422, odd.html);
    assert.match(odd.html, /aria-invalid="true"/);
    assert.match(odd.html, /Enter a whole amount of MGA, such as 10\./);
    assert.doesNotMatch(odd.html, /Stripe|cannot take payments right now/, "no provider's name, no 'out of order'");
    assert.equal((await submit("10")).status, 303, "rounded, it goes through");
  });
});

Deno.test("[stripe] a payment whose session was made before amounts went in Stripe's units is refunded on the scale it was charged: an MGA buyer gets back all that was taken", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const init = await callInit(app, paymentBody({ amount: 100_000, currency: "MGA" }));
    assert.equal(init.status, 201, JSON.stringify(init.body));
    await buyerSettles(init.body.url, "paid");
    await waitFor("paid", async () => (await getPayment(app.kv, init.body.id))?.status === "succeeded" || undefined);
    const p = (await getPayment(app.kv, init.body.id))!;
    const session = fake.sessions.get(p.providerRef!)!;
    assert.equal(session.metadata.amountUnits, "stripe", "made in Stripe's units now");
    // As such a session was made before: our minor units sent as they were (100,000 MGA charged), no mark.
    session.amount_total = 100_000;
    delete session.metadata.amountUnits;
    const res = await api(app, app.shop.apiKey, "POST", `/payments/${p.id}/refunds`, {});
    assert.equal(res.body.refund.status, "succeeded", JSON.stringify(res.body));
    const atStripe = [...fake.refunds.values()].filter((r) => r.payment_intent === session.payment_intent);
    assert.deepEqual(atStripe.map((r) => r.amount), [100_000], "what the buyer was charged goes back");
  });
});

Deno.test("[stripe] a delayed payment (a bank debit) that fails makes the payment failed, not expired: Stripe's async_payment_failed is confirmed by the session's payment intent, and a status check finds the failure when that webhook is lost", async () => {
  const shop = startShopReceiver();
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const start = async (id: string) => {
      const init = await callInit(app, paymentBody({ id, postbackUrl: shop.url, expiresIn: 60 }));
      assert.equal(init.status, 201, JSON.stringify(init.body));
      const ref = (await getPayment(app.kv, init.body.id))!.providerRef!;
      // The buyer finishes Checkout with a bank debit: complete, unpaid, the money on its way.
      assert.equal(await fake.payDelayed(ref), 200);
      assert.equal((await getPayment(app.kv, init.body.id))?.status, "pending");
      return { id: init.body.id as string, ref };
    };
    const told = await start("order-sepa");
    // Days later the debit fails. The session stays complete and unpaid (its payment_status has no "failed"); the
    // payment intent says so, and Stripe sends checkout.session.async_payment_failed.
    assert.equal(await fake.settleDelayed(told.ref, "failed"), 200, "confirmed at once, not 409 on every retry");
    assert.equal((await getPayment(app.kv, told.id))?.status, "failed");
    assert.equal(fake.calls["GET /v1/payment_intents/{id}"] ?? 0, 0, "the intent came expanded with the session");

    // The same failure whose webhook is lost: the check at the expiry asks Stripe and finds it failed.
    const lost = await start("order-sepa-lost");
    await fake.settleDelayed(lost.ref, "failed", { sendEvent: false });
    const realNow = app.server.ctx.now;
    app.server.ctx.now = () => realNow() + 61_000;
    try {
      await runPaymentCheck(app.server.ctx, lost.id);
    } finally {
      app.server.ctx.now = realNow;
    }
    assert.equal((await getPayment(app.kv, lost.id))?.status, "failed");

    // And one whose debit goes through is paid.
    const paid = await start("order-sepa-paid");
    assert.equal(await fake.settleDelayed(paid.ref, "succeeded"), 200);
    assert.equal((await getPayment(app.kv, paid.id))?.status, "succeeded");

    const byOrder = await waitFor("three postbacks", () => {
      const all = shop.received.map((r) => JSON.parse(r.body));
      return all.length >= 3 ? Object.fromEntries(all.map((b) => [b.data.id, b.type])) : undefined;
    });
    assert.deepEqual(byOrder, {
      "order-sepa": "payment.failed",
      "order-sepa-lost": "payment.failed",
      "order-sepa-paid": "payment.succeeded",
    });
  });
  await shop.close();
});

Deno.test("[stripe] a Stripe refund whose first call met a 500 and whose retry Stripe refuses outright (400: a Dashboard refund took the rest; the retry found no earlier refund of ours) fails as refunds.md says, instead of staying pending forever with its amount held", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const init = await callInit(app, paymentBody({ amount: 4200 }));
    assert.equal(init.status, 201, JSON.stringify(init.body));
    await buyerSettles(init.body.url, "paid");
    await waitFor("paid", async () => (await getPayment(app.kv, init.body.id))?.status === "succeeded" || undefined);
    const id: string = init.body.id;
    const session = fake.sessions.get((await getPayment(app.kv, id))!.providerRef!)!;
    // Stripe's first answer to POST /v1/refunds is a 500 (nothing made); later ones are its own.
    // deno-lint-ignore no-explicit-any
    const f = fake as any;
    const handle = f.handle.bind(fake);
    let failed = false;
    f.handle = (req: Request) => {
      if (!failed && req.method === "POST" && new URL(req.url).pathname === "/v1/refunds") {
        failed = true;
        return Promise.resolve(Response.json({ error: { type: "api_error", message: "boom" } }, { status: 500 }));
      }
      return handle(req);
    };
    const res = await fetch(`${app.baseUrl}/api/v1/payments/${id}/refunds`, {
      method: "POST",
      headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
      body: "{}",
    });
    const r = await res.json();
    assert.equal(r.refund.status, "pending");
    // Meanwhile the merchant refunds 2000 in Stripe's Dashboard.
    fake.refunds.set("re_dashboard", {
      id: "re_dashboard",
      object: "refund",
      account: ORG2,
      amount: 2000,
      payment_intent: session.payment_intent!,
      status: "succeeded",
      metadata: {},
      created: Math.floor(Date.now() / 1000),
    });
    // Days of the job's checks: each looks for an earlier refund of ours (none) and asks again (400).
    for (const ahead of [61_000, 10 * 60_000, 3_600_000, 86_400_000, 7 * 86_400_000]) await sweepAt(app, ahead);
    const stored = (await getRefund(app.kv, r.refund.id))!;
    assert.ok(fake.calls["GET /v1/refunds"] >= 1, "the retries looked for an earlier refund and found none");
    assert.deepEqual(
      { status: stored.status, held: (await getRefundReservation(app.kv, id)).value },
      { status: "failed", held: 0 },
      `a week later: ${stored.status} after ${stored.checks} checks, ${fake.calls["POST /v1/refunds"]} POSTs`,
    );
  }, { JOBS_QUEUE: "off" });
});

Deno.test("[stripe] a shop's retry of a payment whose session Stripe made but answered too late, or whose routes changed meanwhile, is the same request at Stripe: the session it made is answered, never an idempotency_error", async (t) => {
  await withStripe(async (app, fake, stripe) => {
    const ctx = app.server.ctx;
    await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    // The first POST /v1/checkout/sessions under each key lands at Stripe, but its answer comes after our timeout.
    const late = new Set<string>();
    interceptFake(fake, async (req, handle) => {
      const res = await handle(req);
      const key = req.headers.get("idempotency-key") ?? "";
      if (req.method === "POST" && new URL(req.url).pathname === "/v1/checkout/sessions" && !late.has(key)) {
        late.add(key);
        await new Promise((r) => setTimeout(r, 2500));
      }
      return res;
    });
    const body = (id: string) => paymentBody({ id, postbackUrl: "http://127.0.0.1:9/pb", amount: 4200 });
    const lastSession = () => [...fake.sessions.keys()].at(-1)!;

    await t.step("a retry with the same body", async () => {
      const first = await callInit(app, body("o-late"));
      assert.equal(first.status, 504, JSON.stringify(first.body));
      assert.equal(fake.sessions.size, 1, "Stripe made the session");
      const retry = await callInit(app, body("o-late"));
      assert.equal(retry.status, 201, JSON.stringify(retry.body));
      assert.equal((await getPayment(app.kv, retry.body.id))!.providerRef, lastSession(), "the session made first");
      assert.equal(fake.sessions.size, 1);
    });

    await t.step("a retry after the shop's routes moved to another account on the same connected account", async () => {
      const first = await callInit(app, body("o-moved"));
      assert.equal(first.status, 504, JSON.stringify(first.body));
      const made = lastSession();
      const renewed = await createAccount(ctx, {
        provider: "stripe",
        label: "Stripe org 2, renewed",
        orgId: "991011000048",
        credentials: {
          secretKey: STRIPE_KEY,
          webhookSecret: "whsec_stripe_org2",
          connectedAccountId: ORG2,
          apiUrl: fake.url,
        },
      }, { actor: "test" });
      await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: renewed.id }, { actor: "test" });
      const retry = await callInit(app, body("o-moved"));
      assert.equal(retry.status, 201, JSON.stringify(retry.body));
      const p = (await getPayment(app.kv, retry.body.id))!;
      assert.deepEqual([p.accountId, p.providerRef], [renewed.id, made], "the session made first, on the new account");
      assert.equal(fake.sessions.size, 2, "one session for each order");
    });

    await t.step(
      "an order sent again with another body after a failure (a buyer's form changed) is another request",
      async () => {
        const first = await callInit(app, body("o-changed"));
        assert.equal(first.status, 504, JSON.stringify(first.body));
        const changed = await callInit(app, { ...body("o-changed"), amount: 4300 });
        assert.equal(changed.status, 504, "a new key: Stripe makes it (and answers late, here)");
        const again = await callInit(app, { ...body("o-changed"), amount: 4300 });
        assert.equal(again.status, 201, JSON.stringify(again.body));
        assert.equal(fake.sessions.get((await getPayment(app.kv, again.body.id))!.providerRef!)!.amount_total, 4300);
      },
    );
  });
});

Deno.test("[stripe] a payment whose session creation Stripe answered 500 is asked again under another key, and a shop's retry of one that failed so gets a session, instead of Stripe's stored 500 again for a day", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const body = (id: string) => paymentBody({ id, postbackUrl: "http://127.0.0.1:9/pb", amount: 4200 });
    // Stripe fails the creation once it began: it stores that 500 under the key, and answers it to every retry.
    fake.failing["POST /v1/checkout/sessions"] = 1;
    const once = await callInit(app, body("o-500"));
    assert.equal(once.status, 201, JSON.stringify(once.body));
    assert.equal(fake.sessions.get((await getPayment(app.kv, once.body.id))!.providerRef!)?.amount_total, 4200);
    assert.equal(fake.sessions.size, 1);

    // Twice: the shop is answered 502, and its retry (Stripe answering the first key's 500 again) gets a session.
    fake.failing["POST /v1/checkout/sessions"] = 2;
    const failed = await callInit(app, body("o-500-twice"));
    assert.equal(failed.status, 502, JSON.stringify(failed.body));
    const retry = await callInit(app, body("o-500-twice"));
    assert.equal(retry.status, 201, JSON.stringify(retry.body));
    const ref = (await getPayment(app.kv, retry.body.id))!.providerRef!;
    assert.equal(fake.sessions.size, 2, "nothing was made by the failed tries");
    const again = await callInit(app, body("o-500-twice"));
    assert.equal((await getPayment(app.kv, again.body.id))!.providerRef, ref, "later retries: the stored payment");
    assert.equal(fake.sessions.size, 2);

    // A refusal (4xx) is not asked again: it is about the request, and another key gets the same answer.
    let asked = 0;
    interceptFake(fake, (req, handle) => {
      if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/checkout/sessions") return handle(req);
      asked++;
      const error = { type: "invalid_request_error", message: "Invalid currency." };
      return Promise.resolve(Response.json({ error }, { status: 400 }));
    });
    const refused = await callInit(app, body("o-refused"));
    assert.equal(refused.status, 502, JSON.stringify(refused.body));
    assert.equal(asked, 1);
  });
});

Deno.test("[stripe] a refund the job asks for again is the same request at Stripe under the stricter fake, on a session made before metadata.amountUnits too; a key Stripe spoiled (a stored 500, or used with other parameters) is asked again under a new key by the job's first retry, once it found no refund of ours, so it is made at once and once", async (t) => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const refunds = (intent: string | null) => [...fake.refunds.values()].filter((r) => r.payment_intent === intent);

    await t.step("a session made before amountUnits, its first call met a 500 in front of Stripe", async () => {
      const init = await callInit(app, paymentBody({ amount: 100_000, currency: "MGA" }));
      await buyerSettles(init.body.url, "paid");
      await waitFor("paid", async () => (await getPayment(app.kv, init.body.id))?.status === "succeeded" || undefined);
      const session = fake.sessions.get((await getPayment(app.kv, init.body.id))!.providerRef!)!;
      // As such a session was made before: our minor units sent as they were (100,000 MGA charged), no mark.
      session.amount_total = 100_000;
      delete session.metadata.amountUnits;
      let failed = false;
      const restore = interceptFake(fake, (req, handle) => {
        if (failed || req.method !== "POST" || new URL(req.url).pathname !== "/v1/refunds") return handle(req);
        failed = true;
        return Promise.resolve(Response.json({ error: { type: "api_error", message: "boom" } }, { status: 500 }));
      });
      const r = await api(app, app.shop.apiKey, "POST", `/payments/${init.body.id}/refunds`, {});
      assert.equal(r.body.refund.status, "pending", JSON.stringify(r.body));
      await sweepAt(app, 61_000);
      restore();
      assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "succeeded");
      assert.deepEqual(refunds(session.payment_intent).map((x) => x.amount), [100_000], "all that was charged");
    });

    await t.step("a first call Stripe failed with a 500 it keeps under the key", async () => {
      const { id, session } = await paidOnStripe(app, fake, stripe, 3000);
      const keys: string[] = [];
      const restore = interceptFake(fake, (req, handle) => {
        if (req.method === "POST" && new URL(req.url).pathname === "/v1/refunds") {
          keys.push(req.headers.get("idempotency-key") ?? "");
        }
        return handle(req);
      });
      fake.failing["POST /v1/refunds"] = 1;
      const lookedBefore = fake.calls["GET /v1/refunds"] ?? 0;
      const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 1000 });
      assert.equal(r.body.refund.status, "pending", JSON.stringify(r.body));
      assert.equal(refunds(session.payment_intent).length, 0);
      // The job's first retry, a minute on: no refund of ours at Stripe, the key answers its stored 500 again, and
      // after looking once more it waits: the 500 is too recent for what Stripe did about it to show.
      await sweepAt(app, 61_000);
      const key = `refund-${r.body.refund.id}`;
      assert.deepEqual(keys, [key, key], "the first call and the retry's, under the refund's own key");
      assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "pending");
      // The retry ten minutes after the one before (and so after every call that could have met the 500) asks under a
      // second key. Before, every retry got the 500 until Stripe forgot the key a day later.
      await sweepAt(app, 12 * 60_000);
      restore();
      assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "succeeded");
      assert.equal((await getPayment(app.kv, id))!.refundedAmount, 1000);
      assert.deepEqual(refunds(session.payment_intent).map((x) => [x.amount, x.metadata.refundId]), [
        [1000, r.body.refund.id],
      ]);
      assert.deepEqual(keys, [key, key, key, `${key}.again`], "a second key, the same for every retry");
      assert.equal(
        (fake.calls["GET /v1/refunds"] ?? 0) - lookedBefore,
        4,
        "each retry looked before asking, and after",
      );
    });

    await t.step("a key Stripe says was used with other parameters (an older deploy's call)", async () => {
      const { id, session } = await paidOnStripe(app, fake, stripe, 3000);
      let refusals = 0;
      const restore = interceptFake(fake, (req, handle) => {
        const key = req.headers.get("idempotency-key") ?? "";
        if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/refunds" || key.endsWith(".again")) {
          return handle(req);
        }
        refusals++;
        const message =
          "Keys for idempotent requests can only be used with the same parameters they were first used with.";
        return Promise.resolve(Response.json({ error: { type: "idempotency_error", message } }, { status: 400 }));
      });
      const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 1000 });
      assert.equal(r.body.refund.status, "pending", "not failed: the first request under the key may have refunded");
      assert.equal((await getRefundReservation(app.kv, id)).value, 1000);
      // The first call did not look, so it asked no further; the retries look, are refused again, and the one ten
      // minutes after the retry before it asks anew.
      await sweepAt(app, 61_000);
      assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "pending");
      await sweepAt(app, 12 * 60_000);
      restore();
      assert.equal(refusals, 3);
      assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "succeeded");
      assert.deepEqual(refunds(session.payment_intent).map((x) => x.amount), [1000]);
    });
  }, { JOBS_QUEUE: "off" });
});

Deno.test("[stripe] a refund's retry asks under a new key only when Stripe has no refund of ours: one found by its metadata before asking, or after the retry's own 500 (Stripe made it and failed to answer), is taken, and no second refund is made", async (t) => {
  await withStripe(async (app, fake, stripe) => {
    const refunds = (intent: string | null) => [...fake.refunds.values()].filter((r) => r.payment_intent === intent);
    const posts = () => fake.calls["POST /v1/refunds"] ?? 0;
    /** Answers the n-th POST /v1/refunds from now as given: 500 in front of Stripe, or made by Stripe and then 500. */
    const answer500 = (plan: ("in_front" | "after_making" | "pass")[]) => {
      let n = 0;
      return interceptFake(fake, async (req, handle) => {
        if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/refunds") return handle(req);
        const how = plan[n++] ?? "pass";
        if (how === "pass") return handle(req);
        if (how === "after_making") await (await handle(req)).body?.cancel();
        return Response.json({ error: { type: "api_error", message: "boom" } }, { status: 500 });
      });
    };

    await t.step(
      "the first call made it and met a 500: the retry finds it by its metadata, and asks nothing",
      async () => {
        const { id, session } = await paidOnStripe(app, fake, stripe, 3000);
        const restore = answer500(["after_making"]);
        const before = posts();
        const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 1000 });
        assert.equal(r.body.refund.status, "pending", JSON.stringify(r.body));
        await sweepAt(app, 61_000);
        restore();
        assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "succeeded");
        assert.equal(posts() - before, 1, "no second POST");
        assert.deepEqual(refunds(session.payment_intent).map((x) => x.amount), [1000]);
      },
    );

    await t.step(
      "the retry's own call made it and met a 500: it looks again before a new key, and finds it",
      async () => {
        const { id, session } = await paidOnStripe(app, fake, stripe, 3000);
        // The first call's 500 comes from in front of Stripe (nothing made, nothing kept under the key); the retry's call
        // under the key is Stripe's first, which makes the refund and answers 500.
        const restore = answer500(["in_front", "after_making"]);
        const before = posts();
        const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 1000 });
        assert.equal(r.body.refund.status, "pending", JSON.stringify(r.body));
        await sweepAt(app, 61_000);
        restore();
        assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "succeeded");
        assert.deepEqual(refunds(session.payment_intent).map((x) => x.amount), [1000], "one refund, not two");
        assert.equal(posts() - before, 1, "the retry's call alone reached Stripe: nothing asked under a new key");
      },
    );
  }, { JOBS_QUEUE: "off" });
});

Deno.test("[stripe] a refund's retry that meets its first call still running at Stripe (409 idempotency_key_in_use) stays pending with its amount held and asks under no other key; the next retry finds the refund that call made, and it is made once", async () => {
  await withStripe(async (app, fake, stripe) => {
    const { id, session } = await paidOnStripe(app, fake, stripe, 3000);
    const keys: string[] = [];
    interceptFake(fake, (req, handle) => {
      if (req.method === "POST" && new URL(req.url).pathname === "/v1/refunds") {
        keys.push(req.headers.get("idempotency-key") ?? "");
      }
      return handle(req);
    });
    // Stripe works on the first call longer than we wait (2 s in tests), and makes the refund at the end; the job's
    // retry comes meanwhile.
    fake.slow["POST /v1/refunds"] = 4000;
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 1000 });
    assert.equal(r.body.refund.status, "pending", JSON.stringify(r.body));
    await sweepAt(app, 61_000);
    assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "pending", "not failed: the first call goes on");
    assert.equal((await getRefundReservation(app.kv, id)).value, 1000);
    const key = `refund-${r.body.refund.id}`;
    assert.deepEqual(keys, [key, key], "the retry met the 409 and asked under no other key");
    const made = await waitFor(
      "the first call's refund",
      () => [...fake.refunds.values()].find((x) => x.payment_intent === session.payment_intent),
    );
    fake.slow["POST /v1/refunds"] = 0;
    await sweepAt(app, 10 * 60_000);
    const ours = (await getRefund(app.kv, r.body.refund.id))!;
    assert.deepEqual([ours.status, ours.providerRef], ["succeeded", made.id]);
    assert.equal([...fake.refunds.values()].filter((x) => x.payment_intent === session.payment_intent).length, 1);
    assert.equal(keys.length, 2, "found by its metadata: nothing asked");
  }, { JOBS_QUEUE: "off" });
});

Deno.test("[stripe] a refund's retry whose own call under the refund's key met a 500 asks under no second key at once, though Stripe's list shows no refund of ours yet: Stripe made it, the list caught up later, and it is made once", async () => {
  await withStripe(async (app, fake, stripe) => {
    const { id, session } = await paidOnStripe(app, fake, stripe, 3000);
    const ours = (refundId: string) =>
      [...fake.refunds.values()].filter((x) =>
        x.payment_intent === session.payment_intent && x.metadata.refundId === refundId
      );
    const keys: string[] = [];
    let posts = 0;
    // Stripe's list lags behind what it made (it is eventually consistent) until the test says otherwise.
    let listLags = true;
    const restore = interceptFake(fake, async (req, handle) => {
      const path = new URL(req.url).pathname;
      if (req.method === "GET" && path === "/v1/refunds" && listLags) {
        return Response.json({ object: "list", url: "/v1/refunds", has_more: false, data: [] });
      }
      if (req.method !== "POST" || path !== "/v1/refunds") return handle(req);
      keys.push(req.headers.get("idempotency-key") ?? "");
      posts++;
      // The request's call: a 500 in front of Stripe (nothing made, nothing kept under the key).
      if (posts === 1) return Response.json({ error: { type: "api_error", message: "boom" } }, { status: 500 });
      // The retry's call under the refund's key: Stripe makes the refund, then answers 500.
      if (posts === 2) await (await handle(req)).body?.cancel();
      if (posts === 2) return Response.json({ error: { type: "api_error", message: "boom" } }, { status: 500 });
      return handle(req);
    });
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 1000 });
    assert.equal(r.body.refund.status, "pending", JSON.stringify(r.body));
    // Ten minutes on, past the wait for an earlier call's spoiled answer: this 500 is the retry's own, just met.
    await sweepAt(app, 11 * 60_000);
    const key = `refund-${r.body.refund.id}`;
    assert.deepEqual(keys, [key, key], "no second key after the retry's own 500");
    assert.equal(ours(r.body.refund.id).length, 1, "one refund at Stripe");
    assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "pending");
    listLags = false;
    await sweepAt(app, 30 * 60_000);
    restore();
    const settled = (await getRefund(app.kv, r.body.refund.id))!;
    assert.deepEqual([settled.status, settled.providerRef], ["succeeded", ours(r.body.refund.id)[0].id]);
    assert.equal(ours(r.body.refund.id).length, 1);
    assert.equal((await getPayment(app.kv, id))!.refundedAmount, 1000);
  }, { JOBS_QUEUE: "off" });
});

Deno.test("[stripe] a refund whose request's call never reached Stripe asks under no second key a minute after the first call that did met a 500, however long ago the refund was asked for: Stripe made that call's refund late, and it is made once", async () => {
  await withStripe(async (app, fake, stripe) => {
    const { id, session } = await paidOnStripe(app, fake, stripe, 3000);
    const ours = (refundId: string) =>
      [...fake.refunds.values()].filter((x) =>
        x.payment_intent === session.payment_intent && x.metadata.refundId === refundId
      );
    const keys: string[] = [];
    let posts = 0;
    // Stripe's list lags behind what it made (it is eventually consistent) until the test says otherwise.
    let listLags = true;
    const restore = interceptFake(fake, async (req, handle) => {
      const path = new URL(req.url).pathname;
      if (req.method === "GET" && path === "/v1/refunds" && listLags) {
        return Response.json({ object: "list", url: "/v1/refunds", has_more: false, data: [] });
      }
      if (req.method !== "POST" || path !== "/v1/refunds") return handle(req);
      keys.push(req.headers.get("idempotency-key") ?? "");
      posts++;
      // The request's call: a 500 in front of Stripe (nothing made, nothing kept under the key).
      if (posts === 1) return Response.json({ error: { type: "api_error", message: "boom" } }, { status: 500 });
      if (posts === 2) {
        // The first call that reaches Stripe, long after the request (the process was down meanwhile): Stripe keeps
        // its 500 under the key, and makes its refund a moment later.
        const late = new Request(req.url, {
          method: "POST",
          headers: stripeHeadersWithoutKey(req),
          body: await req.clone().text(),
        });
        fake.failing["POST /v1/refunds"] = 1;
        const answer = await handle(req);
        await (await handle(late)).body?.cancel();
        return answer;
      }
      return handle(req);
    });
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 1000 });
    assert.equal(r.body.refund.status, "pending", JSON.stringify(r.body));
    await sweepAt(app, 20 * 60_000);
    const key = `refund-${r.body.refund.id}`;
    assert.deepEqual(keys, [key, key]);
    assert.equal(ours(r.body.refund.id).length, 1, "Stripe made the 500's refund");
    // The next check, a minute on: the key answers the 500 kept a minute ago, too recent for what Stripe did about it
    // to show, though the refund was asked for twenty minutes before.
    await sweepAt(app, 21 * 60_000);
    assert.deepEqual(keys, [key, key, key], "no second key a minute after the 500");
    assert.equal(ours(r.body.refund.id).length, 1, "one refund at Stripe");
    assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "pending");
    listLags = false;
    await sweepAt(app, 60 * 60_000);
    restore();
    const settled = (await getRefund(app.kv, r.body.refund.id))!;
    assert.deepEqual([settled.status, settled.providerRef], ["succeeded", ours(r.body.refund.id)[0].id]);
    assert.equal(ours(r.body.refund.id).length, 1);
    assert.equal((await getPayment(app.kv, id))!.refundedAmount, 1000);
  }, { JOBS_QUEUE: "off" });
});

/** A request's headers without its Idempotency-Key: the same call, made by Stripe apart from the key's stored answer. */
function stripeHeadersWithoutKey(req: Request): Headers {
  const headers = new Headers(req.headers);
  headers.delete("idempotency-key");
  return headers;
}

Deno.test("[stripe] a refund's retry under a new key whose call Stripe is still making when the next run comes is the same request at Stripe in that run (409, then its answer): two runs never make two refunds", async () => {
  await withStripe(async (app, fake, stripe) => {
    const { id, session } = await paidOnStripe(app, fake, stripe, 3000);
    const ours = (refundId: string) =>
      [...fake.refunds.values()].filter((x) =>
        x.payment_intent === session.payment_intent && x.metadata.refundId === refundId
      );
    // The first call meets a 500 Stripe keeps under the refund's key: every retry must ask under another one.
    fake.failing["POST /v1/refunds"] = 1;
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 1000 });
    assert.equal(r.body.refund.status, "pending", JSON.stringify(r.body));
    // Stripe then works on a refund longer than we wait (2 s in tests), and makes it at the end (an incident's slow
    // API): the first retry's call under the new key is still running when the next retry looks and finds nothing.
    fake.slow["POST /v1/refunds"] = 6000;
    await sweepAt(app, 11 * 60_000);
    assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "pending");
    await sweepAt(app, 30 * 60_000);
    assert.equal((await getRefund(app.kv, r.body.refund.id))!.status, "pending");
    await waitFor("the first retry's refund", () => ours(r.body.refund.id).length > 0 || undefined);
    // Long enough for a second run's call, started within the timeout after the first's, to end too.
    await new Promise((res) => setTimeout(res, 4000));
    assert.equal(ours(r.body.refund.id).length, 1, "one refund at Stripe, not one for each retry");
    fake.slow["POST /v1/refunds"] = 0;
    await sweepAt(app, 2 * 60 * 60_000);
    const settled = (await getRefund(app.kv, r.body.refund.id))!;
    assert.deepEqual([settled.status, settled.providerRef], ["succeeded", ours(r.body.refund.id)[0].id]);
    assert.equal((await getPayment(app.kv, id))!.refundedAmount, 1000);
  }, { JOBS_QUEUE: "off" });
});

Deno.test("[stripe] a shop's retry of a payment whose session Stripe is still making (409 idempotency_key_in_use) is answered 502 provider_error, to retry, with nothing stored and no session asked for under another key; the retry after that gets the session the first request made", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const body = paymentBody({ id: "o-in-flight", postbackUrl: "http://127.0.0.1:9/pb", amount: 4200 });
    const keys: string[] = [];
    interceptFake(fake, (req, handle) => {
      if (req.method === "POST" && new URL(req.url).pathname === "/v1/checkout/sessions") {
        keys.push(req.headers.get("idempotency-key") ?? "");
      }
      return handle(req);
    });
    // Stripe works on the session longer than we wait (2 s in tests); the shop retries at once.
    fake.slow["POST /v1/checkout/sessions"] = 4000;
    const first = await callInit(app, body);
    assert.equal(first.status, 504, JSON.stringify(first.body));
    const retry = await callInit(app, body);
    assert.equal(retry.status, 502, JSON.stringify(retry.body));
    assert.equal(retry.body.error.code, "provider_error");
    assert.deepEqual(keys, [keys[0], keys[0]], "asked under no other key");
    // The operation log names Stripe's code, which tells this 409 from any other, and never its message (which
    // quotes the key).
    const logged = await listOperations(app.kv, { shopId: app.shop.id, limit: 20 });
    const refused = logged.find((e) => e.outcome === "error" && e.operation === "create");
    assert.equal(refused?.error, "POST /v1/checkout/sessions answered 409 (StripeAPIError, idempotency_key_in_use)");
    assert.equal(fake.sessions.size, 0, "the first request's session is still being made");
    await waitFor("the first request's session", () => fake.sessions.size === 1 || undefined);
    fake.slow["POST /v1/checkout/sessions"] = 0;
    const later = await callInit(app, body);
    assert.equal(later.status, 201, JSON.stringify(later.body));
    assert.equal((await getPayment(app.kv, later.body.id))!.providerRef, [...fake.sessions.keys()][0]);
    assert.equal(fake.sessions.size, 1);
  });
});

Deno.test("[stripe] an error's code that is not a short machine code (a key-shaped one) stays out of the operation log and the shop's answer", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const leak = "sk_test_leaked";
    interceptFake(fake, (req, handle) => {
      if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/checkout/sessions") return handle(req);
      const body = { error: { type: "api_error", code: leak, message: `Something with ${leak}` } };
      return Promise.resolve(Response.json(body, { status: 500 }));
    });
    const init = await callInit(app, paymentBody({ id: "o-leak", postbackUrl: "http://127.0.0.1:9/pb", amount: 4200 }));
    assert.equal(init.status, 502, JSON.stringify(init.body));
    const logged = await listOperations(app.kv, { shopId: app.shop.id, limit: 20 });
    const failed = logged.find((e) => e.operation === "create" && e.outcome === "error");
    assert.equal(failed?.error, "POST /v1/checkout/sessions answered 500 (StripeAPIError)");
    assert.doesNotMatch(JSON.stringify(logged) + JSON.stringify(init.body), /sk_test|leaked/);
  });
});

Deno.test("[stripe] a payment whose session creation is asked again under a new key waits at most the provider timeout in all (2 s in tests), not that timeout for each call: a slow 500 and a slow retry answer 504 at the timeout, and the shop's retry gets a page", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const body = paymentBody({ id: "o-slow-500", postbackUrl: "http://127.0.0.1:9/pb", amount: 4200 });
    // Stripe takes 1.8 s over each try, and fails the first (keeping that 500 under its key): two tries, each within
    // the timeout, but together past it.
    fake.slow["POST /v1/checkout/sessions"] = 1800;
    fake.failing["POST /v1/checkout/sessions"] = 1;
    const started = Date.now();
    const slow = await callInit(app, body);
    const waited = Date.now() - started;
    assert.equal(slow.status, 504, `${JSON.stringify(slow.body)} after ${waited} ms`);
    assert.ok(waited < 3000, `answered after ${waited} ms, not once both tries were over (3.6 s)`);
    fake.slow["POST /v1/checkout/sessions"] = 0;
    const retry = await callInit(app, body);
    assert.equal(retry.status, 201, JSON.stringify(retry.body));
  });
});

Deno.test("[stripe] a refund's calls to Stripe (its session, then the refund) take at most the provider timeout in all: slow ones leave the refund pending at the timeout, and the job takes the refund Stripe made", async () => {
  await withStripe(async (app, fake, stripe) => {
    const { id, session } = await paidOnStripe(app, fake, stripe, 3000);
    fake.slow["GET /v1/checkout/sessions/{id}"] = 1800;
    fake.slow["POST /v1/refunds"] = 1800;
    const started = Date.now();
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 1000 });
    const waited = Date.now() - started;
    assert.equal(r.body.refund.status, "pending", `${JSON.stringify(r.body)} after ${waited} ms`);
    assert.ok(waited < 3000, `answered after ${waited} ms, not once both calls were over (3.6 s)`);
    const made = await waitFor(
      "the refund Stripe made",
      () => [...fake.refunds.values()].find((x) => x.payment_intent === session.payment_intent),
    );
    fake.slow["GET /v1/checkout/sessions/{id}"] = 0;
    fake.slow["POST /v1/refunds"] = 0;
    await sweepAt(app, 61_000);
    const ours = (await getRefund(app.kv, r.body.refund.id))!;
    assert.deepEqual([ours.status, ours.providerRef], ["succeeded", made.id]);
  }, { JOBS_QUEUE: "off" });
});

Deno.test("[stripe] a refund's retry looking for its earlier refund among hundreds (three pages of Stripe's list) gives each page what is left of the one provider timeout, not what the first page had: too slow, it times out at the deadline instead of answering after it", async () => {
  const fake = new StripeFake(STRIPE_KEY, { [ORG2]: { webhookSecret: "whsec_stripe_org2" } });
  try {
    const provider = new StripeProvider({
      secretKey: STRIPE_KEY,
      webhookSecret: "whsec_stripe_org2",
      connectedAccountId: ORG2,
      apiUrl: fake.url,
      timeoutMs: 2000,
    });
    const created = Math.floor(Date.now() / 1000);
    fake.paymentIntents.set("pi_many", {
      id: "pi_many",
      object: "payment_intent",
      account: ORG2,
      amount: 100_000,
      currency: "eur",
      status: "succeeded",
      last_payment_error: null,
      metadata: {},
    });
    fake.sessions.set("cs_many", {
      id: "cs_many",
      object: "checkout.session",
      account: ORG2,
      status: "complete",
      payment_status: "paid",
      payment_intent: "pi_many",
      client_reference_id: "pay_many",
      customer_email: null,
      amount_total: 100_000,
      currency: "eur",
      success_url: null,
      cancel_url: null,
      url: null,
      ui_mode: "hosted",
      client_secret: null,
      metadata: { paymentId: "pay_many", amountUnits: "stripe" },
    });
    // Ours, made by the call whose answer was lost, then 249 made in the Dashboard since: newest first, ours is on
    // the third page of 100.
    const refund = (id: string, metadata: Record<string, string>) =>
      fake.refunds.set(id, {
        id,
        object: "refund",
        account: ORG2,
        amount: 100,
        payment_intent: "pi_many",
        status: "succeeded",
        metadata,
        created,
      });
    refund("re_ours", { refundId: "rf_ours" });
    for (let n = 0; n < 249; n++) refund(`re_dashboard_${n}`, {});
    // Each page takes 800 ms: the third begins about 1.6 s into the refund's 2 s, with about 0.4 s left for it.
    fake.slow["GET /v1/refunds"] = 800;
    await assert.rejects(
      provider.refund("cs_many", 100, "rf_ours", "EUR", { retry: true, lastAskedMsAgo: 60_000 }),
      (err: Error) => err instanceof UpstreamError && err.timedOut && /GET \/v1\/refunds timed out/.test(err.detail),
    );
    assert.equal(fake.calls["POST /v1/refunds"] ?? 0, 0, "nothing asked past the deadline");
    // Quick enough, the same walk finds ours on the third page.
    fake.slow["GET /v1/refunds"] = 0;
    const found = await provider.refund("cs_many", 100, "rf_ours", "EUR", { retry: true, lastAskedMsAgo: 60_000 });
    assert.deepEqual(found, { ref: "re_ours", status: "succeeded" });
    assert.equal(fake.calls["POST /v1/refunds"] ?? 0, 0);
  } finally {
    await fake.close();
  }
});

Deno.test("[stripe] a refund's retry that meets a page of Stripe's list with nothing on it but more to come fails, asking for no refund: a list it could not read to its end is not a list without ours", async () => {
  // Stripe itself never answers so; a proxy or an outage in front of it may. The fake cannot, so a server of our own
  // stands in for Stripe: the session, an empty page that says more follow, and any refund asked for counted.
  let refundsAsked = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const { pathname } = new URL(req.url);
    if (req.method === "GET" && pathname === "/v1/checkout/sessions/cs_gap") {
      return Response.json({
        id: "cs_gap",
        object: "checkout.session",
        payment_intent: "pi_gap",
        metadata: { paymentId: "pay_gap", amountUnits: "stripe" },
      });
    }
    if (req.method === "GET" && pathname === "/v1/refunds") {
      return Response.json({ object: "list", url: "/v1/refunds", has_more: true, data: [] });
    }
    if (req.method === "POST" && pathname === "/v1/refunds") {
      refundsAsked++;
      return Response.json({
        id: "re_second",
        object: "refund",
        status: "succeeded",
        metadata: { refundId: "rf_gap" },
      });
    }
    return Response.json({ error: { type: "invalid_request_error", message: "Unknown" } }, { status: 404 });
  });
  try {
    const provider = new StripeProvider({
      secretKey: STRIPE_KEY,
      webhookSecret: "whsec_stripe_org2",
      connectedAccountId: ORG2,
      apiUrl: `http://127.0.0.1:${server.addr.port}`,
      timeoutMs: 5000,
    });
    // The earlier call was a day ago: its key is forgotten, so a refund asked for now would be a second one.
    await assert.rejects(
      provider.refund("cs_gap", 100, "rf_gap", "EUR", { retry: true, lastAskedMsAgo: 25 * 3_600_000 }),
      (err: Error) => err instanceof UpstreamError && !(err instanceof ProviderRefusedError) && !err.timedOut,
    );
    assert.equal(refundsAsked, 0, "no refund asked for");
  } finally {
    await server.shutdown();
  }
});

Deno.test("[stripe] a cancel's calls to Stripe (the expire it refuses, then the session's status) take at most the provider timeout in all: slow ones answer 504 at the timeout and change nothing", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const init = await callInit(app, paymentBody({ currency: "USD" }));
    assert.equal(init.status, 201, JSON.stringify(init.body));
    // The session ended at Stripe meanwhile: its expire is refused, and the adapter reads the session's status.
    const ref = (await getPayment(app.kv, init.body.id))!.providerRef!;
    fake.sessions.get(ref)!.status = "expired";
    // Each call within the timeout (2 s in tests), both together past it.
    fake.slow["POST /v1/checkout/sessions/{id}/expire"] = 1800;
    fake.slow["GET /v1/checkout/sessions/{id}"] = 1800;
    const started = Date.now();
    const cancelled = await api(app, app.shop.apiKey, "POST", `/payments/${init.body.id}/cancel`);
    const waited = Date.now() - started;
    assert.equal(cancelled.status, 504, `${JSON.stringify(cancelled.body)} after ${waited} ms`);
    assert.equal(cancelled.body.error.code, "provider_timeout");
    assert.ok(waited < 3000, `answered after ${waited} ms, not once both calls were over (3.6 s)`);
    assert.equal((await getPayment(app.kv, init.body.id))!.status, "pending");
    fake.slow["POST /v1/checkout/sessions/{id}/expire"] = 0;
    fake.slow["GET /v1/checkout/sessions/{id}"] = 0;
    // Asked again once Stripe is quick, it says what the session is.
    const again = await api(app, app.shop.apiKey, "POST", `/payments/${init.body.id}/cancel`);
    assert.equal(again.status, 409, JSON.stringify(again.body));
    assert.equal((await getPayment(app.kv, init.body.id))!.status, "expired");
  });
});

Deno.test("[stripe] a form whose fixed amount the shop's provider cannot charge in its currency (10.50 MGA at Stripe, which takes whole ariary) is refused when it is made, naming the amount, instead of a page that answers every buyer 503", async () => {
  await withStripe(async (app, _fake, stripe) => {
    const form = (amount: number, currency: string) =>
      api(app, app.shop.apiKey, "POST", "/forms", { kind: "fiat", title: "Ticket", amount, currency });
    // On the platform's Bansky account any amount goes.
    assert.equal((await form(1050, "MGA")).status, 201);
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    for (
      const [amount, currency, why] of [[1050, "MGA", /multiple of 100 for MGA \(1\.00 MGA\)/], [
        12_345,
        "KWD",
        /multiple of 10 for KWD \(0\.010 KWD\)/,
      ]] as const
    ) {
      const refused = await form(amount, currency);
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.match(refused.body.error.fields.amount, why);
      assert.doesNotMatch(refused.body.error.fields.amount, /Stripe/, "the shop's set-up, not a provider's name");
    }
    const whole = await form(1000, "MGA");
    assert.equal(whole.status, 201, JSON.stringify(whole.body));
    const page = await (await fetch(`${app.baseUrl}/forms/${whole.body.form.id}`)).text();
    const token = page.match(/name="_token" value="([^"]+)"/)![1];
    const res = await fetch(`${app.baseUrl}/forms/${whole.body.form.id}/submit`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin" },
      body: new URLSearchParams({ _token: token, email: "buyer@example.com" }),
      redirect: "manual",
    });
    await res.body?.cancel();
    assert.equal(res.status, 303, "10.00 MGA goes through");
  });
});

Deno.test("[stripe] a form's amount hint shows the decimals the shop's provider takes the currency in: MGA at Stripe in whole ariary (10), KWD in tens of the third decimal (10 or 10.50); the same forms on Bansky keep ISO's decimals", async () => {
  await withStripe(async (app, _fake, stripe) => {
    const forms = new Map<string, string>();
    for (const currency of ["MGA", "KWD", "EUR", "JPY"]) {
      const made = await api(app, app.shop.apiKey, "POST", "/forms", { kind: "fiat", title: "Gift", currency });
      forms.set(currency, made.body.form.id);
    }
    const hint = async (currency: string) => {
      const html = await (await fetch(`${app.baseUrl}/forms/${forms.get(currency)}`)).text();
      return html.match(/id="f-amount-hint"[^>]*>([^<]*)</)?.[1];
    };
    const onBansky = {
      MGA: "For example 10 or 10.50",
      KWD: "For example 10 or 10.500",
      EUR: "For example 10 or 10.50",
    };
    for (const [currency, text] of Object.entries(onBansky)) assert.equal(await hint(currency), text, currency);
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const onStripe = {
      MGA: "For example 10",
      KWD: "For example 10 or 10.50",
      EUR: "For example 10 or 10.50",
      JPY: "For example 10",
    };
    for (const [currency, text] of Object.entries(onStripe)) assert.equal(await hint(currency), text, currency);
  });
});

Deno.test("[stripe] a shop's retry of a payment whose key Stripe says was used with other parameters (its first try made by a deploy that sent a session's parameters otherwise) gets a session under a new key, instead of a 502 for a day", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const keys: string[] = [];
    interceptFake(fake, (req, handle) => {
      if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/checkout/sessions") return handle(req);
      const key = req.headers.get("idempotency-key") ?? "";
      keys.push(key);
      if (keys.length > 1) return handle(req);
      const message = "Keys for idempotent requests can only be used with the same parameters they were first used " +
        `with. Try using a key other than '${key}' if you meant to execute a different request.`;
      return Promise.resolve(Response.json({ error: { type: "idempotency_error", message } }, { status: 400 }));
    });
    const retry = await callInit(app, paymentBody({ id: "o-redeployed", postbackUrl: "http://127.0.0.1:9/pb" }));
    assert.equal(retry.status, 201, JSON.stringify(retry.body));
    assert.equal(fake.sessions.size, 1);
    assert.equal(keys.length, 2);
    assert.notEqual(keys[1], keys[0], "asked again under another key");
  });
});

Deno.test("[stripe] a form whose fixed amount the shop's provider cannot charge since its routes moved (10.50 MGA, made on Bansky, now routed to Stripe) is marked out of order in the portal and the console; its buyer is told only that it cannot take payments now", async () => {
  await withStripe(async (app, _fake, stripe) => {
    const made = async (amount: number) =>
      (await api(app, app.shop.apiKey, "POST", "/forms", { kind: "fiat", title: "Ticket", amount, currency: "MGA" }))
        .body.form.id as string;
    const odd = await made(1050);
    const whole = await made(1000);
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const mark = "out of order: 10.50 MGA cannot be charged: the provider your routes pick for MGA takes it in steps " +
      "of 1.00 MGA; disable it and make a new one";
    const rowOf = (html: string, id: string) =>
      html.match(new RegExp(`<tr(?:(?!</tr>)[\\s\\S])*${id}(?:(?!</tr>)[\\s\\S])*</tr>`))?.[0] ?? "";
    const lists = {
      portal: await (await portalBrowser(app)).get("/portal/forms"),
      console: await (await operatorBrowser(app)).get("/admin/forms"),
    };
    for (const [who, list] of Object.entries(lists)) {
      assert.equal(list.status, 200, who);
      assert.ok(rowOf(list.text, odd).includes(mark), `${who}: ${rowOf(list.text, odd)}`);
      assert.doesNotMatch(rowOf(list.text, whole), /out of order/, who);
    }
    const page = await (await fetch(`${app.baseUrl}/forms/${odd}`)).text();
    const token = page.match(/name="_token" value="([^"]+)"/)![1];
    const res = await fetch(`${app.baseUrl}/forms/${odd}/submit`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin" },
      body: new URLSearchParams({ _token: token, email: "buyer@example.com" }),
      redirect: "manual",
    });
    assert.equal(res.status, 503);
    assert.doesNotMatch(await res.text(), /Stripe|ariary|steps of/, "nothing of the shop's set-up");
  });
});

Deno.test("[backfill] Stripe refunds that succeeded before re-checks existed get them, within 30 days of their success: a reversal whose webhook was lost is found", async () => {
  const shop = startShopReceiver();
  await withStripe(async (app, fake, stripe) => {
    const ctx = app.server.ctx;
    const refund = async (paymentId: string, amount?: number) => {
      const r = await api(app, app.shop.apiKey, "POST", `/payments/${paymentId}/refunds`, amount ? { amount } : {});
      assert.equal(r.body.refund.status, "succeeded", JSON.stringify(r.body));
      return r.body.refund.id as string;
    };
    /** The refund as the version before re-checks stored it (no recheckAt, no job), with `patch` (an older success). */
    const asStoredBefore = async (id: string, patch: Partial<Refund> = {}) => {
      const entry = (await getRefundEntry(app.kv, id)) as Deno.KvEntry<Refund>;
      const { recheckAt: _, ...old } = entry.value;
      assert.ok(await commitRefundUpdate(app.kv, entry, { ...old, ...patch }, { queue: false, now: ctx.now() }));
    };
    // A Bansky refund first (the shop's default routing): Bansky never reverses one, so it gets no re-checks.
    const onBansky = await callInit(app, paymentBody({ amount: 2000 }));
    await buyerSettles(onBansky.body.url, "paid");
    await waitFor(
      "paid",
      async () => (await getPayment(app.kv, onBansky.body.id))?.status === "succeeded" || undefined,
    );
    const bansky = await refund(onBansky.body.id);
    const reversed = await paidOnStripe(app, fake, stripe, 5000, shop.url);
    const reversedRefund = await refund(reversed.id, 3000);
    const standing = await refund((await paidOnStripe(app, fake, stripe, 4000)).id);
    const tooOld = await refund((await paidOnStripe(app, fake, stripe, 4000)).id);
    const own = await refund((await paidOnStripe(app, fake, stripe, 4000)).id);
    const ownBefore = (await getRefund(app.kv, own))!;
    await asStoredBefore(bansky);
    await asStoredBefore(reversedRefund);
    await asStoredBefore(standing);
    // Succeeded 31 days before the run: past the last re-check.
    await asStoredBefore(tooOld, { settledAt: Date.now() - 29 * DAY_MS });
    assert.equal(await countScheduledJobs(app.kv, "refund_recheck"), 1, "only this version's own refund");

    // The store as the earlier version left it; two processes run the backfill at once, two days on.
    await deleteBackfillState(app.kv, "refund_reversal_checks");
    const at = Date.now() + 2 * DAY_MS;
    ctx.now = () => at;
    const runs = await Promise.all([
      runBackfill(ctx, reversalCheckBackfill, { batchSize: 3 }),
      runBackfill(ctx, reversalCheckBackfill, { batchSize: 3 }),
    ]);
    assert.equal(runs[0].written + runs[1].written, 2, "each Stripe refund within its re-checks gets them once");
    for (const id of [reversedRefund, standing]) {
      // The 1-day re-check passed unchecked: one catch-up within 6 hours, before the 5-day step.
      const recheckAt = (await getRefund(app.kv, id))!.recheckAt!;
      assert.ok(recheckAt > at && recheckAt <= at + REVERSAL_CHECK_CATCH_UP_MS, `${id}: ${recheckAt - at}`);
    }
    assert.equal((await getRefund(app.kv, bansky))!.recheckAt, undefined, "Bansky never reverses: left alone");
    assert.equal((await getRefund(app.kv, tooOld))!.recheckAt, undefined, "past its last re-check: left alone");
    assert.deepEqual(await getRefund(app.kv, own), ownBefore, "this version's own re-checks unchanged");
    assert.equal(await countScheduledJobs(app.kv, "refund_recheck"), 3);

    // Idempotent: once done, a run reads its progress; forgotten, a run from scratch finds nothing to add.
    const stamps = async () =>
      await Promise.all(
        [reversedRefund, standing, bansky, tooOld].map(async (id) => (await getRefundEntry(app.kv, id)).versionstamp),
      );
    const before = await stamps();
    assert.equal((await runBackfill(ctx, reversalCheckBackfill)).written, 0);
    await deleteBackfillState(app.kv, "refund_reversal_checks");
    assert.equal((await runBackfill(ctx, reversalCheckBackfill)).written, 0);
    assert.deepEqual(await stamps(), before);

    // Stripe reverses one, its webhook lost: the catch-up re-check finds it, and the shop hears refund.failed.
    const ref = (await getRefund(app.kv, reversedRefund))!.providerRef!;
    assert.equal(await fake.reverseRefund(ref, { sendEvent: false }), 0);
    ctx.now = () => at + REVERSAL_CHECK_CATCH_UP_MS + 1_000;
    await app.server.runner.sweep();
    await app.server.runner.idle();
    assert.equal((await getRefund(app.kv, reversedRefund))!.status, "failed");
    const p = (await getPayment(app.kv, reversed.id))!;
    assert.deepEqual([p.status, p.refundedAmount], ["succeeded", 0]);
    await waitFor("refund.failed", () => postbackTypes(shop).includes("refund.failed") || undefined);
    // The one that stands goes on at the schedule's own next step, 5 days after its success.
    const stands = (await getRefund(app.kv, standing))!;
    assert.deepEqual([stands.status, stands.recheckAt], ["succeeded", stands.settledAt! + REVERSAL_CHECK_MS[1]]);
  }, { JOBS_QUEUE: "off" });
  await shop.close();
});

Deno.test("[stripe] news of a session made for one of our payments that no stored payment names (its creation asked again after a 500, or the order sent again after its routes moved) is acknowledged and changes nothing when it expires; a buyer paying on one is refused and logged as an error and counted", async (t) => {
  await withStripe(async (app, fake, stripe) => {
    const ctx = app.server.ctx;
    await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    // Stripe makes the session, but a proxy in front of it answers 500 (the first `lost` creations).
    let lost = 0;
    interceptFake(fake, async (req, handle) => {
      const res = await handle(req);
      if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/checkout/sessions" || lost <= 0) return res;
      lost--;
      await res.body?.cancel();
      return Response.json({ error: { type: "api_error", message: "An unknown error occurred" } }, { status: 500 });
    });
    const body = (id: string) => paymentBody({ id, postbackUrl: "http://127.0.0.1:9/pb", amount: 4200 });
    /** An order whose first session is an orphan; answers the payment and the orphan session's id. */
    const withOrphan = async (id: string) => {
      lost = 1;
      const init = await callInit(app, body(id));
      assert.equal(init.status, 201, JSON.stringify(init.body));
      const p = (await getPayment(app.kv, init.body.id))!;
      const orphan = [...fake.sessions.values()].find((s) => s.client_reference_id === p.id && s.id !== p.providerRef);
      assert.ok(orphan, "Stripe made two sessions for the payment");
      return { p, orphan };
    };
    const unchanged = async (p: Payment) => {
      const now = await describePayment(ctx, p.id);
      assert.deepEqual(
        [now.payment.status, now.payment.providerRef, now.payment.updatedAt],
        [p.status, p.providerRef, p.updatedAt],
      );
      return now;
    };

    await t.step(
      "an orphan's expiry is acknowledged (before: 400, retried by Stripe for days), once, at info",
      async () => {
        const { p, orphan } = await withOrphan("o-orphan-expires");
        const eventsBefore = (await describePayment(ctx, p.id)).events.length;
        orphan.status = "expired";
        const { result: status, lines } = await capturingLog(() =>
          fake.sendEvent(ORG2, "checkout.session.expired", orphan)
        );
        assert.equal(status, 200);
        const now = await unchanged(p);
        assert.equal(now.events.length, eventsBefore, "nothing on the payment's timeline");
        assert.ok(!lines.some((l) => l.level === "warn" || l.level === "error"), JSON.stringify(lines));
        // The suite runs with LOG_LEVEL=warn, which leaves info out: a line of our own says whether it is written.
        const probe = await capturingLog(() => Promise.resolve(log.info("probe")));
        const infoLogged = probe.lines.length > 0;
        const said = lines.filter((l) => /no stored payment names/.test(l.msg));
        assert.deepEqual(said.map((l) => l.level), infoLogged ? ["info"] : []);
        // The payment's own session still settles it.
        assert.equal(await fake.sendEvent(ORG2, "checkout.session.expired", fake.sessions.get(p.providerRef!)), 409);
      },
    );

    await t.step(
      "a buyer paying on an orphan is money no payment names: refused (Stripe keeps retrying) and an error",
      async () => {
        const { p, orphan } = await withOrphan("o-orphan-paid");
        const { lines } = await capturingLog(async () => {
          const paid = await fetch(`${orphan.url}/paid`, { method: "POST", redirect: "manual" });
          await paid.body?.cancel();
        });
        assert.equal(fake.delivered.at(-1)?.type, "checkout.session.completed");
        assert.equal(fake.delivered.at(-1)?.status, 400);
        await unchanged(p);
        assert.ok(
          lines.some((l) => l.level === "error" && /no stored payment names/.test(l.msg)),
          JSON.stringify(lines),
        );
        assert.equal(await paidOrphans(app, stripe), 1, "counted for the operators' alert (the expiry was not)");
      },
    );

    await t.step("an orphan left on the account the shop's routes moved away from", async () => {
      lost = 2;
      const made = fake.sessions.size;
      const failed = await callInit(app, body("o-orphan-moved"));
      assert.equal(failed.status, 502, JSON.stringify(failed.body));
      const orphans = [...fake.sessions.values()].slice(made);
      assert.equal(orphans.length, 2, "both tries made a session at Stripe");
      const bansky = await createAccount(ctx, {
        provider: "bansky",
        label: "Bansky org 1",
        orgId: "891027350515",
        credentials: { apiUrl: app.sandboxUrl, apiToken: "token-org-a", webhookSecret: "whsec-org-a" },
      }, { actor: "test" });
      await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: bansky.id }, { actor: "test" });
      const retry = await callInit(app, body("o-orphan-moved"));
      assert.equal(retry.status, 201, JSON.stringify(retry.body));
      const p = (await getPayment(app.kv, retry.body.id))!;
      assert.equal(p.accountId, bansky.id);
      assert.ok(orphans.every((s) => s.client_reference_id === p.id));
      for (const orphan of orphans) {
        orphan.status = "expired";
        assert.equal(await fake.sendEvent(ORG2, "checkout.session.expired", orphan), 200);
      }
      await unchanged(p);
    });
  }, { METRICS_TOKEN });
});

Deno.test("[stripe] news of a session made for a payment id of ours that was never stored (the shop's init answered 502 and was not tried again) is acknowledged and changes nothing when it expires; a buyer paying on one, at once or by a bank debit, is refused and logged as an error", async () => {
  await withStripe(async (app, fake, stripe) => {
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    // Stripe makes each session, but a proxy in front of it answers 500: the creation and its retry under a new key.
    let lost = 0;
    interceptFake(fake, async (req, handle) => {
      const res = await handle(req);
      if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/checkout/sessions" || lost <= 0) return res;
      lost--;
      await res.body?.cancel();
      return Response.json({ error: { type: "api_error", message: "An unknown error occurred" } }, { status: 500 });
    });
    /** Sessions at Stripe for an order whose init failed: they name a payment id that nothing stored. */
    const unstored = async () => {
      const made = fake.sessions.size;
      lost = 2;
      const init = await callInit(
        app,
        paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl: "http://127.0.0.1:9/pb" }),
      );
      assert.equal(init.status, 502, JSON.stringify(init.body));
      const sessions = [...fake.sessions.values()].slice(made);
      assert.equal(sessions.length, 2, "both tries made a session at Stripe");
      const paymentId = sessions[0].client_reference_id!;
      assert.ok(sessions.every((s) => s.client_reference_id === paymentId));
      assert.equal(await getPayment(app.kv, paymentId), null, "no payment stored");
      return { paymentId, sessions };
    };

    const expiring = await unstored();
    for (const session of expiring.sessions) {
      session.status = "expired";
      assert.equal(await fake.sendEvent(ORG2, "checkout.session.expired", session), 200, "before: 404, for 3 days");
    }
    assert.equal(await getPayment(app.kv, expiring.paymentId), null, "nothing stored");

    const paid = await unstored();
    const { lines } = await capturingLog(async () => {
      const pay = await fetch(`${paid.sessions[0].url}/paid`, { method: "POST", redirect: "manual" });
      await pay.body?.cancel();
      // A bank debit: the buyer finished, the money is on its way.
      assert.equal(await fake.payDelayed(paid.sessions[1].id), 404);
    });
    assert.deepEqual(fake.delivered.slice(-2), [
      { type: "checkout.session.completed", status: 404 },
      { type: "checkout.session.completed", status: 404 },
    ]);
    const errors = lines.filter((l) => l.level === "error" && /no stored payment names/.test(l.msg));
    assert.deepEqual(
      errors.map((l) => [l.paymentId, l.ref, l.paymentStored, l.claimed]),
      [[paid.paymentId, paid.sessions[0].id, false, "succeeded"], [
        paid.paymentId,
        paid.sessions[1].id,
        false,
        "pending",
      ]],
    );
    assert.doesNotMatch(JSON.stringify(lines), /whsec_|sk_test/);
    assert.equal(await getPayment(app.kv, paid.paymentId), null);
    assert.equal(await paidOrphans(app, stripe), 2, "counted for the operators' alert (the expiries are not)");
    // Each session is a paid orphan of its own until an operator marks it handled; Stripe's retries after the mark
    // are acknowledged, so it stops, and not counted.
    const recorded = await Promise.all(paid.sessions.map((s) => getPaidOrphan(app.kv, stripe.id, s.id)));
    assert.deepEqual(recorded.map((o) => [o?.provider, o?.paymentId, o?.paymentStored, o?.claimed, o?.timesSeen]), [
      ["stripe", paid.paymentId, false, "succeeded", 1],
      ["stripe", paid.paymentId, false, "pending", 1],
    ]);
    assert.equal(await unhandledOrphans(app, stripe), 2);
    const note = "Refunded in Stripe's Dashboard";
    await markOrphanHandled(app.server.ctx, { accountId: stripe.id, ref: paid.sessions[0].id, note }, {
      actor: "ops@example.com",
    });
    assert.equal(await unhandledOrphans(app, stripe), 1);
    assert.equal(await fake.sendEvent(ORG2, "checkout.session.completed", paid.sessions[0]), 200);
    assert.equal(await fake.sendEvent(ORG2, "checkout.session.completed", paid.sessions[1]), 404, "not handled yet");
    assert.equal(await paidOrphans(app, stripe), 3, "the handled one's news not counted");
    assert.equal((await getPaidOrphan(app.kv, stripe.id, paid.sessions[0].id))?.timesSeen, 1);
    assert.equal((await getPaidOrphan(app.kv, stripe.id, paid.sessions[1].id))?.timesSeen, 2);
    // The bank debit, marked while its money is on its way: a retry of that news is acknowledged, but the news that
    // the money arrived is more than the operator answered, so it waits for one again and the alert fires again.
    const debit = { accountId: stripe.id, ref: paid.sessions[1].id, note: "The shop takes it once it clears" };
    const operator = await operatorBrowser(app);
    assert.match(
      (await operator.get("/admin/paid-orphans")).text,
      new RegExp(`data-confirm="Mark Stripe's payment ${debit.ref} [^"]+ Its money is still on its way: if it arrives`),
    );
    await markOrphanHandled(app.server.ctx, debit, { actor: "ops@example.com" });
    assert.equal(await unhandledOrphans(app, stripe), undefined);
    assert.equal(await fake.sendEvent(ORG2, "checkout.session.completed", paid.sessions[1]), 200);
    assert.equal(await fake.settleDelayed(paid.sessions[1].id, "succeeded"), 404);
    const arrived = await getPaidOrphan(app.kv, stripe.id, paid.sessions[1].id);
    assert.deepEqual([arrived?.claimed, arrived?.handled, arrived?.earlierMark?.note], ["succeeded", null, debit.note]);
    assert.equal(await unhandledOrphans(app, stripe), 1);
    const page = await operator.get("/admin/paid-orphans");
    assert.match(
      page.text,
      /data-earlier-mark[^>]*>marked handled while its money was on its way, [^<]+ by ops@example.com: The shop takes/,
    );
  }, { METRICS_TOKEN });
});

Deno.test("[stripe] the console's and the portal's refusal of a form's typed amount gives an example with the decimals the shop's provider takes the currency in (MGA at Stripe: whole ariary; KWD there: two decimals), as the buyer's hint does, instead of \"such as 10 or 10.50\" for every currency", async () => {
  await withStripe(async (app, _fake, stripe) => {
    const portal = await portalBrowser(app);
    const operator = await operatorBrowser(app);
    await portal.get("/portal/forms");
    await operator.get("/admin/forms");
    const refusal = async (amount: string, currency: string) => {
      const fields = { kind: "fiat", title: "Ticket", amount, currency };
      const [mine, theirs] = [
        await portal.post("/portal/forms", fields),
        await operator.post("/admin/forms", { ...fields, shopId: app.shop.id }),
      ];
      assert.deepEqual([mine.status, theirs.status], [400, 400], `${amount} ${currency}`);
      const said = (html: string) => html.match(/must be [^<]*/)?.[0];
      assert.equal(said(mine.text), said(theirs.text), "one message in both");
      return said(mine.text);
    };
    const onBansky = {
      EUR: "must be an amount above 0 such as 10 or 10.50, with at most 2 decimals for EUR",
      JPY: "must be a whole amount of JPY above 0, such as 10",
      KWD: "must be an amount above 0 such as 10 or 10.500, with at most 3 decimals for KWD",
    };
    for (const [currency, text] of Object.entries(onBansky)) assert.equal(await refusal("1.23456", currency), text);
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const onStripe = {
      MGA: "must be a whole amount of MGA above 0, such as 10",
      KWD: "must be an amount above 0 such as 10 or 10.50, with at most 2 decimals for KWD",
      EUR: onBansky.EUR,
    };
    for (const [currency, text] of Object.entries(onStripe)) assert.equal(await refusal("1.23456", currency), text);
  });
});

Deno.test("[stripe] GET /api/v1/options tells, for each fiat currency, the step its amounts must be a multiple of at the provider the shop's routes pick (MGA at Stripe: 100, whole ariary; KWD: 10); the same currencies on Bansky take any amount", async () => {
  await withStripe(async (app, _fake, stripe) => {
    const options = async () => {
      const res = await api(app, app.shop.apiKey, "GET", "/options");
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const parsed = OptionsResponse.parse(res.body);
      assert.deepEqual(Object.keys(parsed.fiat.amountSteps).sort(), parsed.fiat.currencies, "one step per currency");
      return parsed.fiat.amountSteps;
    };
    const pick = (steps: Record<string, number>) => [steps.MGA, steps.KWD, steps.EUR, steps.ISK, steps.JPY];
    assert.deepEqual(pick(await options()), [1, 1, 1, 1, 1]);
    await setShopRouting(app.server.ctx, app.shop.id, { rules: [], defaultAccountId: stripe.id }, { actor: "test" });
    const onStripe = await options();
    assert.deepEqual(pick(onStripe), [100, 10, 1, 1, 1]);
    // What it says is what init-payment takes.
    const init = (amount: number) => callInit(app, paymentBody({ amount, currency: "MGA" }));
    assert.equal((await init(onStripe.MGA * 10 + 50)).body.error?.code, "amount_not_accepted");
    assert.equal((await init(onStripe.MGA * 10)).status, 201);
  });
});

Deno.test("[stripe] a succeeded Stripe refund's page says when we ask Stripe again whether it still stands, in the console and the portal, until its re-checks are through", async () => {
  const shop = startShopReceiver();
  await withStripe(async (app, fake, stripe) => {
    const { id } = await paidOnStripe(app, fake, stripe, 5000, shop.url);
    const r = await api(app, app.shop.apiKey, "POST", `/payments/${id}/refunds`, { amount: 1000 });
    assert.equal(r.body.refund.status, "succeeded", JSON.stringify(r.body));
    const pages = { console: await operatorBrowser(app), portal: await portalBrowser(app) };
    const notes = async () => {
      const said = [];
      for (const [who, b] of Object.entries(pages)) {
        const page = await b.get(`/${who === "console" ? "admin" : "portal"}/payments/${id}`);
        assert.equal(page.status, 200, who);
        said.push(page.text.match(/Stripe can still reverse it[^<]*/)?.[0] ?? null);
      }
      assert.equal(said[0], said[1], "the same words to operators and to the shop");
      return said[0];
    };
    const note = (at: number) =>
      `Stripe can still reverse it: we ask Stripe again on ${
        formatTime(at)
      } whether it still stands (1, 5, 10 and 30 ` +
      "days after it succeeded).";
    const first = (await getRefund(app.kv, r.body.refund.id))!;
    assert.equal(await notes(), note(first.recheckAt!));
    await sweepAt(app, DAY_MS + 60_000);
    const second = (await getRefund(app.kv, r.body.refund.id))!;
    assert.equal(second.recheckAt, first.settledAt! + 5 * DAY_MS);
    assert.equal(await notes(), note(second.recheckAt!), "the next one once the first was made");
    await sweepAt(app, 31 * DAY_MS);
    assert.equal((await getRefund(app.kv, r.body.refund.id))!.recheckAt, null);
    assert.equal(await notes(), null, "nothing once they are through");
  }, { JOBS_QUEUE: "off" });
  await shop.close();
});
