import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { buyerSettles, callInit, paymentBody, startShopReceiver, startTestApp, waitFor } from "../fixtures/app.ts";

for (const standaloneSandbox of [false, true]) {
  const where = standaloneSandbox ? "standalone sandbox over the network" : "embedded sandbox";
  Deno.test(`[flow] a paid payment redirects the buyer to the shop and delivers a verifiable postback (${where})`, async () => {
    const app = await startTestApp({ standaloneSandbox });
    const shop = startShopReceiver();
    try {
      const init = await callInit(app, paymentBody({ id: "order-1", postbackUrl: shop.url }));
      assert.equal(init.status, 201);
      assert.equal(init.body.status, "success");
      assert.match(init.body.url, new RegExp(`^${app.baseUrl}/integration/pay\\?id=pay_`));

      const finalStop = await buyerSettles(init.body.url, "paid");
      assert.match(finalStop, /^http:\/\/127\.0\.0\.1:9\/shop\/success\?apay_payment=pay_/);

      const postback = await waitFor("the postback", () => shop.received[0]);
      const payload = new Webhook(app.shop.webhookSecret).verify(
        postback.body,
        Object.fromEntries(postback.headers),
      ) as {
        type: string;
        data: Record<string, unknown>;
      };
      assert.equal(payload.type, "payment.succeeded");
      assert.equal(payload.data.id, "order-1");
      assert.equal(payload.data.paymentId, init.body.id);
      assert.equal(payload.data.amount, 1000);
      assert.equal(payload.data.currency, "EUR");

      const status = await fetch(`${app.baseUrl}/api/v1/payments/${init.body.id}`, {
        headers: { authorization: `Bearer ${app.shop.apiKey}` },
      }).then((r) => r.json());
      assert.equal(status.payment.status, "succeeded");
    } finally {
      await shop.close();
      await app.close();
    }
  });
}

Deno.test("[flow] a declined payment sends the buyer to the error URL and the shop a payment.failed postback", async () => {
  const app = await startTestApp();
  const shop = startShopReceiver();
  try {
    const init = await callInit(app, paymentBody({ id: "order-2", postbackUrl: shop.url }));
    assert.match(
      await buyerSettles(init.body.url, "declined"),
      /^http:\/\/127\.0\.0\.1:9\/shop\/error\?apay_payment=pay_/,
    );
    const postback = await waitFor("the postback", () => shop.received[0]);
    assert.equal(JSON.parse(postback.body).type, "payment.failed");
    // Once settled, the pay wrapper sends the buyer to the shop's result page, not back to the provider.
    const again = await fetch(init.body.url, { redirect: "manual" });
    await again.body?.cancel();
    assert.match(again.headers.get("location")!, /^http:\/\/127\.0\.0\.1:9\/shop\/error\?apay_payment=pay_/);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[flow] buyers arriving together each get their first visit on the timeline, once", async () => {
  const app = await startTestApp();
  try {
    const made: { id: string; url: string }[] = [];
    for (let i = 0; i < 12; i++) {
      const init = await callInit(app, paymentBody({ id: `visit-${i}`, postbackUrl: "http://127.0.0.1:9/postback" }));
      assert.equal(init.status, 201, JSON.stringify(init.body));
      made.push(init.body);
    }
    const ids = made.map((p) => p.id);
    const visit = async (id: string) => {
      const res = await fetch(made.find((p) => p.id === id)!.url, { redirect: "manual" });
      await res.body?.cancel();
      assert.equal(res.status, 302);
    };
    // All at once (their first visits share commits), then each again: a repeat visit records nothing.
    await Promise.all(ids.map(visit));
    await Promise.all(ids.map(visit));
    for (const id of ids) {
      const payment = (await app.kv.get<{ firstRedirectAt?: number }>(["payments", id])).value!;
      assert.ok(payment.firstRedirectAt, id);
      const events = await Array.fromAsync(app.kv.list<{ type: string }>({ prefix: ["payment_events", id] }));
      assert.equal(events.filter((e) => e.value.type === "buyer_redirected").length, 1, id);
    }
  } finally {
    await app.close();
  }
});

Deno.test("[flow] the sandbox's pay page of a closed payment leads back to the shop, also after a second press", async () => {
  const app = await startTestApp();
  try {
    const init = await callInit(app, paymentBody());
    assert.equal(init.status, 201, JSON.stringify(init.body));
    const toProvider = await fetch(init.body.url, { redirect: "manual" });
    await toProvider.body?.cancel();
    const providerPage = toProvider.headers.get("location")!;
    await buyerSettles(init.body.url, "declined");
    const page = await (await fetch(providerPage)).text();
    assert.match(page, /This payment is declined\./);
    const back = page.match(/<a href="([^"]+)">Back to the shop<\/a>/)?.[1];
    assert.ok(back, page);
    assert.equal(back.replaceAll("&amp;", "&"), `${app.baseUrl}/integration/error?id=${init.body.id}`);
    // Pressing Pay again on a page left open: the page as it stands, with the way back.
    const again = await fetch(`${providerPage}/paid`, { method: "POST", redirect: "manual" });
    assert.equal(again.status, 409);
    assert.match(await again.text(), /Back to the shop/);
  } finally {
    await app.close();
  }
});
