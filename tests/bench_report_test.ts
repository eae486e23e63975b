import assert from "node:assert/strict";
import {
  type DrainResult,
  type DrainRuns,
  medianRun,
  type ThroughputResult,
  type WebhookResult,
} from "../bench/phases.ts";
import { benchPostback } from "../bench/peers/postback.mjs";
import { QUICK } from "../bench/profile.ts";
import { type BenchResults, failures, renderMarkdown, renderText } from "../bench/report.ts";
import { cpuByThreadMs, syncWriteMicros } from "../bench/procs.ts";

const versions = { bullmq: "6.7.0", ioredis: "5.11.1", standardwebhooks: "1.1.1", node: "20.20.2", redis: "7.0.15" };

function throughput(endpoint: string): ThroughputResult {
  const both = <T>(x: T) => ({ app: x, floor: x });
  return {
    endpoint,
    target: 0.6,
    rounds: both([]),
    rps: both(1_000),
    cpuMsPerRequest: both(1),
    threadCpuMsPerRequest: both({ main: 0.6, store: 0.3, v8: 0.1, other: 0 }),
    p50Ms: both(5),
    p99Ms: both(9),
    ratio: 1,
    roundRatios: [1],
    errors: both(0),
    firstError: null,
    idFiles: both([]),
    foreign: [0],
    sandboxCpuMsPerRequest: { app: [0.041, 0.049], floor: [0.066, 0.077] },
  };
}

function results(drainRate: number, peer: BenchResults["peer"], lost = 0): BenchResults {
  const delivered = { expected: 1_000, received: 1_000 - lost, lost, duplicates: 0 };
  const webhook: WebhookResult = {
    ...delivered,
    rate: 50,
    seconds: 2,
    p50Ms: 5,
    p99Ms: 9,
    maxMs: 10,
    sendErrors: 0,
    generatorLagMs: 1,
    foreign: 0,
    slowest: { paymentId: "pay_1", latencyMs: 190, statusChangedMs: 181, attemptMs: 182 },
  };
  const drain: DrainRuns<DrainResult> = {
    ...delivered,
    rates: [drainRate],
    seedMs: 1_000,
    startupMs: 500,
    drainMs: 1_000_000 / drainRate,
    rate: drainRate,
    totalMs: 1_000,
    peakRssMB: 100,
    foreign: 0,
  };
  return {
    profile: QUICK,
    command: "deno task bench --quick",
    startedAt: new Date(0),
    elapsedS: 60,
    machine: "test machine",
    syncWriteUs: 135.4,
    pay: throughput("GET /integration/pay"),
    init: throughput("POST /api/v1/init-payment"),
    initSameClient: throughput("POST /api/v1/init-payment, floor with the app's HTTP client"),
    invoice: throughput("POST /api/v1/invoices"),
    refund: throughput("POST /api/v1/payments/{id}/refunds"),
    webhook,
    webhookPeak: { ...webhook, rate: 200 },
    besideSlowShop: { ...webhook, slowRate: 10, slowReceived: 20 },
    drain,
    peer,
    loadRssMB: 100,
    invoiceRssMB: 100,
    appLogLines: 0,
  };
}

function measuredPeer(rate: number): BenchResults["peer"] {
  return {
    kind: "measured",
    rates: [rate],
    versions,
    expected: 1_000,
    received: 1_000,
    lost: 0,
    duplicates: 0,
    enqueueMs: 900,
    startupMs: 2_000,
    drainMs: 1_000_000 / rate,
    rate,
    totalMs: 3_000,
    cpuMsPerPostback: { worker: 0.7, redis: 0.2 },
    workerRssMB: 130,
    redisRssMB: 15,
    workerLogLines: 0,
    foreign: 0,
  };
}

const DRAIN = "Drain of 1,000 queued postbacks";

