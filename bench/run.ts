/**
 * `deno task bench [--quick] [--no-docs] [--strict]`
 *
 * Benchmarks the app against floor servers side by side on loopback: the pay
 * redirect, init-payment, webhook → postback latency, the drain of a postback
 * backlog (against the same drain through a BullMQ + Redis peer, bench/peer.ts)
 * and the app's peak memory. Prints a table; a full run also rewrites
 * docs/benchmarks.md (--no-docs keeps it). --quick is a short smoke run that
 * never touches the doc. --strict exits 1 when a target is missed.
 *
 * Everything runs in subprocesses (see stack.ts) with its data in a temp dir;
 * both are removed at the end, also on failure or Ctrl-C.
 */
import { parseArgs } from "node:util";
import {
  awaitQuietShop,
  compareThroughput,
  createPayments,
  drainBacklog,
  type DrainResult,
  type Driver,
  medianRun,
  paidPaymentsWithoutPostbacks,
  readIds,
  webhookLatency,
  webhookLatencyBesideSlowShop,
  webhookPaymentsNeeded,
} from "./phases.ts";
import { type PeerDrain, peerDrain, type PeerSkipped } from "./peer.ts";
import { cpuSample, DENO, foreignShare, QuietGate, stopAll, syncWriteMicros, tail } from "./procs.ts";
import { FULL, QUICK } from "./profile.ts";
import { type BenchResults, failures, machineInfo, renderMarkdown, renderText } from "./report.ts";
import { type Stack, startStack } from "./stack.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { quick: { type: "boolean" }, "no-docs": { type: "boolean" }, strict: { type: "boolean" } },
});
const profile = flags.quick ? QUICK : FULL;
const writeDocs = !flags.quick && !flags["no-docs"];
const DOC = "docs/benchmarks.md";

// Scripts and the Deno binary are addressed relative to the repository root.
Deno.chdir(new URL("..", import.meta.url));
const dir = await Deno.makeTempDir({ prefix: "aimbrella-bench-" });
const log = (line: string) => console.error(line);
// Up to 5 s before each measurement and 60 s in all (quick: none) waiting for other programs to quiet down.
const gate = new QuietGate(flags.quick ? 0 : 60_000, 5_000);
const driver: Driver = { log, settle: () => gate.settle() };

