/**
 * Turns the phase results into the stdout table and docs/benchmarks.md. The
 * doc is generated whole on every full run, so its numbers always come from
 * one run of the current code.
 */
import type {
  Delivered,
  DrainResult,
  DrainRuns,
  SlowestPostback,
  SlowShopResult,
  ThroughputResult,
  WebhookResult,
  Who,
} from "./phases.ts";
import { PEER_SETTINGS, type PeerDrain, type PeerSkipped } from "./peer.ts";
import type { Profile } from "./profile.ts";
import { SYNC_WRITES_TIMED, THREAD_KINDS, type ThreadKind } from "./procs.ts";
import { fmtInt, fmtMs, fmtRatio, median } from "./stats.ts";

export const RSS_TARGET_MB = 200;
/** Webhook → postback p99 targets: at the steady rate, and at the peak rate. */
export const WEBHOOK_P99_TARGET_MS = 25;
export const WEBHOOK_PEAK_P99_TARGET_MS = 100;
/** Beside a slow shop, the fast shop's p99 may grow to at most this multiple of its p99 alone. */
export const SLOW_SHOP_P99_FACTOR = 2;
/** The app's drain rate at least this many times the BullMQ + Redis peer's, measured in the same run. */
export const PEER_TARGET = 1.0;

export interface BenchResults {
  profile: Profile;
  command: string;
  startedAt: Date;
  elapsedS: number;
  machine: string;
  /** A synchronous 4 KiB write in the bench's temp dir, median, in µs (syncWriteMicros). */
  syncWriteUs: number;
  pay: ThroughputResult;
  init: ThroughputResult;
  /** init-payment against a floor that calls the sandbox with the app's HTTP client (shown, not judged). */
  initSameClient: ThroughputResult;
  invoice: ThroughputResult;
  refund: ThroughputResult;
  webhook: WebhookResult;
  /** The same at a peak rate. */
  webhookPeak: WebhookResult;
  /** The first rate again, beside a shop that answers after 8 s. */
  besideSlowShop: SlowShopResult;
  /** The app's drains (profile.drainRuns of them, alternating with the peer's): the median run, all runs' rates. */
  drain: DrainRuns<DrainResult>;
  /** The same drains through the BullMQ + Redis peer (or why it has no numbers). */
  peer: DrainRuns<PeerDrain> | PeerSkipped;
  /** Peak RSS of the app process that served init, pay, the webhook and the refund load. */
  loadRssMB: number | null;
  /** Peak RSS of the app process that served the invoice load (the last phase, in its own process). */
  invoiceRssMB: number | null;
  /** Warning and error lines the app processes logged (LOG_LEVEL=warn), as a health check of the run. */
  appLogLines: number;
}

interface Row {
  benchmark: string;
  app: string;
  floor: string;
  ratio: string;
  target: string;
  /** null: not judged (the peer could not run on this machine). */
  pass: boolean | null;
}

function rows(r: BenchResults): Row[] {
  const throughput = (t: ThroughputResult): Row => ({
    benchmark: `${t.endpoint} (req/s)`,
    app: fmtInt(t.rps.app),
    floor: fmtInt(t.rps.floor),
    ratio: `${fmtJudgedRatio(t.ratio, t.target)}${roundRange(t)}`,
    target: `≥ ${t.target.toFixed(1)} × floor`,
    pass: t.ratio >= t.target && t.errors.app === 0,
  });
  const w = r.webhook;
  const d = r.drain;
  const peer = r.peer;
  const peerRatio = peer.kind === "measured" ? d.rate / peer.rate : NaN;
  // Each app drain over the peer's drain right after it.
  const runRatios = peer.kind === "measured" ? d.rates.map((rate, i) => rate / peer.rates[i]).filter(isFinite) : [];
  const rss = (label: string, mb: number | null): Row => ({
    benchmark: `Peak RSS of the app, ${label}`,
    app: mb === null ? "n/a" : `${mb.toFixed(0)} MB`,
    floor: "",
    ratio: "",
    target: `< ${RSS_TARGET_MB} MB`,
    pass: mb !== null && mb < RSS_TARGET_MB,
  });
  /** A webhook → postback row and its arrivals row. */
  const latency = (x: WebhookResult, target: string, met: boolean, label = ""): Row[] => [
    {
      benchmark: `Webhook → postback at ${x.rate}/s for ${x.seconds} s${label}`,
      app: `p50 ${fmtMs(x.p50Ms)} ms, p99 ${fmtMs(x.p99Ms)} ms`,
      floor: "",
      ratio: "",
      target,
      pass: met && x.lost === 0 && x.sendErrors === 0,
    },
    {
      benchmark: "",
      app: `${fmtInt(x.received)}/${fmtInt(x.expected)} arrived, ${x.duplicates} duplicates`,
      floor: "",
      ratio: "",
      target: "",
      pass: x.lost === 0,
    },
  ];
  return [
    throughput(r.pay),
    throughput(r.init),
    { ...throughput(r.initSameClient), target: "shown, not judged", pass: null },
    throughput(r.invoice),
    throughput(r.refund),
    ...latency(w, `p99 < ${WEBHOOK_P99_TARGET_MS} ms, none lost`, w.p99Ms < WEBHOOK_P99_TARGET_MS),
    ...latency(
      r.webhookPeak,
      `p99 < ${WEBHOOK_PEAK_P99_TARGET_MS} ms, none lost`,
      r.webhookPeak.p99Ms < WEBHOOK_PEAK_P99_TARGET_MS,
    ),
    ...latency(
      r.besideSlowShop,
      `p99 ≤ ${SLOW_SHOP_P99_FACTOR} × alone (${fmtMs(SLOW_SHOP_P99_FACTOR * w.p99Ms)} ms)`,
      r.besideSlowShop.p99Ms <= SLOW_SHOP_P99_FACTOR * w.p99Ms,
      `, beside a shop answering after 8 s`,
    ),
    {
      benchmark: `Drain of ${fmtInt(r.profile.drainCount)} queued postbacks`,
      app: `${fmtInt(d.rate)} postbacks/s`,
      floor: peer.kind === "measured"
        ? `${fmtInt(peer.rate)} postbacks/s (BullMQ + Redis peer)`
        : `BullMQ + Redis peer ${peer.kind === "missing" ? "not measured" : "failed"} (${peer.reason})`,
      ratio: `${fmtJudgedRatio(peerRatio, PEER_TARGET)}${ratioRange("runs", runRatios)}`,
      target: `≥ ${PEER_TARGET.toFixed(1)} × peer, none lost`,
      pass: d.lost > 0
        ? false
        : peer.kind === "measured"
        ? peerRatio >= PEER_TARGET
        : peer.kind === "missing"
        ? null
        : false,
    },
    {
      benchmark: "",
      app: arrived(d),
      floor: peer.kind === "measured" ? arrived(peer) : "",
      ratio: "",
      target: "",
      pass: d.lost === 0,
    },
    rss("init + pay + webhook + refund load", r.loadRssMB),
    rss(`${fmtInt(r.profile.drainCount)}-postback drain`, d.peakRssMB),
    rss("invoice load", r.invoiceRssMB),
  ];
}

/** What arrived; for several drains (`rates`), over all of them. */
function arrived(x: Delivered & { rates?: number[] }): string {
  const drains = x.rates && x.rates.length > 1 ? ` in ${x.rates.length} drains` : "";
  return `${fmtInt(x.received)}/${fmtInt(x.expected)} arrived${drains}, ${x.duplicates} duplicates`;
}

/** Target rows that failed (continuation rows repeat their parent's verdict and are not counted). */
export function failures(r: BenchResults): string[] {
  return rows(r).filter((row) => row.benchmark && row.pass === false).map((row) => row.benchmark);
}

/** A ratio as judged against `target`: with a third decimal where two would round it onto the other side (0.896). */
function fmtJudgedRatio(ratio: number, target: number): string {
  const short = fmtRatio(ratio);
  return Number(short) >= target === ratio >= target ? short : ratio.toFixed(3);
}

/**
 * The spread of a throughput row's per-round ratios, beside its median: on a shared machine a row whose rounds
 * straddle its target can pass or fail on the next run with the same code, and the table should show that.
 */
function roundRange(t: ThroughputResult): string {
  return ratioRange("rounds", t.roundRatios);
}

/** The lowest and highest of several paired ratios (rounds, or drains), in brackets; nothing for fewer than two. */
function ratioRange(what: string, ratios: number[]): string {
  if (ratios.length < 2) return "";
  return ` (${what} ${fmtRatio(Math.min(...ratios))}-${fmtRatio(Math.max(...ratios))})`;
}