Deno.test("[bench report] the drain row judges the app against the peer's rate in the same run", () => {
  const slower = results(500, measuredPeer(1_500));
  assert.ok(failures(slower).includes(DRAIN));
  const row = renderText(slower).split("\n").find((l) => l.startsWith(DRAIN))!;
  assert.match(row, /500 postbacks\/s\s+1,500 postbacks\/s \(BullMQ \+ Redis peer\)\s+0\.33\s+≥ 1\.0 × peer/);
  assert.match(row, /FAIL$/);

  assert.ok(!failures(results(1_600, measuredPeer(1_500))).includes(DRAIN));
  // Faster than the peer but a postback lost: still a failure.
  assert.ok(failures(results(1_600, measuredPeer(1_500), 1)).includes(DRAIN));
});

Deno.test("[bench report] a peer that cannot run here is 'not measured', not a failure; a broken one fails", () => {
  const missing = results(500, { kind: "missing", reason: "no redis-server", versions: { ...versions, redis: null } });
  assert.ok(!failures(missing).includes(DRAIN));
  const row = renderText(missing).split("\n").find((l) => l.startsWith(DRAIN))!;
  assert.match(row, /BullMQ \+ Redis peer not measured \(no redis-server\)/);
  assert.match(row, /n\/a$/);
  assert.match(renderMarkdown(missing), /In this run the peer was not measured \(no redis-server\)\./);

  const broken = results(500, { kind: "failed", reason: "worker crashed", versions });
  assert.ok(failures(broken).includes(DRAIN));
});

Deno.test("[bench report] the doc says which versions and settings the peer ran with", () => {
  const doc = renderMarkdown(results(500, measuredPeer(1_500)));
  // The generated page is re-wrapped by `deno fmt`; compare the words, not the line breaks.
  const peer = doc.slice(doc.indexOf("## The peer")).replace(/\s+/g, " ");
  for (
    const expected of [
      "BullMQ 6.7.0",
      "Redis 7.0.15",
      '--appendonly yes --appendfsync everysec --save ""',
      "concurrency 64",
      "every other worker option is BullMQ's documented default",
      "6 attempts with a fixed 1 s backoff",
      "`standardwebhooks` 1.1.1",
    ]
  ) {
    assert.ok(peer.includes(expected), `missing ${JSON.stringify(expected)} in:\n${peer}`);
  }
  assert.match(
    doc,
    /\| Drain of 1,000 queued postbacks \| 500 postbacks\/s \| 1,500 postbacks\/s \(BullMQ \+ Redis peer\) \| 0\.33 \|/,
  );
});

Deno.test("[bench report] both drains send the same postback body, with the payment id the shop counts by", () => {
  const { paymentId, body } = benchPostback(7, Date.UTC(2026, 0, 1));
  assert.equal(paymentId, "pay_seed_7");
  const parsed = JSON.parse(body);
  assert.equal(parsed.data.paymentId, "pay_seed_7");
  assert.equal(parsed.type, "payment.succeeded");
  // The size of a real postback body; the two drains differ at most in the digits of the index.
  assert.ok(body.length > 250 && body.length < 300, String(body.length));
});

Deno.test("[bench report] a throughput row shows the range of its rounds beside the median, in the table and the doc", () => {
  const r = results(1_500, measuredPeer(1_000));
  r.init = { ...throughput("POST /api/v1/init-payment"), ratio: 1, roundRatios: [0.61, 0.85, 1, 1.15, 1.01] };
  const row = (text: string) => text.split("\n").find((l) => l.includes("POST /api/v1/init-payment (req/s)"))!;
  assert.match(row(renderText(r)), /1\.00 \(rounds 0\.61-1\.15\)/);
  assert.match(row(renderMarkdown(r)), /1\.00 \(rounds 0\.61-1\.15\)/);
});