let cleaning: Promise<void> | null = null;
/** Stops every subprocess and removes the temp dir; safe to call from several places, it runs once. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  })();
  return cleaning;
}
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    interrupted = true;
    log(`\n${signal}: stopping the bench processes`);
    cleanup().finally(() => Deno.exit(130));
  });
}

// The whole run is bounded (5 to 6 minutes is normal); past this something hangs, so stop and say so.
const WATCHDOG_MS = 600_000;
const watchdog = setTimeout(() => {
  log(`bench: still running after ${WATCHDOG_MS / 1000} s; giving up`);
  cleanup().finally(() => Deno.exit(1));
}, WATCHDOG_MS);

const startedAt = new Date();
const t0 = performance.now();
let stack: Stack | undefined;
try {
  log(`bench (${profile.name}) on ${machineInfo()}; temp dir ${dir}`);
  await warnIfBusy();
  const syncWriteUs = syncWriteMicros(dir);
  log(`a synchronous 4 KiB write here takes ${syncWriteUs.toFixed(0)} µs`);
  stack = await startStack(dir);
  log("stack up: sandbox, shop, floor, app");

  log("POST /api/v1/init-payment");
  const init = await compareThroughput(stack, profile, {
    endpoint: "POST /api/v1/init-payment",
    target: 0.9,
    expectStatus: 201,
    request: (who) => ({ kind: "init", apiKey: stack!.shop.apiKey, txPrefix: `bench-${who}-${crypto.randomUUID()}` }),
    saveIds: true,
    // The floor calls its provider with fetch, the app with its own cheaper client: a second floor with the app's
    // client, in the same rounds, shows how much of the ratio that is (shown, not judged).
    secondFloor: stack.floorSameClient,
  }, driver);
  // The pay rounds cycle through payments created above, the same number for both targets.
  const appIds = await readIds(init.idFiles.app);
  const floorIds = await readIds(init.idFiles.floor);
  const payCount = Math.min(profile.payIds, appIds.length, floorIds.length);
  const idsFile = (who: string, ids: string[]) => {
    const path = `${dir}/pay-ids-${who}.json`;
    Deno.writeTextFileSync(path, JSON.stringify(ids));
    return path;
  };
  const payFiles = { app: idsFile("app", appIds.slice(-payCount)), floor: idsFile("floor", floorIds.slice(-payCount)) };

  log("GET /integration/pay");
  const pay = await compareThroughput(stack, profile, {
    endpoint: "GET /integration/pay",
    target: 0.8,
    expectStatus: 302,
    request: (who) => ({ kind: "pay", idsFile: payFiles[who] }),
    warmupRequests: payCount,
    warmupMs: profile.payWarmupMs,
  }, driver);

  log(`webhook → postback at ${profile.webhookRate}/s for ${profile.webhookSeconds} s`);
  const steady = { rate: profile.webhookRate, seconds: profile.webhookSeconds };
  const needed = webhookPaymentsNeeded(profile, steady);
  if (appIds.length < needed) appIds.push(...await createPayments(stack, profile, needed - appIds.length));
  const webhook = await webhookLatency(stack, profile, appIds, driver, steady);

  // The same path at a peak rate, on payments of its own.
  const peak = { rate: profile.webhookPeakRate, seconds: Math.max(2, profile.webhookSeconds / 2) };
  log(`webhook → postback at ${peak.rate}/s for ${peak.seconds} s`);
  const peakIds = await createPayments(stack, profile, webhookPaymentsNeeded(profile, peak));
  const webhookPeak = await webhookLatency(stack, profile, peakIds, driver, peak);

  // Again at the first rate, while another shop answers each of its postbacks after 8 s.
  log(`webhook → postback at ${profile.webhookRate}/s beside a shop answering after 8 s`);
  const slowShopIds = {
    fast: await createPayments(stack, profile, needed),
    slow: await createPayments(stack, profile, profile.slowShopRate * profile.webhookSeconds, {
      postbackUrl: stack.slowShop.postbackUrl,
    }),
  };
  const besideSlowShop = await webhookLatencyBesideSlowShop(stack, profile, slowShopIds, driver);

  // Refunds need paid payments: the app's are paid at the sandbox for this phase, made without a shop id so that
  // no postbacks ride along (their delivery is what the webhook and drain rows measure). The floor refunds the
  // same number of its own (the sandbox answers those "failed", at the same cost, since they are not paid).
  log("POST /api/v1/payments/{id}/refunds");
  const paidCount = Math.min(steady.rate * steady.seconds, floorIds.length);
  const refundable = await paidPaymentsWithoutPostbacks(stack, profile, paidCount);
  const refundFiles = {
    app: idsFile("refund-app", refundable),
    floor: idsFile("refund-floor", floorIds.slice(0, paidCount)),
  };
  const refund = await compareThroughput(stack, profile, {
    endpoint: "POST /api/v1/payments/{id}/refunds",
    target: 0.6,
    expectStatus: 201,
    request: (who) => ({ kind: "refund", apiKey: stack!.shop.apiKey, idsFile: refundFiles[who] }),
  }, driver);
  // Nothing should be on its way to the shop now; make sure before the drain counts arrivals.
  await awaitQuietShop(stack);
  const loadRssMB = stack.app.proc.peakRssMB();

  // The app's drain, then the same backlog through the relay a Node team would build instead (the app stopped, so
  // it takes no CPU), several times: one drain of each swung by a quarter from run to run.
  const drains: DrainResult[] = [];
  const peerRuns: PeerDrain[] = [];
  let peerSkipped: PeerSkipped | null = null;
  for (let run = 1; run <= profile.drainRuns; run++) {
    const of = profile.drainRuns > 1 ? ` (${run}/${profile.drainRuns})` : "";
    log(`drain of ${profile.drainCount} queued postbacks${of}`);
    drains.push(await drainBacklog(stack, profile, driver));
    await stack.app.proc.stop();
    if (peerSkipped) continue;
    log(`the same drain through the BullMQ + Redis peer${of}`);
    const peer = await peerDrain(stack, profile.drainCount, profile.drainTimeoutMs, dir, driver, run);
    if (peer.kind === "measured") {
      peerRuns.push(peer);
    } else {
      peerSkipped = peer;
      log(`  peer not measured: ${peer.reason}`);
    }
  }
  const drain = medianRun(drains);
  const peer = peerSkipped ?? medianRun(peerRuns);

  // Invoices last, in a fresh app process: every invoice the phase makes stays open and is polled at the chain
  // (CHAIN_POLL_INTERVAL_S), background work that would otherwise run under every later phase.
  await stack.startApp();
  log("POST /api/v1/invoices");
  const invoice = await compareThroughput(stack, profile, {
    endpoint: "POST /api/v1/invoices",
    target: 0.6,
    expectStatus: 201,
    request: () => ({ kind: "invoice", apiKey: stack!.shop.apiKey, txPrefix: `inv-${crypto.randomUUID()}` }),
  }, driver);
  const invoiceRssMB = stack.app.proc.peakRssMB();

  // All app processes append to one log file.
  const appLogLines = await countLines(stack.app.proc.logPath);

  // The console page and the BigQuery export have their own scripts; a full run adds their reports.
  const extras = flags.quick ? [] : await runExtras();

  const results: BenchResults = {
    profile,
    command: `deno task bench${flags.quick ? " --quick" : ""}`,
    startedAt,
    elapsedS: (performance.now() - t0) / 1000,
    machine: machineInfo(),
    syncWriteUs,
    pay,
    init,
    initSameClient: init.alsoAgainst!,
    invoice,
    refund,
    webhook,
    webhookPeak,
    besideSlowShop,
    drain,
    peer,
    loadRssMB,
    invoiceRssMB,
    appLogLines,
  };
  console.log(`\n${renderText(results)}`);
  for (const extra of extras) console.log(`\n${extra.title}\n${extra.output}`);
  if (appLogLines > 0) log(`\napp log (last lines):\n${await tail(stack.app.proc.logPath, 10)}`);
  if (writeDocs) {
    await Deno.writeTextFile(DOC, renderMarkdown(results) + extrasMarkdown(extras));
    // Let the formatter align the tables, so the committed page passes `deno fmt --check` as generated.
    await new Deno.Command(DENO, { args: ["fmt", "--quiet", DOC] }).output();
    log(`\nwrote ${DOC}`);
  }
  const failed = failures(results);
  log(
    `${failed.length ? `targets missed: ${failed.join("; ")}` : "all targets met"} (${results.elapsedS.toFixed(0)} s, ${
      (gate.waitedMs / 1000).toFixed(0)
    } s of it waiting for a quiet machine)`,
  );
  if (flags.strict && failed.length) Deno.exitCode = 1;
} catch (err) {
  // After Ctrl-C the load generator dies mid-round; that failure is expected and not worth printing.
  if (!interrupted) {
    console.error(err instanceof Error ? err.stack : err);
    if (stack) {
      const procs = [stack.app, stack.sandbox, stack.floor, stack.floorSameClient, stack.shop].map((p) => p.proc);
      for (const proc of procs) {
        console.error(`--- ${proc.name} log ---\n${await tail(proc.logPath)}`);
      }
    }
  }
  Deno.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await cleanup();
}

/** Every process here shares the cores with whatever else runs; say so up front when that is a lot. */
async function warnIfBusy() {
  const before = cpuSample();
  await new Promise((r) => setTimeout(r, 1_000));
  const share = foreignShare(before, cpuSample());
  if (share !== null && share > 0.1) {
    log(`warning: other programs are using ${Math.round(share * 100)}% of the machine; results will be noisy`);
  }
}