function verdict(row: Row, pass: string, fail: string): string {
  return row.benchmark ? (row.pass === null ? "n/a" : row.pass ? pass : fail) : "";
}

export function renderText(r: BenchResults): string {
  const header = ["Benchmark", "App", "Floor / peer", "Ratio", "Target", "Result"];
  const body = rows(r).map((row) => [
    row.benchmark,
    row.app,
    row.floor,
    row.ratio,
    row.target,
    verdict(row, "PASS", "FAIL"),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((line) => line[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...body.map(line),
    "",
    ...detailLines(r),
  ].join("\n");
}

/** CPU per request by thread kind (see cpuByThreadMs), the kinds that took any. */
function byThread(ms: Record<ThreadKind, number>): string {
  return THREAD_KINDS.filter((k) => ms[k] > 0).map((k) => `${k} ${ms[k].toFixed(3)}`).join(" + ");
}

/**
 * Share of one core the server's main (JavaScript) thread was busy while it was measured: its CPU per request (over
 * all rounds) times its median requests a second, so an approximation. Below 100 % it waited: on I/O (the floors'
 * store writes one request at a time), or for a core it shares with the load generator and the sandbox.
 */
function mainThreadBusy(x: ThroughputResult, who: Who): string {
  return `${(x.threadCpuMsPerRequest[who].main * x.rps[who] / 10).toFixed(0)} %`;
}

/**
 * The sandbox's CPU per answered request over each target's rounds (µs, lowest-highest), for a row whose requests
 * call it (the provider's or the chain's); a target that made no calls says so, and a row where neither did says
 * nothing.
 */
function sandboxSpread(x: ThroughputResult): string {
  const calls = (ms: number[]) => ms.length > 0 && ms.every(Number.isFinite) && median(ms) >= 0.001;
  const spread = (ms: number[]) => {
    if (!calls(ms)) return "no calls";
    const us = ms.map((v) => v * 1000);
    return `${Math.min(...us).toFixed(0)}-${Math.max(...us).toFixed(0)} µs`;
  };
  const { app, floor } = x.sandboxCpuMsPerRequest;
  if (!calls(app) && !calls(floor)) return "";
  return `; the sandbox's CPU per request over the rounds ${spread(app)} in the app's, ${spread(floor)} in the floor's`;
}

/** Where a phase's slowest postback spent its time: what the shop saw, then the app's times on the way. */
function slowestText(p: SlowestPostback | null): string {
  if (!p) return "none arrived";
  const at = (label: string, ms: number | null) => `${label} ${ms === null ? "n/a" : fmtMs(ms)}`;
  return `${fmtMs(p.latencyMs)} (${at("status changed", p.statusChangedMs)}, ${at("first attempt", p.attemptMs)})`;
}

function detailLines(r: BenchResults): string[] {
  const t = (x: ThroughputResult) =>
    `${x.endpoint}: CPU per request app ${x.cpuMsPerRequest.app.toFixed(3)} ms, floor ${
      x.cpuMsPerRequest.floor.toFixed(3)
    } ms (floor/app ${fmtRatio(x.cpuMsPerRequest.floor / x.cpuMsPerRequest.app)}; by thread app ${
      byThread(x.threadCpuMsPerRequest.app)
    }, floor ${byThread(x.threadCpuMsPerRequest.floor)}; main thread busy app ${mainThreadBusy(x, "app")}, floor ${
      mainThreadBusy(x, "floor")
    }${sandboxSpread(x)}); latency p50/p99 app ${fmtMs(x.p50Ms.app)}/${fmtMs(x.p99Ms.app)} ms, floor ${
      fmtMs(x.p50Ms.floor)
    }/${fmtMs(x.p99Ms.floor)} ms; per-round ratios ${
      x.roundRatios.map(fmtRatio).join(", ")
    }; errors app ${x.errors.app}, floor ${x.errors.floor}${x.firstError ? ` (first: ${x.firstError})` : ""}`;
  const w = r.webhook;
  const d = r.drain;
  const peer = r.peer;
  return [
    t(r.pay),
    t(r.init),
    t(r.initSameClient),
    t(r.invoice),
    t(r.refund),
    `Webhook → postback: max ${fmtMs(w.maxMs)} ms; sandbox refused ${w.sendErrors} settlements; generator lag ≤ ${
      fmtMs(w.generatorLagMs)
    } ms; at ${r.webhookPeak.rate}/s max ${fmtMs(r.webhookPeak.maxMs)} ms, generator lag ≤ ${
      fmtMs(r.webhookPeak.generatorLagMs)
    } ms`,
    `Beside the slow shop: ${r.besideSlowShop.slowRate} postbacks/s made for it, ${r.besideSlowShop.slowReceived} received by it while the fast shop got all of its own`,
    `Slowest postback of each webhook phase, ms after its settlement (the app's times from its record of the payment): at ${w.rate}/s ${
      slowestText(w.slowest)
    }; at ${r.webhookPeak.rate}/s ${slowestText(r.webhookPeak.slowest)}; beside the slow shop ${
      slowestText(r.besideSlowShop.slowest)
    }`,
    `Drain${runRates(d.rates)}: seeded in ${fmtMs(d.seedMs / 1000)} s; app up in ${
      fmtMs(d.startupMs / 1000)
    } s; first → last postback ${fmtMs(d.drainMs / 1000)} s; app start → last postback ${fmtMs(d.totalMs / 1000)} s`,
    peer.kind === "measured"
      ? `Peer drain (${peerVersionsText(r)})${runRates(peer.rates)}: enqueued in ${
        fmtMs(peer.enqueueMs / 1000)
      } s; worker up in ${fmtMs(peer.startupMs / 1000)} s; first → last postback ${
        fmtMs(peer.drainMs / 1000)
      } s; worker start → last postback ${fmtMs(peer.totalMs / 1000)} s; CPU per postback worker ${
        peer.cpuMsPerPostback.worker.toFixed(3)
      } ms, Redis ${peer.cpuMsPerPostback.redis.toFixed(3)} ms; peak RSS worker ${fmtMb(peer.workerRssMB)}, Redis ${
        fmtMb(peer.redisRssMB)
      }; worker log lines ${peer.workerLogLines}`
      : `Peer drain: ${peer.kind === "missing" ? "not measured" : "failed"} (${peer.reason})`,
    `App warning/error log lines during the run: ${r.appLogLines}`,
    noiseLine(r),
  ];
}

/** Every drain's rate, when there were several (the details that follow are the median run's). */
function runRates(rates: number[]): string {
  return rates.length > 1 ? `, drains ${rates.map(fmtInt).join(", ")} postbacks/s, the median one` : "";
}

/** Programs outside the bench share the 2 cores; above this share their noise is worth a warning. */
const NOISE_WARN = 0.1;

export function noiseLine(r: BenchResults): string {
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  const rounds = (name: string, xs: number[]) =>
    xs.length ? `${name} ${pct(median(xs))} (worst round ${pct(Math.max(...xs))})` : `${name} n/a`;
  const single = (name: string, x: number | null) => `${name} ${x === null ? "n/a" : pct(x)}`;
  const peer = r.peer.kind === "measured" ? r.peer.foreign : null;
  const all = [
    ...r.pay.foreign,
    ...r.init.foreign,
    ...r.invoice.foreign,
    ...r.refund.foreign,
    r.webhook.foreign ?? 0,
    r.drain.foreign ?? 0,
    peer ?? 0,
  ];
  const quiet = median(all) <= NOISE_WARN;
  return `Other programs' share of the machine while measuring (median): ${
    [
      rounds("pay", r.pay.foreign),
      rounds("init", r.init.foreign),
      rounds("invoice", r.invoice.foreign),
      rounds("refund", r.refund.foreign),
      single("webhook", r.webhook.foreign),
      single("drain", r.drain.foreign),
      single("peer drain", peer),
    ].join(", ")
  }${quiet ? "" : " — the machine was busy: absolute numbers are low and ratios noisier than usual"}`;
}

export function renderMarkdown(r: BenchResults): string {
  const p = r.profile;
  const table = rows(r).map((row) =>
    `| ${row.benchmark} | ${row.app} | ${row.floor} | ${row.ratio} | ${row.target} | ${
      verdict(row, "pass", "**FAIL**")
    } |`
  );
  return `# Benchmarks

Generated by \`deno task bench\` (\`bench/run.ts\`); rerun it to refresh this page. \`deno task bench --quick\` is a
short smoke run of the same code paths and leaves this page alone.

- Command: \`${r.command}\`
- Date: ${r.startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC (run took ${Math.round(r.elapsedS)} s)
- Machine: ${r.machine}; a synchronous 4 KiB write in the bench's temp dir takes ${
    Math.round(r.syncWriteUs)
  } µs (median of ${SYNC_WRITES_TIMED})
- Profile: ${p.rounds} measured rounds of ${p.roundMs / 1000} s per target after a ${
    p.warmupMs / 1000
  } s warm-up (pay: one visit to every id, then ${
    p.payWarmupMs / 1000
  } s), ${p.concurrency} keep-alive connections, app and floor alternating (ABBA), medians shown.

## Results

| Benchmark | App | Floor / peer | Ratio | Target | Result |
| --- | --- | --- | --- | --- | --- |
${table.join("\n")}

Details:

${detailLines(r).map((l) => `- ${l}`).join("\n")}

## Reading the numbers

- A ratio is the app's median requests per second over the floor's; in brackets, the lowest and highest of its rounds
  (each round's app rate over the floor's round beside it). A range that straddles the target means the same code can
  pass or fail on another run. The drain's ratio is the app's median postbacks per second over the BullMQ + Redis
  peer's, from ${r.profile.drainRuns} drains each, alternating (app, peer, app, ...); in brackets, each app drain over the
  peer's drain right after it.
- Every process here, the load generator and the sandbox included, shares the machine's cores, so absolute requests per
  second hold for this machine only. Nor do the write rows' ratios carry over to a machine whose disk is faster or
  slower against its CPU: the floors of init-payment, invoices and refunds wait for a synchronous write per request (its
  time is on the Machine line), whereas the app's group commits share one and the app waits mostly on its own work, so
  the faster that write, the faster those floors run beside the app, and the lower the app's ratios.
- Before each measurement the bench waits up to 5 s (60 s in all) for other programs to go quiet, and it reports the
  share of the machine they still took while it measured ("other programs' share", from \`/proc/stat\` minus the bench's
  own processes). A large share means a disturbed run: rerun it on an idle machine.
- "CPU per request" in the details is the server process's own CPU time (all threads) per answered request. It barely
  moves when other programs compete for the cores, so on a busy machine the floor/app CPU ratio is the steadier guide.
- Peak RSS (\`VmHWM\`) also counts the resident pages of the Deno executable itself, about 45 MB of it.

## What runs

Every piece is its own process on 127.0.0.1, so nothing shares an event loop with what it measures:

- **App**: \`main.ts\` exactly as deployed, with \`BANSKY_API_URL\` pointing at the standalone sandbox, a KV file in a
  temp dir, \`LOG_LEVEL=warn\`, \`POSTBACK_SCHEDULE=0,1,1,1,1,1\`, the per-shop rate limit raised out of the way and
  \`PAYMENT_CHECK_SCHEDULE=3600,21600\` (the thousands of payments the init rounds leave pending are first re-checked
  at the provider after the run, not under a later phase). Its
  one shop is created with \`cli/shop.ts create\`, as an operator would.
- **Sandbox**: \`sandbox/\` (the Bansky imitation) at zero latency and no faults, shared by the app and the floor.
- **Floor**: \`bench/floor.ts\`, a server written only to be the lower bound (see below).
- **Shop**: \`bench/shop.ts\`, a postback receiver that answers 200 at once and records arrival times; a second one
  (the slow shop) answers each postback after 8 s.
- **Peer**: a BullMQ worker on Node with Redis, the drain's comparison (see "The peer" below).
- **Load generator**: \`bench/load.ts\`, started fresh for every round. It speaks HTTP/1.1 over raw keep-alive
  connections (\`bench/http1.ts\`) because \`fetch\` costs a client about as much CPU as these small servers spend per
  request, and on 2 cores that would cap the app and the floor at the same speed.

## The floors

A floor is the least work the endpoint could possibly do on this machine with this Deno; the app is shown as a ratio
to it, which cancels out the machine and the load generator.

- **\`GET /integration/pay\`**: bare \`Deno.serve\`, one \`kv.get\` of the payment record, a 302 to the stored provider
  URL. No router, middleware, security headers or logging. The app adds Hono routing, request ids, security headers and
  the status check. Each cycles through the same number (up to ${
    fmtInt(p.payIds)
  }) of payments it created itself in the init-payment rounds. The app records a buyer's first visit with one commit; the warm-up visits every id once, so the measured rounds are repeat visits,
  which is what the floor's single read stands for.
- **\`POST /api/v1/init-payment\`**: bare \`Deno.serve\`, read the JSON body, one \`fetch\` to the same sandbox, one
  atomic commit of the record, under an id made as the app makes its own (\`sequentialId\`: time first, so new records
  share pages of the store; a random id would cost the floor about a quarter of its speed, see "Names instead of
  derived ids" below). The provider request is the one the app sends (our id's shape, our wrapper URLs and
  webhook URL), because its size matters here: Deno 2.9.5's \`Deno.serve\`, which the sandbox runs on, answers
  \`Connection: close\` to requests over about 512 bytes (denoland/deno#36657, fixed in 2.9.6, which \`package.json\`
  now pins), so on 2.9.5 both open a connection per provider call. The app adds Hono middleware, API-key authentication, validation, idempotency on the
  shop's transaction id, the provider adapter, and the indexes, activity entry and counters it writes with the payment.
  The app's provider call goes through its own HTTP/1.1 client, about 28 µs of CPU cheaper than the floor's \`fetch\`
  (see "Provider calls without fetch" below): part of the ratio is that difference, not less work of the app's own.
  The row after it holds the same app rounds against a second floor process calling with the app's client
  (\`FLOOR_PROVIDER_CLIENT=http1\`), which takes its turn in every round beside the other two (rounds in the order app,
  floor, second floor, then the reverse), so its store grows as theirs do; that ratio is shown, not judged.
  Requests carry a fresh shop transaction id each.
- **\`POST /api/v1/invoices\`**: bare \`Deno.serve\`, read the JSON body, one atomic commit of the invoice. The app adds
  Hono middleware, API-key authentication, validation (the coin and network, the decimal amount parsed to base units),
  idempotency on the shop's invoice id (the commit's uniqueness check; a retry then reads the stored invoice), a
  deposit address (a free one of the shop's pool, listed in batches per process, or else a new one from the chain
  simulator, served by the sandbox process, which each process asks for 20 at a time over HTTP ahead of need and keeps
  in memory) and the invoice with its address, indexes, activity entry, counters and polling job in one commit, shared
  with concurrent invoices. Every invoice of the phase stays open, so each takes a new address, stored with it. Requests
  carry a fresh shop invoice id each.
- **\`POST /api/v1/payments/{id}/refunds\`**: the same shape as init-payment's floor: bare \`Deno.serve\`, read the JSON
  body, one \`fetch\` to the sandbox's refund endpoint, one atomic commit of the refund, under a time-ordered id as the
  app's unnamed refunds have (until 2026-11-30 the floor's was random). It takes the provider reference
  from memory (kept when it created the payment), so it does not even read the payment. Each refund is of 1 minor unit,
  cycling through payments: the app's are paid payments made for this phase without a shop id, so no postbacks ride
  along (their delivery is what the webhook → postback and drain rows measure; with them, each refund would also pay
  for a postback's delivery while the round runs), the floor's the same number of its own. The app adds
  authentication, validation, reading the payment and its refund reservation in one read, reserving the amount
  (refund record, reservation, job and activity entry in one commit, shared with concurrent refunds) before the
  provider call, then the payment's move to \`partially_refunded\` with the refund's own state, its counters and the
  provider call's operation-log entry in a second shared commit. The refund's timeline entries are made from its
  record when shown, so the payment's event list stores no copy of them. Without a shop id the app's payments have ids
  it made (\`sequentialId\`, time first), and they were made within seconds of each other, so their records sit on
  few pages of the store: refunds of payments made far apart would write more pages. As at init-payment, the app's
  provider call goes through its own HTTP/1.1 client and the floor's through \`fetch\`: part of this ratio is that
  difference too, and no row shows it without it.

## The delivery measurements

- **Webhook → postback**: the generator settles payments created by the init rounds at the sandbox at a steady rate
  (open loop). Each settlement makes the sandbox sign and send its webhook at once; the app verifies it, confirms the
  status with the sandbox, commits the change with its postback job, and delivers the signed postback to the shop.
  Latency is settlement → arrival at the shop (clocks of one machine, sub-millisecond). Every postback must arrive;
  arrivals beyond the first for a payment count as duplicates. Each run starts with ${
    p.warmupMs / 1000
  } s at its rate that is not measured, as the throughput rows do: the first webhooks of a run pay for code that never ran
  before in the sandbox, the app and the shop (about 60 ms for the very first). It runs at ${p.webhookRate}/s for ${p.webhookSeconds} s,
  then at ${p.webhookPeakRate}/s on payments of its own, then at ${p.webhookRate}/s again while ${p.slowShopRate}
  payments a second settle whose postbacks go to the slow shop: the bench shop's p99 then may be at most twice its p99
  alone (one slow shop must only slow itself). The slow shop's backlog is let go before the next phase.
- **Drain**: the app is stopped, ${
    fmtInt(p.drainCount)
  } due postbacks are written into its KV by the app's own data layer (record and due index, as a
  webhook writes them; \`bench/seed_postbacks.ts\`), and the app is started again. Its start-up sweep drains them to
  the shop, as after a real outage; the rate is counted from the first to the last arrival, and every one
  must arrive. Right after, the app stopped, the peer drains the same number to the same shop (Redis started afresh).
  This runs ${p.drainRuns} times; the target is the app's median rate at ≥ ${PEER_TARGET.toFixed(1)} × the peer's.
- **Peak RSS**: \`VmHWM\` from \`/proc/<pid>/status\` of the app process (the kernel's high-water mark), once for the
  process that served the init, pay, webhook and refund load, once for the fresh processes that drained the backlog
  (the highest of them), and once for the process that served the invoice load (the last phase).

${peerMarkdown(r)}

${WHAT_MOVED}`;
}

/**
 * What changed the relay's and the refund's numbers, measured side by side with the code before each change
 * (the drain alone: \`drainBacklog\` on its own, on an idle machine). Kept by hand: the
 * numbers are from when each change was made, the tables above are from this run.
 */
export const WHAT_MOVED = `## What moved the numbers (2026-11-28)

Two findings about Deno KV on SQLite carried most of the first part of the day: a connection runs its reads and its
commits one after another on one database thread, so under load every read waited behind the commits in flight (about
6 ms per read at 800 refunds a second); and a commit costs about one page write per random key (its record on a page of
its own), where keys written in time order share pages. The last part was about memory and the webhook row's tail.

- **Reads beside the commits** (\`lib/db/kv.ts\`): a KV file is opened twice and every read goes through the second
  connection, which still sees every commit that finished before the read (SQLite's WAL). Refunds 0.41 → 0.45 ×,
  init-payment 0.69 → 0.77 × in single-phase runs; webhook → postback at 500/s from a p50 of 2.7 s to about 60 ms.
- **Ids that start with their millisecond** (\`sequentialId\`): new payments, refunds, invoices and postbacks that
  we name ourselves are written to the same few pages instead of a page each. Refunds 0.45 → 0.7-0.77 ×; the drain went
  from about the peer's rate to 1.3-1.5 × it.
- **Invoices**: no read before the commit (its uniqueness check finds a retry), new addresses from the chain service
  asked for ahead of need, kept in memory and stored by the invoice that takes them (no commit of free markers, no
  waiting for a refill), and the timeline's \`created\` entry made from the record: 0.30-0.45 × → 0.7-0.85 ×.
- **Webhook → postback**: one read for "seen before?" and the payment (the move reuses it), the status call's log
  entry in the move's commit, and the postback born leased to the process that commits it, which sends it without a
  read or a claim commit: two commits per postback instead of four. p99 at 100/s 36-43 → 22-35 ms; at 500/s the p50
  went from 2.7 s to 18-50 ms.
- **The shop's answer read into 1 KiB** (\`readStart\`, a BYOB reader): a fetch body's default reader hands out each
  chunk in a fresh 64 KiB buffer, two per postback with the read of the end. At 100 postbacks a second the app's
  external memory grew by about 6 MB a second until a full collection; the 100/s phase alone peaked at 181 MB, now
  143 MB.
- **V8's old generation grows to 2 × what survived** (\`--heap-growing-percent=100\` in \`deno task start\`): left
  to itself V8 allowed 4 × when collections looked cheap, about 60 MB of garbage beside a live heap of about 20 MB. The
  load phase's peak RSS went from 204-218 MB to 157-170 MB at the same throughput.
- **The webhook rows warm up first** (the bench): one unmeasured second at the row's rate, as the throughput rows do.
  Timing each stage showed the first webhook of a run taking about 60 ms before it reached the app's handler and 25 ms
  in it (code that never ran in the sandbox, the app or the shop), and the first ten alone set the 100/s row's p99.
  With both this and the memory change, the 100/s p99 measured 13.6-16.4 ms and the 500/s p99 53-67 ms in
  five full runs.
- **The whole app on Hono's RegExpRouter**: two routes (\`/docs/:slug\` beside \`/docs/api-reference\`, and
  \`/:file{checkout…js}\` at the root) had put every request on the TrieRouter, about 5 % of the main thread on the
  webhook path; they are static paths now, and a test keeps it so.
- **Earlier the same day**: the relay pool (128 in flight, 32 per destination, no sweep batches), grouped claims and
  outcomes, refunds with one read per try and the provider call's log entry in the settlement commit, and the bench's
  invoice phase moved last.
- **No index of the providers' references** (evening): its key was a random one (the provider's reference), and a
  random key costs a commit a page of its own twice (the row, and its place in SQLite's expiry index), about 14 KB
  written per payment. Side by side with the code before, init-payment ran 15-19 % faster; in a full run it went from
  0.75 to 0.83 × its floor. Webhooks name our payment id (Bansky's spec uses it to identify a postback; Stripe echoes
  \`client_reference_id\`), so nothing needs the index; news without our id is acknowledged and changes nothing.
- **init-payment's replay check rides with the API key's read** (evening): one trip to the store instead of two one
  after the other; about 5 % less CPU per request side by side, throughput within the noise.
- **Log entries share keys per group commit** (2026-11-28, second session): the activity entries of a group commit
  go to the store as one key, and its operation log entries as one key per listing (all, per shop, per account),
  instead of one or more keys per payment. With the store's per-key cost (a row and an expiry-index entry, whatever
  the size) the database thread is what init-payment waits on: trimming a new payment's write set to its own key
  alone made the app 37 % faster side by side, and sharing these log keys took 13 % (activity) and 7 % (operation
  log) of that, measured against the code before each. What is left per payment: its own key, three listing indexes
  and its status check's due time.
- **init-payment before that**: per-request latency inside the app under the bench's load (32
  connections): about 1.5 ms reading the key, 1.8 ms the replay check (before they shared a read), 3 ms the provider
  call and 12.5 ms waiting for the group commit (about 15 payments a commit, 6.7 ms each). Measured and set aside:
  the activity entry's copy of the payment and V8's GC flags (no difference side by side), a read group that waits a
  tick for company (5 % less CPU, no more throughput), one GC thread (5 % less CPU, the same throughput). The floor
  writes one key per commit and reads none, so its rate follows the disk's fsync: its rounds here ranged from 1,290 to
  1,950 a second within one run, and so did the ratio (0.67-0.99 per round).
- **Less work per API call on the main thread** (2026-11-28, third session): the body limit keeps the bytes it read
  beside the request instead of building a new \`Request\` around them (about 15 µs a call), and HMAC-SHA-256 is two
  SHA-256 hashes with each key's padded blocks worked out once (node:crypto's \`createHmac\` cost 17 µs a call in
  Deno, now about 7; every init-payment, webhook and postback makes one). Side by side about 5 % less CPU per
  init-payment. The API's own headers (no-store, nosniff) are set before the handler runs: set on a finished answer,
  Hono copies the whole response to add them. Buyers' first visits through the pay wrapper share commits, like the
  other hot writes: the store's thread spent 1.2-1.5 ms per paid payment (the visit, the move with its postback, the
  postback's outcome), 0.95-1.15 ms after. The webhook rows do not see it: their buyers visit before the clock starts.
- **Why init-payment stays under 0.9 × its floor on an idle machine**: the app is bound by CPU time, not by waits
  on the store. Per request it spends about 0.5 ms on its main thread (busy about 80 % of the time under the bench's
  load), 0.28 ms on KV's SQLite thread and 0.1 ms in V8's GC threads; the floor 0.3, 0.2 and 0.03 ms, on two cores
  shared with the sandbox and the load generator. Measured per key in a standalone KV file: each mutation costs the
  main thread 7-11 µs (handing it to the store) and SQLite 20 µs (a time-ordered key) to 110 µs (a random key holding
  a record); a commit 30 µs and 110 µs besides. The app allocates about 86 KB per request (fetch, Hono, validation,
  KV calls, each a few KB), a young collection every 80 or so requests. On a busy machine (other programs taking a
  quarter of the CPU) the floor lost more than the app and the ratio reached 0.91 in two runs; on an idle one it is
  0.75-0.8.
- **The same code, run after run** (a fourth session, with no code change): ten single-phase init-payment runs of one
  commit on an idle machine gave 0.70 to 0.99 × the floor. The app's CPU per request ranged from 0.61 to 0.86 ms,
  the floor's from 0.45 to 0.54: slow stretches lasted minutes and cost the app more than the floor. Inside the
  machine nothing else ran; a 16 MB random walk through memory took 13 to 62 ms from one few-second probe to the
  next while a loop of arithmetic stayed within 10 %, so the host's caches and memory are shared with load we cannot
  see, and the app, with the larger working set, pays more for it.
- **Where the rest of init-payment's cost sits** (side by side, measured before deciding what to change): a build
  that writes only the payment and its email-index key (no per-shop and time listings, no status-check due key, no
  activity or operation-log entries, no counters) used 20 % less CPU per request; taking any one of those away alone
  moved nothing beyond the 5 % two identical builds differ by. In KV's SQLite a random key holding a payment-sized record costs its thread about 100 µs
  and a time-ordered one 12 µs, and denokv also indexes every key by expiry, keys without one in key order, so a
  random key costs a second random page. A payment's own key and its email-index key are the random ones.
- **Where a request's time goes under the bench's load** (2026-11-29): 17-21 ms at 32 connections, of which about 3 ms
  waiting for the key's read, 3.5 ms the provider call and 10 ms waiting for the group commit (about 15 payments a
  commit, 5.8 ms each, 3.5 ms of it work on the store's thread). Unlike the reading above, the machine stayed 15-25 %
  idle (vmstat) in both targets' rounds: each waits on its store thread's turn, the app longer because its commits
  carry more keys. Per request the app's threads spent 0.39-0.60 ms (main), 0.28-0.35 (SQLite) and 0.08 (GC); the
  floor's 0.30-0.35, 0.21-0.24 and 0.02-0.03. Side by side, and set aside: no reads at all (the API key and shop kept
  in memory, no replay check: both are promises the docs make) 8 % less CPU and about 6 % more throughput; no replay
  check alone 4.5 % less CPU, the same throughput; two group commits at the store at once, or groups of at most 8,
  wrote more and gained nothing; one GC thread moved the GC's CPU to the main thread. In a standalone KV file with the
  shape of a 15-payment commit, the payment's own random key cost the store's thread 95-135 µs of the 175-230 µs a
  payment costs with all its keys. A prototype of a new payment's layout (its shop and time listings gathered into one
  key per group commit, one copy of the operation log with pointers for the per-shop and per-account listings, and no
  due key for its first status check) ran about 10 % faster side by side in two runs (0.90 and 0.91 × the prototype);
  the due key alone was 3-5 % of it. It was not kept: the listings' readers and cursors, and the job-record rule,
  would have to change with it.
- **A group's listings in shared keys** (2026-11-29, second session): per listing (all, per shop, per buyer) one key of
  the group's payments, named by the newest, instead of three keys per payment (\`iteratePaymentIds\` merges them
  back in order). Side by side 3-4 % faster in three runs; with no listing keys at all it would have been about 9 %, and
  with no status-check due key as well about 13 %. What the store does per payment, counted with strace under the
  bench's load: 23 page writes and 18 page reads (WAL, checkpoint and cold B-tree pages) and a shared fsync, against
  the floor's 13 writes, 5 reads and an fsync of its own. In a standalone file a commit of n payments of the app's shape
  took about 0.7 ms + 0.33 ms × n, 0.2 ms of each payment being its own random key (the derived id of a shop's order
  id), which the floor's record has too. Measured and set aside: 2-4 key reads in flight at once (the 3-4 ms before the
  provider call is not the read queue), young generations of 16 and 32 MB (nothing, again).
- **The shop's short answer in one read** (the relay, same session): an answer whose Content-Length is within 1 KiB
  (and no Transfer-Encoding or Content-Encoding) is read with \`Response.bytes()\`; 14 µs less CPU per postback in a
  side-by-side loop, within the drain's noise.
- **No read before a new payment, measured and not kept** (2026-11-29, third session): with the commit's check on the
  payment's key as the only uniqueness check, init-payment read nothing before the provider call. Side by side, two
  runs: 1.08 and 1.05 × the code with the read, 9-18 % less CPU per request; one full run gave 1.07 × the floor and
  the next 0.79. It was reverted: a retry of a stored payment then called the provider again and waited for it (2 s
  against 4 ms with the provider slow), and after a routing change, or Stripe's 24-hour idempotency window, that call
  made a second payment at the provider. Per request under load the app's threads spent about 0.28-0.32 ms (main),
  0.16 (SQLite writer), 0.04 (reader) and 0.03-0.1 (GC) without the read, against the floor's 0.25, 0.19 and 0.01.
  The app's CPU per init request moved between full runs by 30 % (0.58 and 0.76 ms) while the pay redirect's stayed at
  0.065 ms. Set aside: a due key shared by a group's first status checks (about 4 % by the earlier prototype), because
  it only moves work: the sweep would then read every settled payment whose check it can no longer delete.
- **The drain judged by medians** (same session): three drains of the app and of the peer, alternating, instead of one
  each; single drains had swung by a quarter between runs (0.98-1.34 × the peer, two misses in 14 runs).
- **Tried and dropped**: V8 young-generation sizes of 1, 2, 16 and 32 MB and a slower-growing old generation
  (1 MB cost 10 %, the rest nothing); storing a group's log records as one JSON text (a 15 KB string costs the KV
  serializer 9 µs, the same records as objects 13, with a parse on every read).
- **Measured and set aside** (2026-11-29, fourth session): a far-future expiry on a payment's key, so that its place
  in denokv's expiry index follows time instead of the random id (in a standalone file of the app's commit shape 15 %
  less CPU per payment; side by side 1.04 × with two identical builds at 1.11 ×: within the noise; a payment record
  with a time to live is the wrong thing to store for money); one GC thread again (1.01 and 0.98 ×, 3-6 % less CPU);
  allocation sampling through the inspector, collected objects included (flat: no function over 3 %); 100 addresses
  per call to the address service instead of 20 (0.98 ×); the operation log's listings by shop and by account as
  pointers to the log's own keys instead of copies (a fifth less written per payment; 1.05 and 0.99 × side by side,
  and a shop's listing would read every other shop's entries in the keys it points at).
- **Why the invoice row swings** (same session): over 30 full runs the app's invoices ran at 1,010-1,730 a second and
  the floor's at 1,250-3,350, so the ratio followed the floor (0.48 when it ran at 3,350, 0.97 at 1,520). The floor
  commits one key per request and its rate follows the disk's fsync; the app's rate is set by its group commits'
  time at the store. A new address costs an invoice's commit three random keys (the invoice, the address's owner and
  the pool's record of it), and a reused one three as well (the invoice, the free marker, the record). In a standalone
  file, commits of 25 invoices with the owner and the record merged into one key took 18 % less time (280 against
  340 µs an invoice, three runs each). Merging them, with the pool listed per shop in time order and free markers
  keyed by when the address was freed (taken first in, first out), would leave two random keys on both paths; it
  changes the pool's layout and every reader of it, so it is left for a change of its own.
- **The write rows' floors follow the disk** (2026-11-29, fifth session, on a new machine whose synchronous 4 KiB write
  took 135-175 µs). On that machine, with the same code and in the same hour, init-payment side by side (6 rounds each)
  ran 0.72 × its floor with both stores on the disk (app 3,445 a second, floor 4,814) and 0.52 × with both on tmpfs,
  where a synchronous write takes about 3 µs (app 4,429, floor 8,572): taking the disk away made the floor 78 % faster
  and the app 29 %. A floor's store thread waits for a synchronous write per request, whereas the app's group commits
  (about 9 payments a commit there, each commit 2.3 ms) share one, and what the app waits on is mostly its own work
  (0.29-0.33 ms of CPU a request against the floor's 0.12-0.19, its main thread about 60 % busy). The machine stayed
  25-30 % idle in the app's rounds and in the floor's. Against the earlier machine (its write time not measured, its
  CPU slower too) the floors ran 2.3-4.5 × as fast (4,687 init-payments, 6,301 invoices and 5,611 refunds a second)
  and the app 1.9-2.5 × (3,283, 3,331 and 3,103), and the full run's ratios fell to 0.70, 0.53 and 0.55. The bench
  now prints the synchronous write's time on the Machine line.
- **init-payment against the time of a synchronous write** (same machine and hour, side by side, 6 rounds each; the
  write slowed with a preloaded shim that sleeps in \`fsync\` and \`fdatasync\` before calling them, in the app's and
  the floor's processes, its time taken with the bench's probe): about 3 µs (tmpfs) 0.52 ×; about 150 µs (the disk)
  0.72-0.73; 237 µs 0.93; 300 µs 0.97; 310 µs 1.25; 356 µs 1.31; 418 µs 1.48; 566 µs 1.92. The app made 3,200-3,450
  payments a second on every disk setting (4,429 on tmpfs), while its floor fell from 4,600-4,800 to 1,669: group
  commit takes the disk out of the app's rate, and the 0.9 line falls near a 230 µs synchronous write.
- **What the features cost on that machine** (temporary builds taking them away one after another, each measured side
  by side in one run of 6 rounds, outside the full bench): init-payment went from 0.70 to 1.03 × its floor (CPU 0.333
  → 0.190 ms a request) without the operation log's entries, the activity entries, the counters, the first check's due
  key, the listings and both reads (the API key and the replay check); invoices from 0.55 to 0.81 (0.310 → 0.198 ms)
  without the activity entries, counters, due key, listings, the address's owner key and the API key's read; refunds
  from 0.67 to 1.00 (0.387 → 0.281 ms) without the operation log, activity, counters, due key, listing and the API
  key's read. Single steps are mostly within the noise: the build without the operation log, activity entries and
  counters read 0.84-0.87 in three runs, and the unchanged refund build 0.60-0.67. On invoices the owner key and the
  API key's read each took about 0.03 ms a request; on refunds the API key's read alone moved nothing (0.618 and 0.603
  without it, 0.618 and 0.599 with it).
- **A parked postback is not read again** (2026-11-29, sixth session). In a drain every postback has the same shop, so
  all but its 32 attempts wait in the pool's parking, and each was read when offered and again when its turn came;
  those past the parking's 4,000 are let go and read again by the sweep the pool then asks for. Counted in one drain:
  about 27,000 reads of delivery records for 10,000 postbacks. A parked postback now keeps what was read: its claim is
  checked against that version, and only one written meanwhile (the claim fails) is read again. Side by side in one
  stack, the app's drains alternating between the two builds (ABBA, four each): medians 5,277 against 4,625 a second,
  1.14 ×, every drain of the new build faster than both of the old one's beside it. The drain's main thread before it
  (a CPU profile through the inspector, its own network events left out): about 12 % in KV reads, 13 % in group
  commits, 16 % in the POST, 13 % in collections of garbage, 4 % signing. The reads of postbacks let go remain: counted
  again with 64 attempts per destination (below), 13,622 reads for 10,000 postbacks. Two processes on one store sweep
  the same index and park the same postbacks, so one's kept entry is often stale by its turn (the other claimed it),
  and its claim fails where the read used to find it leased; measured with two app processes draining one backlog
  side by side (ABBA, four drains each, both builds at 64 per destination): 4,380 against 4,052 a second, 1.08 ×, none
  lost, no duplicates.
- **Tried and reverted: a share that adapts to the shop** (same session). Halving a destination's share after each
  attempt that timed out, could not connect or answered 429/502/503/504 (down to 2), and adding one per delivered
  postback, kept five hanging shops from filling the pool (at a fixed 64 of 320 they do). But a sweep, the cron run
  included, waits for every postback it offered, parked ones too: a sweep over 200 postbacks to a hanging shop took
  20.9 s instead of 1.2 s (300 ms timeout), about 2 h instead of 4 min for 1,000 at 15 s, and the shared parking filled
  at 8 attempts a minute. Shares per origin also let a shop whose postback URL names another shop's origin shrink that
  shop's share. A share that adapts needs a sweep that does not wait for parked postbacks, parking per destination,
  and shares per shop as well as per origin.
- **64 attempts at one destination instead of 32** (same session), and 256 in all so that four hanging shops still
  cannot fill the pool: 64 is the BullMQ peer's concurrency. An earlier session found 64 no faster; with a parked
  postback read once, side by side in one stack (ABBA, four drains each) it drained 1.29 × as fast (medians 6,230 and
  4,838 a second; a second pairing, 64 of 128 in all, 1.42 ×), peak RSS 154-160 MB against 154-157. The full run
  after it: 1.72 × the peer (runs 1.63-1.86), against 1.38 (1.33-1.55) with 32.
- **init-payment's stages under the bench's load** (same session, same machine, the sync write 140-190 µs; timed
  inside the handler, 2-second windows at full load): the API key's and the replay check's read 1.3-1.8 ms, the
  provider call 2.1-2.3, the group commit 4.2-5.6 (groups of 8.5-9.6 payments, 2.1-2.9 ms each, the commit queue busy
  82-85 % of the time), 8.1-10 ms in all. A read group took 0.45-0.7 ms there against 0.12 ms for the same 5 keys in
  a standalone file: under load the reads wait for the cores, not for the store. In a standalone file on the same disk
  a group of n new payments of the app's shape, committed through \`createPayment\`, took 0.54 ms for 1, 1.93 for 9,
  2.62 for 16 and 4.46 for 32 (about 0.9 ms a commit and 0.11 a payment), and the floor's commit of one key 0.17-0.25
  ms. So the app's commit queue could take about 4,700 payments a second in groups of 9 and more in larger ones; what
  keeps it to 3,200-3,450 is the time each request spends elsewhere on two cores shared with the sandbox and the load
  generator, 0.12-0.14 ms more CPU a request than the floor's (0.07-0.08 of it on the main thread, 0.02-0.03 in the
  garbage collector). The main thread's profile is flat (the provider's POST 18 %, group commits 18 %, collections 10 %, the
  API key's and replay check's read 7 %, Hono 4 %, zod 3 %, the derived id's HMAC 3 %, sizing the activity chunks
  with JSON 2-4 %). Moving the indexes, counters and log entries out of the payment's commit (an outbox) would break
  the rule that they commit with it (DESIGN.md, "Data").
- **Hanging shops no longer hold up the others** (2026-11-29, next session; not a change of speed: the drain ran
  1.70 × the peer with them, within the earlier runs' range). An attempt still running after a second stops counting
  against the pool's 320 (up to 512 such; a POST held by a shop costs about 62 KB, measured with 1,024 held by a local
  server), so five hanging shops no longer fill the pool; parking is per destination (4,000, and 12,000 in all), so
  one hanging shop's backlog no longer crowds other shops' out of it; a destination is a shop's origin, not the
  origin alone; the cron's run waits for the work under way at most 50 s (\`Deno.cron\` skips runs while one goes,
  and one hanging shop's 1,000 due postbacks held it about 4 minutes); and only a sweep that must wait for each job
  attaches a reaction to every job it finds (each kept 440 KB per 4,000 pending postbacks until they ended: with a
  sweep every second, that much more every second).
- **Each fact of a new payment stored once** (2026-11-29, seventh session): a new payment's activity entry holds the
  created event but no longer a copy of the payment (the export reads the payment back, as it already did for every
  payment touched by more than its creation), and the operation log's shop and account listings hold pointers to the
  log's keys (a group's key, whose other shops' entries their reader skips) instead of two more copies of each entry.
  Side by side with the build before (a second app in place of the floor, ABBA, 10 rounds): 1.05 × (rounds
  1.02-1.12); taken away one at a time in earlier pairings, the copy of the payment read 1.06 × and the two copies of
  the log entries 1.07 ×. The full run after it: init-payment 0.79 × its floor (0.74 before), refunds 0.62 (0.56).
  With the export running behind the load (its own bench), the app's CPU per init-payment came to 0.394 ms against
  0.413 in the run before.
- **Tried and dropped** (same session, side by side as above, 10 rounds each): building the next group's operation
  while the last one is at the store (0.99 ×: under the bench's load the commit queue stands idle about 40 % of the
  time, no group waits for the one at the store, and building earlier moves nothing); one first-check job per group
  commit instead of a due key per payment, handing each payment its own job when the group's is due (0.99 and
  1.00 × in two pairings; the due keys of a group all land in one place of the index); no counters at all (1.01 ×).
  Taking the listings away altogether read 1.07 × (rounds 1.00-1.12).
- **The bench has one buyer** (same session): every init-payment the load sends is for buyer@example.com, so a group
  commit writes one key of the buyer listing. With a new buyer per request (bench/load.ts changed for one run of 6
  rounds against the floor), init-payment ran 0.63 × its floor (rounds 0.60-0.66; CPU per request 0.40 ms against
  0.33 with one buyer): each payment then also writes a key at a random place (its buyer's hash), which costs the
  store about what the payment's own key costs.
- **Where init-payment's time goes, against its floor** (2026-11-29, eighth session; timestamps taken inside a
  temporary build's handlers over 4 rounds, not kept). The app's requests took 8.6-9.3 ms as the load generator saw
  them (32 connections), 7.7-7.9 ms of it inside the server's handler: the key's read 1.2-1.7 ms, the provider call
  1.6-2.1 ms (1.4-1.9 ms of it until the answer's headers), the group commit 3.7-4.6 ms (about 9 payments a commit). The
  floor's took 6.8-7.5 ms: the provider call 0.22-0.44 ms and its own commit 5.6-7.2 ms, waiting its turn at the store.
  So group commit does beat the floor's commit, by about 2 ms; the app loses about 3.5 ms before it. The sandbox
  answered each call in 0.02-0.03 ms (timed in its handler) and kept its connections (30-65 a 3-s window), so the
  1.2-1.6 ms the same call takes longer in the app, like the read's, is the app's main thread: each step's
  continuation waits while it runs the others' (about 63 % busy, in bursts: a group commit's answers and the next
  group's building run in one turn). Shown side by side (8 rounds): one timer's turn between group commits cost 16 %
  (0.84 ×); two groups at the store at once changed nothing (0.99 ×). The main thread's profile under the load:
  \`fetch\` to the provider 16.6 %, garbage collection 10.4 %, KV reads' synchronous part 7.7 % (3.6 requests share a
  read), KV commits' 16.9 % (the write call 6.3, serialization 4.6, sizing the shared chunks 1.5), hashes 6.5 %. What
  would move the row is less work on the main thread, not a cheaper store.
- **The BigQuery export's rows through the client's own request** (2026-11-29, ninth session): \`Table.insert\`
  deep-copies each request and walks every row to rewrite "{{projectId}}" (13.6 % and 12.9 % of the export's main
  thread in its profile). Sent as text through the same client's authenticated \`request\`, the export's CPU per row
  went from 21-23 to 19-20 µs side by side (three runs each). Its cost to init-payment, measured in the full runs,
  moves too much to show it: 16.8 % (CPU +19.2 %) in the last run before, 13.1 %, 16.9 % and 14.8 % (CPU +14.5,
  +20.3 and +20.2 %) in the three after. What is left is flat: KV reads and their deserialization, building rows
  (dates), the HTTP client's Node layers, collections. Still over the 5 % target: each created payment makes three
  rows (its event, its state and its provider call), about 40 µs of main-thread time per payment beside the
  235 µs the request and its load generator take there (the export's bench runs both in one process).
- **Measured and set aside** (2026-11-30, then taken the next session, see below): a raw HTTP/1.1 keep-alive client for the provider call (the load
  generator's, \`bench/http1.ts\`) cost 15 µs of CPU a call against \`fetch\`'s 37-44 µs (20,000 POSTs to a local
  server, 16 in flight, runs side by side). Not taken: the floor's provider call is one \`fetch\`, and with the same
  client in both, each would save the same 25 µs or so, which lowers the ratio (CPU 0.28 and 0.21 ms a request, 0.73
  → 0.70); in the app alone it would pass the row by making the app's call cheaper than its floor's, not by doing less
  of its own work, and it would put a hand-written HTTP client (TLS, chunked answers, stale connections, proxies) on
  the money path. The provider call's timeout signal costs \`fetch\` about 4 µs a call (kept: a call must end);
  reading a request body of declared length with \`Request.bytes()\` instead of a stream reader, 3 µs (about 1 % of
  init-payment's CPU, not worth a second path through the body limit). The garbage collector under the load
  (\`--trace-gc\`, 2 rounds): a scavenge every 22 ms (0.65-0.7 ms each) and an incremental mark-compact about once a
  second (old space 21 → 42 MB, 3-4.5 ms finishing it and 10-12 ms of steps), so about 20 MB survives young
  collection a second, 6 KB an init-payment; sampled by where they were made (the inspector's heap sampling, objects
  a major collection took included), the survivors are flat: \`fetch\`'s request and streams, the body reader, zod,
  timers and hashes, none over 3.5 %.
- **The day's changes side by side with the code before them** (2026-11-30): the full run after them gave init-payment
  0.73 × its floor and refunds 0.53 on a slow stretch of the machine (the BullMQ peer's drain 3,270 a second against
  3,923 the night before, the app's CPU per init-payment 0.38 ms against 0.28). Side by side with the session's first
  commit in one stack (a second app in place of the floor, 6 rounds), init-payment ran 1.01 × (CPU 0.343 and 0.336 ms a
  request); refunds, each build against its own floor twice in turn, took 0.50 and 0.46 ms of CPU a request against
  0.54 and 0.45. Neither moved: the ratios follow the machine.
- **Measured and set aside** (2026-11-30, later): V8's \`--single-threaded-gc\` (collection on the main thread only, in
  case parallel collection costs more on 2 cores shared by four busy processes) beside the start task's flags, one code
  in both apps of one stack, 8 rounds: the default ran 1.04 × as fast (rounds 0.97-1.11), at the same CPU a request
  (0.369 and 0.370 ms). The same code against the code at the start of the session (6 rounds): 1.02 ×, CPU 0.300
  against 0.315 ms a request: the day's changes cost init-payment nothing.
- **Provider calls without fetch** (2026-11-30, next session): the provider adapter now calls Bansky through a
  kept-alive HTTP/1.1 client of its own (\`lib/providers/http1_client.ts\`, pooled per origin; \`fetch\` only behind an
  operator's outbound proxy). In a loop of 20,000 POSTs to a local server (32 in flight) \`fetch\` cost 46-49 µs of
  CPU a call and the client 17-18. Side by side with the code before it (one stack, the old build in the floor's
  place, 8 rounds each, two runs): 1.11 × and 1.12 ×, about 0.07 ms less CPU a request (garbage included), and 0.99 ×
  against its first version after the review's fixes; every refund and every webhook's status call is cheaper too.
  Five full runs that day: init-payment 0.92, 0.89, 0.86, 0.85 and 0.79 × its floor (synchronous writes of 253, 184,
  156, 213 and 215 µs), refunds 0.63, 0.68, 0.70, 0.72 and 0.68 (0.6 before). Read the init-payment row with care: the
  floor still calls with \`fetch\`, as it is defined. Against a floor with the same client the app ran 0.80 × side by
  side (6 rounds), and the bench now shows that ratio in a row of its own: 0.82 and 0.76 in the last two runs (0.66 in
  the run before them, where that floor's rounds came after the others', its store empty against the app's full one).
  The objection recorded above stands: the gain is real for the product (less CPU on every
  provider call, which Deno Deploy bills), but it moves the row by making the app's call cheaper than its floor's,
  not by doing less of the app's own work. What was against it, a hand-written client on the money path, is met with
  bounds and tests: answers over 1 MiB or heads over 64 KiB refused, no redirect followed, no compression accepted,
  header values and names that would start a line refused, a call ended at its deadline by closing its connection,
  connections idle over 4 s (or past the server's \`Keep-Alive\` timeout) not reused, and a call retried once, on a new
  connection, only when a reused one closed before any byte of an answer (Bansky is idempotent on our ids). A review
  of it found four bugs, fixed with tests: a deadline passing while the connection was made did not end the call,
  bytes a server sent on an idle connection were read as the next call's answer (such a connection is now closed),
  \`gzip, chunked\` was read as plain chunked, and a connection idle past its own server's shorter \`Keep-Alive\` was
  reused. TLS is Deno's own (\`Deno.startTls\`, the same rustls as \`fetch\`). The chain service's calls use it too.
  With init-payment cheaper, the BigQuery export's fixed cost per payment is a larger share of it: 15-33 % of
  throughput in the five runs (line 5 %; 14-17 % the day before).
- **Names instead of derived ids** (2026-11-30, third session): a payment a shop names (its \`id\`, or an
  \`Idempotency-Key\`) had an id derived from the name, an HMAC, so its record landed at a random place in the store.
  Counted per init request under load (\`/proc\` I/O of the store's threads): 56 KB written and 66 KB read before, 30
  KB and 41 KB now; a random key costs pages to read and write whatever its size (in a prototype an extra read of the
  old derived id with every request took most of the gain away, so payments named before are looked for there only
  until the \`payment_names\` backfill is done). Now every payment gets a time-ordered id
  and the name's key (\`["payment_names", shop, kind, name]\`, the name as written, so a shop numbering its orders adds
  them next to each other) says which payment a name names. Side by side with the code before (6 rounds): 1.26 × as
  fast (a prototype: 1.29 and 1.21 ×); two full runs: 3,180 and 2,959 init requests a second against 2,523 the run before, 0.381 and
  0.412 ms of CPU a request against 0.443. The floor's record had a random key too, "our id's shape": it now makes its
  ids as the app does, and ran about 1.3 × as fast for it (2,977 → 3,864 and 3,778 a second), so the judged ratio
  hardly moved (0.82 and 0.78; against the old floor's 2,977 the app's rates would be 1.07 and 0.99). The refund floor
  made random ids where the app's unnamed refunds have had time-ordered ones since "Records next to each other": it
  now makes them as the app does, and its speed went up likewise (3,313 → 3,570 and 3,843), so refunds, about as fast
  as before in the app, read 0.57 and 0.64. Those two rows were flattered by their floors' random keys; they are not
  now. A retry that reached the provider but stored nothing (a timeout, a 5xx) keeps its id under the name, so
  the provider still gets the same request again.
- **How much of init-payment's row is the machine** (2026-11-30, fourth session; nothing on the request path changed).
  The init phase alone, as \`bench/run.ts\` runs it (both floors, 5 rounds), gave 0.94, 0.91, 0.92, 0.89 and 0.88 ×
  the floor in five runs within an hour, and 0.83 and 0.87 with the bench's wait for a quiet machine between rounds;
  the full runs of the session before gave 0.77-0.82. The app alone under steady load, measured in 2-s windows: every
  process's CPU per request (the app's main and store threads, and the sandbox's, whose work per call from the app
  does not change) rose together by 20-30 % for stretches of 10-20 s and fell back, with no other program busy
  (\`/proc/stat\`) and no steal time reported. The machine's own speed moves under the run; the details now show it as
  the sandbox's CPU per request over the rounds, beside each server's main-thread busy share. In those runs the app's
  slowest round was nearly always its fourth, beside floor rounds at their usual rate: V8's memory reducer (below).
  The floor waits partly on its store's synchronous write per request, which a slow stretch of the machine slows less.
  Tried side by side (the app against itself with the change in the floor's place, 8-10 rounds), none kept: reads
  through the writer's connection 0.98 × (1.11 × before payment names took most of the reader's pages away); no
  operation-log keys of its own (the entries in the activity log only, an upper bound) 1.00 ×; no per-request timers
  (the body's and the provider call's deadlines) 1.00 ×; a 32 MB young generation 0.97 ×; a group's first write
  waiting one microtask for the rest of its burst (commit groups of one fell from about 500 to 185 in 3 s) 1.01 ×.
  Where the app's main thread spends more than the floor's with the same HTTP client (profile, µs a request): KV reads
  18.5 against none (1.5 keys a request; in a microbenchmark a read's synchronous part costs about 12 µs a call and 5
  µs a key), KV commits 19 against 7, garbage collection 14.5 against 2.6, and 25 against 7 on V8's helper threads (75
  KB allocated a request, no site over 4 %). So the row moves only with less work on the main thread spread over many
  places, and one run's verdict is within the machine's own noise of 0.9. Full runs of the session before the memory
  reducer was turned off (below): 0.92 (rounds 0.83-1.00; the details' sandbox CPU per request moved 38-49 µs over the
  app's rounds), 0.897 and 0.87. The first also had the only webhook stall of the session: postbacks at 100/s took up
  to 190 ms for a moment (p99 99.5 ms), with the load generator's own lag at most 5.4 ms and the 500/s phase right
  after it normal; the sandbox, which keeps every payment in memory (about 170,000 by then), paused at most 15 ms for
  garbage collection when filled with 200,000 on its own, so the cause is not known. The earlier note's 142 ms stall
  looked the same. The details now time each webhook phase's slowest postback from the app's record of its payment
  (when the app moved it, when the relay first tried it), so the next stall shows on which side it was.
- **V8's memory reducer off** (\`--no-memory-reducer\` in \`deno task start\`, 2026-11-30, fourth session): in the
  init phase the app's fourth round, the one after its longest gap (14 s, while both floors ran), was the costliest of
  the five in every run: in the three full runs above 0.412, 0.387 and 0.413 ms of CPU a request against 0.301, 0.335
  and 0.331 in the round before the gap (16-37 % more), and likewise in the four runs of the phase alone that logged
  it. \`--trace-memory-reducer\` showed why: from 30 s after start, V8 runs two full collections that shrink the heap
  once the process has allocated little for a few seconds, and the next traffic pays for it for several seconds. With
  the reducer off that round cost 0.318 and 0.340 ms against 0.303 and 0.327 in the next two full runs (0.95 and 0.93
  × the floor; this page's run is a third), and was not slow in two runs of the phase alone (0.97 and 0.95); it was in
  one of two more in which the floors ran with the setting too (0.92 and 0.86). The heap keeps the size the load gave
  it, bounded by \`--heap-growing-percent\`; the app alone with 12-s idle gaps ran the same either way.
`;

/** The peer's settings, for the doc: what a reader needs to rebuild it. */
function peerMarkdown(r: BenchResults): string {
  const v = r.peer.versions;
  const ver = (x: string | null) => x ?? "n/a";
  const s = PEER_SETTINGS;
  const status = r.peer.kind === "measured"
    ? ""
    : `\n\nIn this run the peer was ${r.peer.kind === "missing" ? "not measured" : "failed"} (${r.peer.reason}).`;
  return `## The peer

The drain is compared with the relay a Node team would build instead of ours (\`bench/peer.ts\`, \`bench/peers/\`), run
right after the app's drain in the same run, with the app stopped, on the same count, payload and shop:

- **Queue**: BullMQ ${ver(v.bullmq)} (npm, pinned in \`package.json\`) with its Redis client ioredis ${
    ver(v.ioredis)
  }, on Node ${ver(v.node)}.
- **Redis**: Redis ${ver(v.redis)} from Debian's \`redis-server\` (installed with \`apt-get\` when missing), started
  by the bench on a free loopback port with its files in the temp dir and
  \`${s.redisArgs.map((a) => a === "" ? '""' : a).join(" ")}\`: AOF on, fsync once a second, no RDB
  snapshots; every other setting is Redis's default. A job acknowledged in the second before a power cut can be lost;
  the app commits every state change before it acknowledges it.
- **Producer** (\`bench/peers/producer.mjs\`): enqueues the backlog while no worker runs, in \`addBulk\` batches of
  ${s.enqueueBatch}, each job carrying its webhook-id, the shop's URL and the same body as the app's backlog
  (\`bench/peers/postback.mjs\`, shared with \`bench/seed_postbacks.ts\`). Job options are BullMQ's defaults except ${s.attempts} attempts with a fixed
  ${s.backoffMs / 1000} s backoff, the app's retry schedule in the bench (BullMQ's default is a single attempt, which
  would drop a postback the shop refused once).
- **Worker** (\`bench/peers/worker.mjs\`): concurrency ${s.concurrency}; every other worker option is BullMQ's
  documented default (30 s job lock, stalled-job check every 30 s, completed and failed jobs kept, no rate limiter).
  Each job is signed with \`standardwebhooks\` ${ver(v.standardwebhooks)}
  (\`new Webhook(secret).sign(msgId, date, body)\`, headers webhook-id, webhook-timestamp and webhook-signature) and
  POSTed with Node's own \`fetch\` (its default keep-alive, a ${s.timeoutMs / 1000} s timeout per attempt, as the
  app's); a non-2xx answer fails the attempt, so BullMQ retries it.
- **Clock**: as for the app, from the first to the last arrival at the shop, with lost and duplicate postbacks counted
  the same way; the worker's start-up (Node, BullMQ, the Redis connection) is in the details, as the app's is.
- Alone, for debugging: \`deno run -A bench/peer.ts [COUNT]\` starts its own shop and Redis and prints the
  result.${status}
`;
}

function peerVersionsText(r: BenchResults): string {
  const v = r.peer.versions;
  return `BullMQ ${v.bullmq ?? "n/a"}, Node ${v.node ?? "n/a"}, Redis ${v.redis ?? "n/a"} with AOF everysec`;
}

function fmtMb(mb: number | null): string {
  return mb === null ? "n/a" : `${mb.toFixed(0)} MB`;
}

/** One line about the machine: cores matter most, since 2 cores are shared by every process above. */
export function machineInfo(): string {
  let cpu = "unknown CPU";
  try {
    cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? cpu;
  } catch {
    // Not Linux.
  }
  const memGiB = Deno.systemMemoryInfo().total / 2 ** 30;
  return `${navigator.hardwareConcurrency} cores (${cpu}), ${
    memGiB.toFixed(0)
  } GiB RAM, ${Deno.build.os}/${Deno.build.arch}, Deno ${Deno.version.deno}`;
}