Deno.test("[bench report] a ratio that two decimals would round onto its target shows a third", () => {
  const r = results(1_500, measuredPeer(1_000));
  r.init = { ...throughput("POST /api/v1/init-payment"), target: 0.9, ratio: 0.896, roundRatios: [0.65, 0.99] };
  const row = renderMarkdown(r).split("\n").find((l) => l.includes("POST /api/v1/init-payment (req/s)"))!;
  assert.match(row, /\| 0\.896 \(rounds 0\.65-0\.99\)/);
  assert.match(row, /\*\*FAIL\*\*/);
  r.init = { ...r.init, ratio: 0.913 };
  assert.match(renderMarkdown(r), /\| 0\.91 \(rounds/, "two decimals when they tell the verdict");
});

Deno.test("[bench report] several drains: the median run's rate judges, every run's losses count", () => {
  const run = (rate: number, lost: number, peakRssMB: number): DrainResult => ({
    expected: 1_000,
    received: 1_000 - lost,
    lost,
    duplicates: lost ? 0 : 1,
    seedMs: 1_000,
    startupMs: 500,
    drainMs: 1_000_000 / rate,
    rate,
    totalMs: 1_000 + rate,
    peakRssMB,
    foreign: 0,
  });
  const drain = medianRun([run(900, 0, 120), run(2_000, 0, 150), run(1_200, 1, 130)]);
  assert.equal(drain.rate, 1_200, "the middle rate, not the mean");
  assert.equal(drain.totalMs, 2_200, "the median run's times");
  assert.deepEqual(drain.rates, [900, 2_000, 1_200]);
  assert.deepEqual([drain.expected, drain.received, drain.lost, drain.duplicates], [3_000, 2_999, 1, 2]);
  assert.equal(drain.peakRssMB, 150, "the highest peak of any run");
  const peer = { ...(measuredPeer(1_000) as DrainRuns<Extract<BenchResults["peer"], { kind: "measured" }>>) };
  peer.rates = [800, 1_000, 1_100];
  const r = { ...results(1_200, peer), drain };
  const row = renderText(r).split("\n").find((l) => l.startsWith(DRAIN))!;
  assert.match(row, /1,200 postbacks\/s\s+1,000 postbacks\/s \(BullMQ \+ Redis peer\)\s+1\.20 \(runs 1\.09-2\.00\)/);
  assert.ok(failures(r).includes(DRAIN), "one postback lost in one run fails the row");
  assert.match(renderText(r), /2,999\/3,000 arrived in 3 drains, 2 duplicates/);
  assert.equal(medianRun([run(1_000, 0, 100), run(3_000, 0, 100)]).rate, 1_000, "the lower middle of two");
});

Deno.test("[bench report] the doc's Machine line says how long a synchronous write takes there", () => {
  const machine = renderMarkdown(results(1_000, measuredPeer(1_000))).split("\n").find((l) =>
    l.startsWith("- Machine:")
  );
  assert.equal(
    machine,
    "- Machine: test machine; a synchronous 4 KiB write in the bench's temp dir takes 135 µs (median of 200)",
  );
});

Deno.test("[bench] the synchronous-write probe returns a time and leaves nothing behind", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const us = syncWriteMicros(dir, 5);
    assert.ok(us > 0 && us < 1_000_000, String(us));
    assert.deepEqual([...Deno.readDirSync(dir)], [], "the probe's file is removed");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("[bench report] a throughput row's details split its CPU per request by thread", () => {
  const text = renderText(results(1_000, measuredPeer(1_000)));
  assert.match(
    text,
    /POST \/api\/v1\/init-payment: CPU per request app 1\.000 ms, floor 1\.000 ms \(floor\/app 1\.00; by thread app main 0\.600 \+ store 0\.300 \+ v8 0\.100, floor main 0\.600/,
  );
});

Deno.test("[bench report] a throughput row's details give the main thread's busy share and the sandbox's CPU per request over the rounds", () => {
  const r = results(1_000, measuredPeer(1_000));
  const details = (text: string) => text.split("\n").find((l) => l.includes("POST /api/v1/init-payment: CPU"))!;
  // 0.6 ms of main thread a request at 1,000 requests a second: 60 % of a core.
  assert.match(
    details(renderText(r)),
    /main thread busy app 60 %, floor 60 %; the sandbox's CPU per request over the rounds 41-49 µs in the app's, 66-77 µs in the floor's\)/,
  );
  // A row whose requests never reach the sandbox (the pay redirect) says nothing of it.
  r.pay.sandboxCpuMsPerRequest = { app: [0, 0], floor: [0, 0] };
  const pay = renderText(r).split("\n").find((l) => l.includes("GET /integration/pay: CPU"))!;
  assert.doesNotMatch(pay, /sandbox/);
  assert.match(pay, /main thread busy app 60 %, floor 60 %\)/);
  // A row where only the app calls it (invoices: the floor asks no chain for addresses) says the floor made none.
  r.invoice.sandboxCpuMsPerRequest = { app: [0.021, 0.026], floor: [0, 0] };
  const invoice = renderText(r).split("\n").find((l) => l.includes("POST /api/v1/invoices: CPU"))!;
  assert.match(
    invoice,
    /the sandbox's CPU per request over the rounds 21-26 µs in the app's, no calls in the floor's\)/,
  );
});

Deno.test("[bench report] the details say where each webhook phase's slowest postback spent its time", () => {
  const r = results(1_000, measuredPeer(1_000));
  r.webhookPeak = { ...r.webhookPeak, slowest: { ...r.webhook.slowest!, statusChangedMs: null, attemptMs: null } };
  r.besideSlowShop = { ...r.besideSlowShop, slowest: null };
  const line = renderText(r).split("\n").find((l) => l.includes("Slowest postback of each webhook phase"))!;
  assert.match(line, /ms after its settlement .*: at 50\/s 190 \(status changed 181, first attempt 182\)/);
  // A time the app's record does not give is said to be missing, not shown as zero.
  assert.match(line, /at 200\/s 190 \(status changed n\/a, first attempt n\/a\)/);
  assert.match(line, /beside the slow shop none arrived/);
});

Deno.test("[bench] CPU by thread counts a deno run's JavaScript as main", async () => {
  // A separate `deno run` (deno test runs its modules off the process's main thread): spins until its main thread has
  // used 300 ms of CPU (its own /proc ticks, so a busy machine only makes it take longer), then waits to be read.
  const spin =
    "const ticks = () => Number(Deno.readTextFileSync('/proc/thread-self/stat').split(') ')[1].split(' ')[11]);" +
    "const t = ticks() + 30; while (ticks() < t); console.log('spun'); setTimeout(() => {}, 5000);";
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", spin],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    assert.match(new TextDecoder().decode(value), /spun/);
    const ms = cpuByThreadMs(child.pid);
    // Ticks are 10 ms: 300 ms of spinning shows as at least 200 (start-up adds more).
    assert.ok(ms.main >= 200, JSON.stringify(ms));
    assert.equal(ms.store, 0, "no KV opened, no store thread");
    reader.releaseLock();
  } finally {
    child.kill();
    await child.status;
    await child.stdout.cancel().catch(() => {});
  }
});

Deno.test("[bench report] init-payment against a floor with the app's HTTP client is shown beside the judged row, never judged", () => {
  const r = results(2_000, measuredPeer(1_500));
  r.init = { ...r.init, target: 0.9, ratio: 0.92 };
  r.initSameClient = { ...r.initSameClient, target: 0.9, ratio: 0.8, roundRatios: [0.78, 0.82] };
  assert.deepEqual(failures(r), [], "below 0.9, and still not a failure");
  const line = renderText(r).split("\n").find((l) => l.startsWith("POST /api/v1/init-payment, floor with"))!;
  assert.match(line, /0\.80 \(rounds 0\.78-0\.82\)\s+shown, not judged\s+n\/a/);
  assert.match(renderMarkdown(r), /init-payment, floor with the app's HTTP client \(req\/s\)/);
});
