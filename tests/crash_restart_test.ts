/**
 * Crash safety: the app (main.ts, a real process on a KV file) is killed with
 * SIGKILL at random moments while payments are being created, webhooks are
 * arriving and postbacks are pending, and restarted, 20 times. The Bansky
 * sandbox runs in this test process, so it survives the restarts and retries
 * each webhook until the app answers 2xx ("accepted"). The shop fails a share
 * of postbacks so retries are pending at the kills.
 *
 * Afterwards every accepted webhook must have reached the shop as a postback
 * that verifies, and every copy of a payment's postback must carry the same
 * webhook-id and body (a shop deduplicates on webhook-id).
 */
import assert from "node:assert/strict";
import { paymentIdOfRequestId } from "../lib/providers/request_id.ts";
import { Webhook } from "standardwebhooks";
import {
  type AppProcess,
  type AppProcessExit,
  createShopWithCli,
  freePort,
  loopbackAppEnv,
  paymentBody,
  SANDBOX_SECRET,
  SANDBOX_TOKEN,
  serveSandbox,
  sleep,
  spawnApp,
  startShopReceiver,
  stopApp,
  waitFor,
  waitHealthy,
} from "../fixtures/app.ts";

const RESTARTS = 20;
const PAYMENTS = 30;
/** Time between payment starts: spreads the traffic over the crash loop. */
const PAYMENT_SPACING_MS = 450;
/** Share of postbacks the shop answers 500 while the app is being crashed. */
const SHOP_FAILURE_RATE = 0.3;
/** Share of postbacks the shop answers slowly, so that kills land in the middle of attempts. */
const SHOP_SLOW_RATE = 0.3;
const SHOP_SLOW_MS = 250;

interface Postback {
  webhookId: string | null;
  body: string;
  headers: Record<string, string>;
  answered: number;
}

