/**
 * A stop with postbacks not attempted yet, across two real processes (main.ts) on one KV file with queues on, as
 * docs/internal/deploy.md describes it: the stopping process leaves them free, and a process still running sends them
 * at its next sweep (each runs one every JOBS_SWEEP_INTERVAL_MS, as that page asks of processes sharing a file).
 * tests/relay_test.ts has the same with two pools in one process, where the give-back's queue message wakes the other.
 * Across processes it does not: Deno KV on a SQLite file tells only its own process of a new message, and another
 * looks at the queue on its own at most once a minute, as late as its cron.
 *
 * The shop holds every answer, so process A's share for it (64, DEFAULT_POOL_LIMITS.perDestination) fills and the
 * rest of its new postbacks wait in its pool, leased to A as they were made: then A gets SIGTERM and the shop answers.
 *
 * Expected: every postback arrives once (by webhook-id), and those A gave back arrive within a few seconds of the
 * stop, each before its first lease would have run out (B took it given back, not left to run out).
 */
import assert from "node:assert/strict";
import { getDeliveryEntry } from "../lib/db/deliveries.ts";
import { DELIVERY_LEASE_MS } from "../lib/relay/lease.ts";
import { DEFAULT_POOL_LIMITS } from "../lib/relay/pool.ts";
import {
  type AppProcess,
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

/** More than the shop's share in A, so that some postbacks are not attempted yet at the stop. */
const PAYMENTS = DEFAULT_POOL_LIMITS.perDestination + 36;
/** How soon after the stop B must have sent what A gave back: a few of its sweeps, well before its cron's next run. */
const GIVEN_BACK_WITHIN_MS = 5_000;

Deno.test({
  name:
    "[stop] postbacks a stopping process had not attempted are sent by another process on the same KV file at its next sweep, once each",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "aimbrella-stop-" });
    const kvPath = `${dir}/kv.sqlite3`;

    const { sandbox, url: sandboxUrl, close: closeSandbox } = serveSandbox();

    // The shop holds every answer until it is released.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const shop = startShopReceiver(async () => {
      await released;
      return new Response("ok");
    });

    const envFor = (port: number): Record<string, string> => ({
      ...loopbackAppEnv(port, kvPath),
      BANSKY_API_URL: sandboxUrl,
      BANSKY_API_TOKEN: SANDBOX_TOKEN,
      BANSKY_WEBHOOK_SECRET: SANDBOX_SECRET,
      LOG_LEVEL: "warn",
      JOBS_QUEUE: "on",
      JOBS_SWEEP_INTERVAL_MS: "1000",
    });
    const apps: AppProcess[] = [];
    try {
      const shopCreds = await createShopWithCli(envFor(freePort()), "Stop shop", shop.url);
      const nodes = [];
      for (let i = 0; i < 2; i++) {
        const port = freePort();
        const baseUrl = `http://127.0.0.1:${port}`;
        const app = spawnApp(envFor(port));
        apps.push(app);
        nodes.push({ baseUrl, app });
        await waitHealthy(baseUrl, app);
      }
      const [a] = nodes;

      // Every payment is made and paid through A: the sandbox's webhooks go to A, whose commits hand it the postbacks.
      const payOne = async (i: number) => {
        const res = await fetch(`${a.baseUrl}/api/v1/init-payment`, {
          method: "POST",
          headers: { authorization: `Bearer ${shopCreds.apiKey}`, "content-type": "application/json" },
          body: JSON.stringify(paymentBody({ id: `order-${i}` })),
        });
        const created = await res.json();
        assert.equal(res.status, 201, JSON.stringify(created));
        const toProvider = await fetch(created.url, { redirect: "manual" });
        await toProvider.body?.cancel();
        const paid = await fetch(`${toProvider.headers.get("location")}/paid`, { method: "POST", redirect: "manual" });
        await paid.body?.cancel();
      };
      let next = 0;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (next < PAYMENTS) await payOne(next++);
      }));
      await waitFor("every webhook accepted", () => sandbox.webhooksAccepted >= PAYMENTS || undefined, 15_000);
      const share = DEFAULT_POOL_LIMITS.perDestination;
      await waitFor("A's share for the shop full", () => shop.received.length >= share || undefined, 10_000);
      // The rest wait in A's pool: nothing more reaches the shop while it holds its answers.
      await sleep(300);
      assert.equal(shop.received.length, share);
      const attemptedBeforeStop = new Set(shop.received.map((r) => r.headers.get("webhook-id")));

      const stoppedAt = Date.now();
      a.app.child.kill("SIGTERM");
      await sleep(200);
      release();
      const exitA = await a.app.exited;
      assert.equal(exitA.code, 0, exitA.stderr);

      await waitFor("every postback at the shop", () => shop.received.length >= PAYMENTS || undefined, 20_000);
      // Room for a copy to show up.
      await sleep(1_000);
      const copies = new Map<string, number>();
      for (const r of shop.received) {
        const id = r.headers.get("webhook-id")!;
        copies.set(id, (copies.get(id) ?? 0) + 1);
      }
      assert.equal(copies.size, PAYMENTS);
      assert.deepEqual([...copies].filter(([, n]) => n > 1), [], "postbacks sent more than once");
      const givenBack = shop.received.filter((r) => !attemptedBeforeStop.has(r.headers.get("webhook-id")));
      assert.equal(givenBack.length, PAYMENTS - share);
      const latest = Math.max(...givenBack.map((r) => r.at)) - stoppedAt;
      assert.ok(latest < GIVEN_BACK_WITHIN_MS, `the last postback A gave back arrived ${latest} ms after the stop`);
      const kv = await Deno.openKv(kvPath);
      try {
        for (const r of givenBack) {
          const { value } = await getDeliveryEntry(kv, r.headers.get("webhook-id")!);
          assert.equal(value?.status, "delivered");
          const leaseLeft = value!.createdAt + DELIVERY_LEASE_MS - r.at;
          assert.ok(leaseLeft > 0, `${value!.id} arrived ${-leaseLeft} ms after its first lease ran out`);
        }
      } finally {
        kv.close();
      }

      const exitB = await stopApp(nodes[1].app, "SIGTERM");
      apps.length = 0;
      const errors = [exitA, exitB].flatMap((e) => e.stderr.split("\n").filter((l) => l.includes('"level":"error"')));
      assert.deepEqual(errors, [], "the apps logged errors");
    } finally {
      release();
      await Promise.all(apps.map((app) => stopApp(app, "SIGKILL")));
      await closeSandbox();
      await shop.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