async function countLines(path: string): Promise<number> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim()).length;
  } catch {
    return 0;
  }
}

interface Extra {
  title: string;
  command: string;
  output: string;
}

/** Runs the benchmarks kept in their own scripts (each starts and stops what it needs) and keeps their reports. */
async function runExtras(): Promise<Extra[]> {
  const scripts = [
    { title: "Console: payments page with 10,000 payments, island JavaScript", script: "bench/console_page.ts" },
    { title: "BigQuery export: throughput and cost to init-payment", script: "bench/bigquery_export.ts" },
  ];
  const out: Extra[] = [];
  for (const { title, script } of scripts) {
    log(title);
    await gate.settle();
    const run = await new Deno.Command(DENO, {
      args: ["run", "-A", script],
      env: { LOG_LEVEL: "warn" },
      stdout: "piped",
      stderr: "null",
    }).output();
    const output = new TextDecoder().decode(run.stdout).trim();
    out.push({ title, command: `deno run -A ${script}`, output: run.success ? output : `failed: ${output}` });
  }
  return out;
}

function extrasMarkdown(extras: Extra[]): string {
  return extras.map((e) =>
    `\n## ${e.title}\n\n\`${e.command}\` (run by \`deno task bench\`):\n\n\`\`\`\n${e.output}\n\`\`\`\n`
  )
    .join("");
}
