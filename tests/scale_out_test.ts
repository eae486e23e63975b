/**
 * Scaling out on one machine: two app processes (main.ts) share one KV file
 * under concurrent load. Shops' init-payments are split across both (some
 * sent to both at once), each buyer is redirected through the process that
 * did not create the payment, pays at the Bansky sandbox (standalone, in this
 * test process), whose webhook goes to the creating process, and either
 * process may send the postback (KV queue, sweeps). Two processes on one
 * SQLite file refuse each other's checked writes with `database is locked`;
 * before writes retried it, this gave 500s and repeated postbacks.
 *
 * Expected: no 5xx anywhere, one payment per order id, every payment's
 * postback delivered exactly once (the shop always answers 200 and no process
 * dies, so the at-least-once rule allows no copy), no error logged, and each
 * process's peak RSS is reported.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { iteratePaymentIds } from "../lib/db/payments.ts";
import {
  type AppProcess,
  createShopWithCli,
  freePort,
  loopbackAppEnv,
  paymentBody,
  SANDBOX_SECRET,
  SANDBOX_TOKEN,
  serveSandbox,
  spawnApp,
  startShopReceiver,
  stopApp,
  waitFor,
  waitHealthy,
} from "../fixtures/app.ts";

const PAYMENTS = 300;
/** Buyers and shops at work at once. */
const CONCURRENCY = 24;
/** Every this many orders, the shop sends its init-payment to both processes at once (a retry racing the original). */
const RACED_EVERY = 10;
/** Peak resident memory allowed per app process. */
const MAX_RSS_MB = 200;

interface Node {
  baseUrl: string;
  app: AppProcess;
}

/** The process's peak resident set size in MB (Linux), or null where /proc is not there. */
async function peakRssMb(pid: number): Promise<number | null> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => null);
  const kb = status?.match(/^VmHWM:\s+(\d+) kB/m)?.[1];
  return kb ? Number(kb) / 1024 : null;
}

