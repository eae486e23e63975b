/**
 * A late payment.succeeded supersedes the payment's older postbacks not delivered yet, also those an attempt held at
 * that moment, and those a resend puts back meanwhile: the shop's last word about a late payment is the success.
 */
import assert from "node:assert/strict";
import { describePayment } from "../lib/payments/admin.ts";
import { getPayment } from "../lib/db/payments.ts";
import { runPaymentCheck } from "../lib/payments/janitor.ts";
import {
  callInit,
  paymentBody,
  SANDBOX_TOKEN,
  startShopReceiver,
  startTestApp,
  type TestApp,
  waitFor,
} from "../fixtures/app.ts";

/** As relay_test.ts: a payment expired by the janitor while Bansky keeps its money on the way (refuseCancels). */
async function expiredWithMoneyOnItsWay(app: TestApp, shop: { url: string }) {
  const init = await callInit(
    app,
    paymentBody({ id: `o-${crypto.randomUUID()}`, postbackUrl: shop.url, expiresIn: 60 }),
  );
  assert.equal(init.status, 201, JSON.stringify(init.body));
  const id: string = init.body.id;
  app.server.ctx.now = () => Date.now() + 61_000;
  await runPaymentCheck(app.server.ctx, id);
  assert.equal((await getPayment(app.kv, id))?.status, "expired");
  return { id, ref: (await getPayment(app.kv, id))!.providerRef! };
}

/** The late money arrives at Bansky, whose webhook makes the payment succeed late. */
async function lateMoney(app: TestApp, payment: { id: string; ref: string }) {
  const res = await fetch(`${app.sandboxUrl}/payments/${payment.ref}/complete`, {
    method: "POST",
    headers: { authorization: `Bearer ${SANDBOX_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ outcome: "paid" }),
  });
  await res.body?.cancel();
  assert.equal(res.status, 200);
  await waitFor(
    "the late success",
    async () => (await getPayment(app.kv, payment.id))?.status === "succeeded" || undefined,
  );
}

Deno.test("[relay] a payment.expired whose attempt was under way when the late payment.succeeded came, and then failed, is not retried after the success", async () => {
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { refuseCancels: true },
    env: { POSTBACK_SCHEDULE: "0,3", POSTBACK_TIMEOUT_MS: "30000" },
  });
  // The shop's endpoint is slow on the first postback (the payment.expired) and then answers 503.
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const shop = startShopReceiver(async (n) => {
    if (n === 1) {
      await gate;
      return new Response("busy", { status: 503 });
    }
    return new Response("ok");
  });
  try {
    const payment = await expiredWithMoneyOnItsWay(app, shop);
    await waitFor("the payment.expired attempt under way", () => shop.received.length === 1 || undefined);
    await lateMoney(app, payment);
    await waitFor("payment.succeeded", () => shop.received.length >= 2 || undefined);
    // The slow attempt at payment.expired now ends with a 503: its retry is due 3 s later.
    release();
    await waitFor("the expired one's attempt recorded", async () => {
      const { deliveries } = await describePayment(app.server.ctx, payment.id);
      const expired = deliveries.find((d) => d.eventType === "payment.expired")!;
      return expired.attempts === 1 || undefined;
    });
    app.server.ctx.now = () => Date.now() + 61_000 + 10 * 60_000;
    await app.server.runner.sweep();
    await app.server.runner.idle();
    const types = shop.received.map((r) => JSON.parse(r.body).type);
    const { deliveries } = await describePayment(app.server.ctx, payment.id);
    assert.deepEqual(
      types,
      ["payment.expired", "payment.succeeded"],
      `nothing after the success; deliveries: ${JSON.stringify(deliveries.map((d) => [d.eventType, d.status]))}`,
    );
  } finally {
    release();
    await shop.close();
    await app.close();
  }
});

/** As relay_test.ts: holds the next read of a delivery record after it was read, until `release()`. */
function holdFirstDeliveryRead(kv: Deno.Kv) {
  const get = kv.get;
  const getMany = kv.getMany;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let hold!: () => void;
  const held = new Promise<void>((r) => (hold = r));
  let armed = true;
  const restore = () => {
    kv.get = get;
    kv.getMany = getMany;
  };
  const holdIfFirst = async <T>(keys: Deno.KvKey[], read: Promise<T>): Promise<T> => {
    const result = await read;
    if (armed && keys.some((k) => k[0] === "deliveries")) {
      armed = false;
      restore();
      hold();
      await gate;
    }
    return result;
  };
  kv.get =
    ((key: Deno.KvKey, opts?: { consistency?: Deno.KvConsistencyLevel }) =>
      holdIfFirst([key], get.call(kv, key, opts))) as Deno.Kv["get"];
  kv.getMany =
    ((keys: Deno.KvKey[], opts?: { consistency?: Deno.KvConsistencyLevel }) =>
      holdIfFirst(keys, getMany.call(kv, keys, opts))) as Deno.Kv["getMany"];
  return { held, release };
}

Deno.test("[relay] an operator's resend of a failed payment.expired racing the late success that supersedes it does not send it after the success", async () => {
  const { resendPostback } = await import("../lib/payments/admin.ts");
  const app = await startTestApp({
    standaloneSandbox: true,
    knobs: { refuseCancels: true },
    env: { POSTBACK_SCHEDULE: "0" },
  });
  const shop = startShopReceiver((n) => new Response(n === 1 ? "down" : "ok", { status: n === 1 ? 500 : 200 }));
  try {
    const payment = await expiredWithMoneyOnItsWay(app, shop);
    const expired = await waitFor("the postback failed", async () => {
      const { deliveries } = await describePayment(app.server.ctx, payment.id);
      return deliveries[0]?.status === "failed" ? deliveries[0] : undefined;
    });
    // The operator's resend reads the payment's postbacks (payment.expired: failed) and is held right there.
    const reads = holdFirstDeliveryRead(app.kv);
    const resend = resendPostback(app.server.ctx, payment.id, { actor: "test", deliveryId: expired.id }).then(
      (d) => d.status,
      (err) => `refused: ${err.code ?? err.message}`,
    );
    await reads.held;
    await lateMoney(app, payment);
    await waitFor("payment.succeeded", () => shop.received.length >= 2 || undefined);
    reads.release();
    const outcome = await resend;
    await app.server.runner.idle();
    const types = shop.received.map((r) => JSON.parse(r.body).type);
    assert.deepEqual(types, ["payment.expired", "payment.succeeded"], `resend: ${outcome}`);
  } finally {
    await shop.close();
    await app.close();
  }
});