Deno.test({
  name:
    "[crash] SIGKILLed 20 times with postbacks pending: every accepted webhook is delivered, duplicates share a webhook-id",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "aimbrella-crash-" });
    const appPort = freePort();
    const baseUrl = `http://127.0.0.1:${appPort}`;

    // The sandbox, outside the app so it outlives every crash. Its POST /payments answers tell us each ref.
    const refByPaymentId = new Map<string, string>();
    const { sandbox, url: sandboxUrl, close: closeSandbox } = serveSandbox(async (req, sandbox) => {
      if (req.method !== "POST" || new URL(req.url).pathname !== "/payments") return sandbox.app.fetch(req);
      const sent = await req.text();
      const res = await sandbox.app.fetch(new Request(req.url, { method: "POST", headers: req.headers, body: sent }));
      const answer = await res.text();
      // The id Bansky gets names our payment and the request (lib/providers/request_id.ts).
      if (res.ok) refByPaymentId.set(paymentIdOfRequestId(JSON.parse(sent).id), JSON.parse(answer).id);
      return new Response(answer, { status: res.status, headers: res.headers });
    });

    // The shop: records every postback; fails some while the crash loop runs, then answers 200.
    let shopHealthy = false;
    const answers: number[] = [];
    const shop = startShopReceiver(async (n) => {
      const status = shopHealthy || Math.random() >= SHOP_FAILURE_RATE ? 200 : 500;
      answers[n - 1] = status;
      if (!shopHealthy && Math.random() < SHOP_SLOW_RATE) await sleep(SHOP_SLOW_MS);
      return new Response(status === 200 ? "ok" : "try later", { status });
    });
    const postbacks = (): Postback[] =>
      shop.received.map((r, i) => ({
        webhookId: r.headers.get("webhook-id"),
        body: r.body,
        headers: Object.fromEntries(r.headers),
        answered: answers[i],
      }));
    const paymentIdOf = (p: Postback): string => JSON.parse(p.body).data.paymentId;
    const deliveredPaymentIds = () => new Set(postbacks().filter((p) => p.answered === 200).map(paymentIdOf));

    const env: Record<string, string> = {
      ...loopbackAppEnv(appPort, `${dir}/kv.sqlite3`),
      BANSKY_API_URL: sandboxUrl,
      BANSKY_API_TOKEN: SANDBOX_TOKEN,
      BANSKY_WEBHOOK_SECRET: SANDBOX_SECRET,
      LOG_LEVEL: "warn",
      JOBS_QUEUE: "on",
      JOBS_SWEEP_INTERVAL_MS: "500",
      POSTBACK_SCHEDULE: "0,0.3,0.3,0.5,0.5,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
      // A postback in flight at a kill stays leased for up to 10 s (lib/relay/lease.ts); attempts end within this.
      POSTBACK_TIMEOUT_MS: "1000",
      // A payment being created at a kill is locked for this + 5 s.
      PROVIDER_TIMEOUT_MS: "2000",
    };

    let app: AppProcess | undefined;
    const exits: AppProcessExit[] = [];
    const settled: { paymentId: string; shopTxId: string }[] = [];
    let pendingAtKills = 0;
    let initRetries = 0;
    let initBusy = 0;
    let stopTraffic = false;
    let traffic: Promise<unknown> = Promise.resolve();
    try {
      const shopCreds = await createShopWithCli(env, "Crash test shop", shop.url);

      /** Creates one payment through the API, retrying while the app is down or busy; returns our payment id. */
      const createPayment = async (shopTxId: string): Promise<string> => {
        const deadline = Date.now() + 45_000;
        for (;;) {
          if (stopTraffic) throw new Error("stopped");
          if (Date.now() > deadline) throw new Error(`could not create payment ${shopTxId} in time`);
          let res: Response;
          try {
            res = await fetch(`${baseUrl}/api/v1/init-payment`, {
              method: "POST",
              headers: { authorization: `Bearer ${shopCreds.apiKey}`, "content-type": "application/json" },
              body: JSON.stringify(paymentBody({ id: shopTxId })),
              signal: AbortSignal.timeout(5_000),
            });
          } catch {
            initRetries++;
            await sleep(50); // The app is down or was killed mid-request: the same id makes the retry safe.
            continue;
          }
          const body = await res.json().catch(() => null);
          if (res.status === 201 || res.status === 200) return body.id;
          // 409: a killed request still holds the id's lease; anything else is a bug.
          assert.equal(res.status, 409, `init-payment ${shopTxId}: ${res.status} ${JSON.stringify(body)}`);
          initBusy++;
          await sleep(200);
        }
      };

      /** Creates a payment, then settles it at the sandbox, which starts sending its webhook. */
      const onePayment = async (i: number) => {
        await sleep(i * PAYMENT_SPACING_MS);
        const shopTxId = `order-${i}`;
        const paymentId = await createPayment(shopTxId);
        const ref = refByPaymentId.get(paymentId);
        assert.ok(ref, `the sandbox never saw payment ${paymentId}`);
        const res = await fetch(`${sandboxUrl}/payments/${ref}/complete`, {
          method: "POST",
          headers: { authorization: `Bearer ${SANDBOX_TOKEN}`, "content-type": "application/json" },
          body: JSON.stringify({ outcome: "paid" }),
        });
        const answer = await res.text();
        assert.equal(res.status, 200, `completing ${shopTxId} at the sandbox: ${answer}`);
        settled.push({ paymentId, shopTxId });
      };
      traffic = Promise.all(Array.from({ length: PAYMENTS }, (_, i) => onePayment(i)));
      traffic.catch(() => (stopTraffic = true));

      // The crash loop: start, wait until healthy, let it work for a random moment, SIGKILL.
      for (let r = 0; r < RESTARTS; r++) {
        app = spawnApp(env);
        await waitHealthy(baseUrl, app);
        await sleep(100 + Math.random() * 600);
        const delivered = deliveredPaymentIds();
        pendingAtKills += settled.filter((s) => !delivered.has(s.paymentId)).length;
        exits.push(await stopApp(app, "SIGKILL"));
        app = undefined;
      }
      app = spawnApp(env);
      await waitHealthy(baseUrl, app);
      await traffic;
      shopHealthy = true;

      // Every killed run died of our SIGKILL, not of its own accord.
      for (const [i, exit] of exits.entries()) {
        assert.equal(exit.signal, "SIGKILL", `run ${i + 1} exited by itself (code ${exit.code}):\n${exit.stderr}`);
      }
      assert.equal(settled.length, PAYMENTS);
      // The test did what it says: postbacks were pending when the app was killed.
      assert.ok(pendingAtKills > 0, "no postback was pending at any kill");

      // The app is up for good: the sandbox's retries (backing off to 20 s) get every webhook accepted.
      await waitFor(
        "every webhook to be accepted",
        () => (sandbox.webhooksAccepted >= PAYMENTS ? true : undefined),
        60_000,
      );
      assert.equal(sandbox.webhooksAccepted, PAYMENTS);

      // Every accepted webhook ends as a postback the shop took (leases of attempts cut by a kill run out within 10 s).
      await waitFor("a delivered postback for every payment", () => {
        const delivered = deliveredPaymentIds();
        return settled.every((s) => delivered.has(s.paymentId)) ? true : undefined;
      }, 45_000).catch((err) => {
        const delivered = deliveredPaymentIds();
        const missing = settled.filter((s) => !delivered.has(s.paymentId)).map((s) => s.shopTxId);
        throw new Error(`${err.message}; missing: ${missing.join(", ")}`);
      });
      // Let any attempt already under way land before judging duplicates.
      await sleep(500);

      const all = postbacks();
      const webhook = new Webhook(shopCreds.webhookSecret);
      for (const { paymentId, shopTxId } of settled) {
        const mine = all.filter((p) => paymentIdOf(p) === paymentId);
        for (const p of mine) {
          const payload = webhook.verify(p.body, p.headers) as { type: string; data: Record<string, unknown> };
          assert.equal(payload.type, "payment.succeeded");
          assert.equal(payload.data.id, shopTxId);
          assert.equal(payload.data.paymentId, paymentId);
        }
        const ids = new Set(mine.map((p) => p.webhookId));
        assert.equal(ids.size, 1, `${shopTxId}: postbacks carry several webhook-ids: ${[...ids].join(", ")}`);
        assert.match([...ids][0]!, /^msg_/);
        assert.equal(new Set(mine.map((p) => p.body)).size, 1, `${shopTxId}: the postback body changed between copies`);
      }
      // One payment, one message: no postback for anything but the settled payments.
      const ids = new Set(all.map((p) => p.webhookId));
      assert.equal(ids.size, PAYMENTS);

      // And the shop's API agrees every payment succeeded.
      for (const { paymentId, shopTxId } of settled) {
        const res = await fetch(`${baseUrl}/api/v1/payments/${paymentId}`, {
          headers: { authorization: `Bearer ${shopCreds.apiKey}` },
        });
        const body = await res.json();
        assert.equal(res.status, 200);
        assert.equal(body.payment.status, "succeeded", shopTxId);
      }

      const final = await stopApp(app, "SIGTERM");
      app = undefined;
      const errors = [...exits, final].flatMap((e) =>
        e.stderr.split("\n").filter((l) => l.includes('"level":"error"'))
      );
      assert.deepEqual(errors, [], "the app logged errors");
      const duplicated = settled.filter((s) =>
        all.filter((p) => p.answered === 200 && paymentIdOf(p) === s.paymentId).length > 1
      );
      console.log(
        `[crash] ${RESTARTS} kills, ${pendingAtKills} payment-postbacks pending across kills, ` +
          `${all.length} postback requests (${all.filter((p) => p.answered === 500).length} answered 500) ` +
          `for ${PAYMENTS} payments, ${duplicated.length} taken twice by the shop; ` +
          `init-payment retried ${initRetries} times while down, ${initBusy} times on 409`,
      );
    } finally {
      stopTraffic = true;
      await traffic.catch(() => {});
      if (app) await stopApp(app, "SIGKILL");
      await closeSandbox();
      await shop.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