Deno.test({
  name: "[scale-out] two processes on one KV file: no 5xx, no duplicate payment, one postback each under load",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "aimbrella-scale-" });
    const kvPath = `${dir}/kv.sqlite3`;

    const { sandbox, url: sandboxUrl, close: closeSandbox } = serveSandbox();
    const shop = startShopReceiver();

    const envFor = (port: number): Record<string, string> => ({
      ...loopbackAppEnv(port, kvPath),
      BANSKY_API_URL: sandboxUrl,
      BANSKY_API_TOKEN: SANDBOX_TOKEN,
      BANSKY_WEBHOOK_SECRET: SANDBOX_SECRET,
      LOG_LEVEL: "warn",
      JOBS_QUEUE: "on",
      JOBS_SWEEP_INTERVAL_MS: "1000",
      POSTBACK_SCHEDULE: "0,1,1,1,1",
      POSTBACK_TIMEOUT_MS: "2000",
    });
    const nodes: Node[] = [];
    const statuses = new Map<string, number>();
    const count = (what: string, status: number) => {
      const key = `${what} ${status}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      assert.ok(status < 500, `${what} answered ${status}`);
    };
    try {
      const shopCreds = await createShopWithCli(envFor(freePort()), "Scale-out shop", shop.url);
      for (let i = 0; i < 2; i++) {
        const port = freePort();
        const baseUrl = `http://127.0.0.1:${port}`;
        const app = spawnApp(envFor(port));
        nodes.push({ baseUrl, app });
        await waitHealthy(baseUrl, app);
      }
      /** The same path on the other process: the buyer and the shop do not care which one answers. */
      const onOther = (url: string, from: number) => url.replace(nodes[from].baseUrl, nodes[1 - from].baseUrl);

      const init = async (n: number, orderId: string) => {
        const res = await fetch(`${nodes[n].baseUrl}/api/v1/init-payment`, {
          method: "POST",
          headers: { authorization: `Bearer ${shopCreds.apiKey}`, "content-type": "application/json" },
          body: JSON.stringify(paymentBody({ id: orderId })),
          signal: AbortSignal.timeout(15_000),
        });
        const body = await res.json();
        count("init-payment", res.status);
        assert.ok(res.status === 201 || res.status === 200, `init-payment ${orderId}: ${res.status}`);
        return body as { id: string; url: string };
      };
      /** A redirect we expect: its status is 3xx and it says where to go. */
      const hop = async (what: string, url: string, init: RequestInit = {}) => {
        const res = await fetch(url, { ...init, redirect: "manual", signal: AbortSignal.timeout(15_000) });
        await res.body?.cancel();
        count(what, res.status);
        assert.ok(res.status >= 300 && res.status < 400, `${what} ${url}: ${res.status}`);
        return res.headers.get("location")!;
      };

      const paymentOf = new Map<string, string>();
      const onePayment = async (i: number) => {
        const orderId = `order-${i}`;
        const n = i % 2;
        let created;
        if (i % RACED_EVERY === 0) {
          const [a, b] = await Promise.all([init(n, orderId), init(1 - n, orderId)]);
          assert.equal(a.id, b.id, `${orderId} got two payments`);
          created = a;
        } else {
          created = await init(n, orderId);
        }
        paymentOf.set(orderId, created.id);
        // The buyer goes through the process that did not create the payment, both ways.
        const providerPage = await hop("pay redirect", onOther(created.url, n));
        const backToUs = await hop("sandbox pay", `${providerPage}/paid`, { method: "POST" });
        const toShop = await hop("success redirect", onOther(backToUs, n));
        assert.match(toShop, /^http:\/\/127\.0\.0\.1:9\/shop\/success\?apay_payment=pay_/);
      };
      const started = Date.now();
      let next = 0;
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < PAYMENTS) await onePayment(next++);
      }));
      const loadMs = Date.now() - started;

      await waitFor("every webhook to be accepted", () => sandbox.webhooksAccepted >= PAYMENTS || undefined, 30_000);
      const postbackPayments = () => new Set(shop.received.map((r) => JSON.parse(r.body).data.paymentId as string));
      await waitFor("a postback for every payment", () => postbackPayments().size >= PAYMENTS || undefined, 30_000);
      // Room for a copy to show up: a sweep runs every second in each process.
      await new Promise((r) => setTimeout(r, 2_500));

      const rss = await Promise.all(nodes.map((node) => peakRssMb(node.app.child.pid)));
      const exits = await Promise.all(nodes.map((node) => stopApp(node.app, "SIGTERM")));
      nodes.length = 0;
      const errors = exits.flatMap((e) => e.stderr.split("\n").filter((l) => l.includes('"level":"error"')));
      assert.deepEqual(errors, [], "the apps logged errors");

      // One payment per order id, whichever process or processes were asked.
      assert.equal(paymentOf.size, PAYMENTS);
      assert.equal(new Set(paymentOf.values()).size, PAYMENTS);
      const kv = await Deno.openKv(kvPath);
      try {
        const stored: string[] = [];
        for await (const p of iteratePaymentIds(kv, { shopId: shopCreds.id })) stored.push(p.id);
        assert.deepEqual(stored.sort(), [...paymentOf.values()].sort());
      } finally {
        kv.close();
      }

      // Each payment's postback arrived once, signed, as payment.succeeded.
      const webhook = new Webhook(shopCreds.webhookSecret);
      const copies = new Map<string, number>();
      for (const r of shop.received) {
        const payload = webhook.verify(r.body, Object.fromEntries(r.headers)) as { type: string; data: { id: string } };
        assert.equal(payload.type, "payment.succeeded");
        copies.set(payload.data.id, (copies.get(payload.data.id) ?? 0) + 1);
      }
      const repeated = [...copies].filter(([, n]) => n > 1);
      assert.deepEqual(repeated, [], "postbacks sent more than once");
      assert.equal(copies.size, PAYMENTS);

      const summary = [...statuses].map(([k, n]) => `${k}: ${n}`).join(", ");
      console.log(
        `[scale-out] ${PAYMENTS} payments in ${loadMs} ms over 2 processes (${summary}); ` +
          `peak RSS ${rss.map((mb) => (mb === null ? "n/a" : `${mb.toFixed(0)} MB`)).join(" and ")}`,
      );
      for (const mb of rss) if (mb !== null) assert.ok(mb < MAX_RSS_MB, `peak RSS ${mb.toFixed(0)} MB`);
    } finally {
      await Promise.all(nodes.map((node) => stopApp(node.app, "SIGKILL")));
      await closeSandbox();
      await shop.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
