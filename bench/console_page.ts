/**
 * `deno run -A bench/console_page.ts [--payments N] [--requests N] [--json]`
 *
 * The console's heaviest page and what pages ship to browsers:
 *   1. GET /admin/payments for a shop with N (10,000) payments, first page, the
 *      next page (through the first page's cursor) and a filtered page (status),
 *      signed in; p50/p99 of server time as seen on loopback, sequential
 *      requests after a warm-up.
 *   2. The island JavaScript each console page loads (one bundle), gzipped.
 *      Target: under 40 KB.
 */
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { hashPassword } from "../lib/auth/passwords.ts";
import { updateOperatorPassword } from "../lib/db/operators.ts";
import { createPayment } from "../lib/db/payments.ts";
import { randomId, sortableId } from "../lib/ids.ts";
import type { Payment } from "../lib/payments/types.ts";
import { startTestApp } from "../fixtures/app.ts";
import { percentile, sortedCopy } from "./stats.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    payments: { type: "string", default: "10000" },
    requests: { type: "string", default: "200" },
    json: { type: "boolean", default: false },
  },
});
const paymentCount = Number(flags.payments);
const requests = Number(flags.requests);

Deno.chdir(new URL("..", import.meta.url));
const build = await new Deno.Command(Deno.execPath(), { args: ["task", "build"], stderr: "null", stdout: "null" })
  .output();
if (!build.success) throw new Error("deno task build failed");
const bundle = await Deno.readFile("static/islands.js");
const islandGzipBytes = gzipSync(bundle).length;

const dir = await Deno.makeTempDir({ prefix: "aimbrella-console-bench-" });
const app = await startTestApp({ kvPath: `${dir}/kv.sqlite3` });
try {
  await seed(app.kv, app.shop.id, paymentCount);
  const cookie = await signIn();
  const time = async (path: string) => {
    const samples: number[] = [];
    for (let i = 0; i < requests + 20; i++) {
      const t = performance.now();
      const res = await fetch(app.baseUrl + path, { headers: { cookie } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
      if (i >= 20) samples.push(performance.now() - t);
    }
    const sorted = sortedCopy(samples);
    return { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
  };
  const first = await (await fetch(`${app.baseUrl}/admin/payments?shopId=${app.shop.id}`, { headers: { cookie } }))
    .text();
  // The "next" link, as the page renders it: a cursor page also reads the listing keys just past its cursor.
  const cursor = first.match(/cursor=([^"&]+)/)?.[1];
  if (!cursor) throw new Error("the first page has no next link");
  const results = {
    payments: paymentCount,
    firstPage: await time(`/admin/payments?shopId=${app.shop.id}`),
    nextPage: await time(`/admin/payments?shopId=${app.shop.id}&cursor=${cursor}`),
    filteredPage: await time(`/admin/payments?shopId=${app.shop.id}&status=succeeded`),
    islandGzipBytes,
  };
  if (flags.json) console.log(JSON.stringify(results));
  else {
    console.log(
      `payments list, ${paymentCount} payments, first page: p50 ${results.firstPage.p50Ms.toFixed(2)} ms, p99 ${
        results.firstPage.p99Ms.toFixed(2)
      } ms`,
    );
    console.log(
      `payments list, next page (cursor):  p50 ${results.nextPage.p50Ms.toFixed(2)} ms, p99 ${
        results.nextPage.p99Ms.toFixed(2)
      } ms`,
    );
    console.log(
      `payments list, filtered by status:  p50 ${results.filteredPage.p50Ms.toFixed(2)} ms, p99 ${
        results.filteredPage.p99Ms.toFixed(2)
      } ms`,
    );
    console.log(`island JavaScript per page: ${(islandGzipBytes / 1024).toFixed(1)} KB gzipped (target < 40 KB)`);
  }
} finally {
  await app.close();
  await Deno.remove(dir, { recursive: true });
}

/** N payments for one shop, a quarter of them succeeded, written as the app writes them. */
async function seed(kv: Deno.Kv, shopId: string, n: number) {
  const now = Date.now();
  const one = (i: number) => {
    const p: Payment = {
      id: randomId("pay"),
      seq: sortableId(),
      shopId,
      shopTxId: `order-${i}`,
      idempotencyKey: null,
      requestHash: "bench",
      email: `buyer${i}@example.com`,
      name: null,
      amount: 1000 + i,
      currency: i % 2 ? "EUR" : "USD",
      type: "fiat",
      successUrl: "https://shop.example/ok",
      errorUrl: "https://shop.example/no",
      postbackUrl: "https://shop.example/pb",
      status: i % 4 === 0 ? "succeeded" : "pending",
      provider: "bansky",
      providerRef: `ref_${i}`,
      providerUrl: `https://bansky.example/pay/${i}`,
      lastError: null,
      createdAt: now - (n - i) * 1000,
      updatedAt: now,
      finalizedAt: i % 4 === 0 ? now : null,
    };
    return createPayment(kv, p);
  };
  for (let i = 0; i < n; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => one(i + j)));
  }
}

async function signIn(): Promise<string> {
  const { operator } = await createOperatorAccount(app.server.ctx, "bench@example.com");
  await updateOperatorPassword(app.kv, operator.id, await hashPassword("bench password 123", 1000));
  const page = await fetch(`${app.baseUrl}/admin/login`);
  const csrfCookie = page.headers.getSetCookie()[0].split(";")[0];
  const csrf = (await page.text()).match(/name="_csrf" value="([^"]+)"/)![1];
  const res = await fetch(`${app.baseUrl}/admin/login`, {
    method: "POST",
    redirect: "manual",
    headers: { cookie: csrfCookie, "content-type": "application/x-www-form-urlencoded", origin: app.baseUrl },
    body: new URLSearchParams({ _csrf: csrf, email: "bench@example.com", password: "bench password 123" }),
  });
  await res.body?.cancel();
  const session = res.headers.getSetCookie().find((c) => c.startsWith("__Host-apay_session="))!.split(";")[0];
  return `${csrfCookie}; ${session}`;
}
