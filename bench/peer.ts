/**
 * The drain's peer: the relay a Node team would build instead of ours, a
 * BullMQ worker (bench/peers/worker.mjs) on Redis from Debian with AOF and
 * `appendfsync everysec`, draining the same backlog to the same bench shop.
 * A producer (bench/peers/producer.mjs) enqueues the backlog while no worker
 * runs, as after an outage; then the worker starts and the clock runs as for
 * the app's drain (first to last arrival at the shop, lost and duplicates
 * counted alike).
 *
 * Redis and Node are found on PATH; a missing `redis-server` is installed
 * from Debian as CI does, and if that fails the peer is reported as not
 * measured instead of failing the bench.
 *
 * Alone, for debugging: `deno run -A bench/peer.ts [COUNT]` (default 1,000)
 * starts its own shop and Redis and prints the result as JSON.
 */
import {
  type Arrivals,
  awaitArrivals,
  type Delivered,
  drainFigures,
  type Driver,
  shopCall,
  type ShopRef,
} from "./phases.ts";
import {
  cpuSample,
  cpuTimeMs,
  foreignShare,
  freePort,
  type Proc,
  runJson,
  startDeno,
  startProcess,
  stopAll,
  tail,
  waitForHttp,
} from "./procs.ts";
import { BENCH_POSTBACK_SCHEDULE_S } from "./stack.ts";
import { nowMs } from "./stats.ts";

/** The settings the peer runs with; the report prints them next to its numbers. */
export const PEER_SETTINGS = {
  /** The worker's one non-default option (bench/peers/worker.mjs keeps its own copy: it is plain Node). */
  concurrency: 64,
  /** Jobs per `addBulk` call in the producer. */
  enqueueBatch: 500,
  attempts: BENCH_POSTBACK_SCHEDULE_S.length,
  backoffMs: BENCH_POSTBACK_SCHEDULE_S[1] * 1000,
  /** Per-attempt timeout, the app's default POSTBACK_TIMEOUT_MS (lib/config.ts). */
  timeoutMs: 15_000,
  redisArgs: ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
} as const;

export interface PeerVersions {
  bullmq: string | null;
  /** BullMQ's Redis client, an optional peer dependency of BullMQ 6 that it cannot run without here. */
  ioredis: string | null;
  standardwebhooks: string | null;
  node: string | null;
  redis: string | null;
}

export interface PeerDrain extends Delivered {
  kind: "measured";
  versions: PeerVersions;
  /** Producer run: enqueueing the backlog into Redis. */
  enqueueMs: number;
  /** Worker spawn until it said it was connected to Redis. */
  startupMs: number;
  /** First to last arrival at the shop. */
  drainMs: number;
  /** Postbacks per second over drainMs, as the app's drain counts it. */
  rate: number;
  /** Worker spawn until the last arrival. */
  totalMs: number;
  workerRssMB: number | null;
  redisRssMB: number | null;
  /** CPU time per delivered postback from worker start to the last arrival (all threads), in ms. */
  cpuMsPerPostback: { worker: number; redis: number };
  /** Lines the worker logged besides "ready": failed attempts and errors (0 in a clean run). */
  workerLogLines: number;
  foreign: number | null;
}

/** Why the peer has no numbers: a tool missing on this machine (not judged), or a failure (a broken bench). */
export interface PeerSkipped {
  kind: "missing" | "failed";
  reason: string;
  versions: PeerVersions;
}

export type PeerResult = PeerDrain | PeerSkipped;

/** The shop the peer posts to: its port for counting, its URL for the jobs. */
export interface PeerShop extends ShopRef {
  shop: { port: number; postbackUrl: string };
}

/**
 * Drains `count` postbacks through the peer. Starts Redis in `dir`, enqueues,
 * starts the worker, waits for the shop to have them all, and stops both
 * again, whatever happens.
 */
export async function peerDrain(
  stack: PeerShop,
  count: number,
  timeoutMs: number,
  dir: string,
  driver: Driver,
  /** Which of the run's drains this is (1 for the first). */
  run = 1,
): Promise<PeerResult> {
  const versions = await peerVersions();
  if (!versions.node) return { kind: "missing", reason: "no node", versions };
  if (!versions.bullmq || !versions.ioredis) {
    return { kind: "missing", reason: `no ${versions.bullmq ? "ioredis" : "bullmq"} in node_modules`, versions };
  }
  if (!versions.redis) {
    versions.redis = await installRedis(dir, driver);
    if (!versions.redis) return { kind: "missing", reason: "no redis-server", versions };
  }
  const procs: Proc[] = [];
  try {
    const redis = await startRedis(dir);
    procs.push(redis.proc);
    await shopCall(stack, "POST", "/reset");
    const enqueued = await runJson<{ enqueued: number; ms: number }>(
      "node",
      [
        "bench/peers/producer.mjs",
        String(redis.port),
        String(count),
        stack.shop.postbackUrl,
        String(PEER_SETTINGS.attempts),
        String(PEER_SETTINGS.backoffMs),
      ],
      {},
      "bench/peers/producer.mjs",
    );

    await driver.settle();
    const redisCpuBefore = cpuTimeMs(redis.proc.pid);
    const spawnedAt = nowMs();
    // A log of its own per drain: its "ready" line times the start-up, and its other lines are counted.
    const worker = await startProcess(`peer-worker-${run}`, "node", ["bench/peers/worker.mjs"], {
      REDIS_PORT: String(redis.port),
      WEBHOOK_SECRET: newSecret(),
      POSTBACK_TIMEOUT_MS: String(PEER_SETTINGS.timeoutMs),
    }, dir);
    procs.push(worker);
    const ready = waitForLine(worker, "ready", timeoutMs).then(() => nowMs() - spawnedAt);
    const before = cpuSample();
    const arrivals: Arrivals = await awaitArrivals(stack, count, timeoutMs);
    const foreign = foreignShare(before, cpuSample());
    const cpuMs = { worker: cpuTimeMs(worker.pid), redis: cpuTimeMs(redis.proc.pid) - redisCpuBefore };
    const startupMs = await ready;
    return {
      kind: "measured",
      versions,
      ...drainFigures(arrivals, count, spawnedAt),
      enqueueMs: enqueued.ms,
      startupMs,
      cpuMsPerPostback: { worker: cpuMs.worker / arrivals.firstAt.size, redis: cpuMs.redis / arrivals.firstAt.size },
      workerRssMB: worker.peakRssMB(),
      redisRssMB: redis.proc.peakRssMB(),
      workerLogLines: (await Deno.readTextFile(worker.logPath)).split("\n").filter((l) => l.trim() && l !== "ready")
        .length,
      foreign,
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    driver.log(`peer drain failed: ${message}`);
    for (const proc of procs) driver.log(`--- ${proc.name} log ---\n${await tail(proc.logPath)}`);
    return { kind: "failed", reason: message.split("\n")[0].slice(0, 120), versions };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

/** Versions of what the peer runs on; null where the tool is missing. */
async function peerVersions(): Promise<PeerVersions> {
  const pkg = async (name: string) => {
    try {
      return (JSON.parse(await Deno.readTextFile(`node_modules/${name}/package.json`)) as { version: string }).version;
    } catch {
      return null;
    }
  };
  return {
    bullmq: await pkg("bullmq"),
    ioredis: (await commandOutput("node", ["-p", IOREDIS_AS_BULLMQ_SEES_IT]))?.trim() || null,
    standardwebhooks: await pkg("standardwebhooks"),
    node: (await commandOutput("node", ["--version"]))?.trim().replace(/^v/, "") ?? null,
    redis: redisVersion(await commandOutput("redis-server", ["--version"])),
  };
}

/** Node resolving ioredis from where BullMQ's own `require("ioredis")` does; prints its version or nothing. */
const IOREDIS_AS_BULLMQ_SEES_IT = `(() => {
  try {
    const from = require.resolve("bullmq", { paths: [process.cwd()] });
    return require(require.resolve("ioredis/package.json", { paths: [from] })).version;
  } catch {
    return "";
  }
})()`;

/** "Redis server v=7.0.15 sha=… " → "7.0.15". */
function redisVersion(out: string | null): string | null {
  return out?.match(/v=(\S+)/)?.[1] ?? null;
}

async function commandOutput(command: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(command, { args, stdin: "null", stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  } catch {
    return null;
  }
}

/** Installs Debian's redis-server as .ci/run does; returns its version, or null when that did not work. */
async function installRedis(dir: string, driver: Driver): Promise<string | null> {
  driver.log("redis-server not found: installing it (apt-get install -y redis-server)");
  const logPath = `${dir}/apt-redis.log`;
  for (const args of [["update"], ["install", "-y", "redis-server"]]) {
    try {
      const out = await new Deno.Command("apt-get", {
        args,
        env: { DEBIAN_FRONTEND: "noninteractive" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      for (const bytes of [out.stdout, out.stderr]) await Deno.writeFile(logPath, bytes, { append: true });
      if (!out.success) break;
    } catch {
      break;
    }
  }
  const version = redisVersion(await commandOutput("redis-server", ["--version"]));
  if (!version) driver.log(`installing redis-server failed; the peer is not measured\n${await tail(logPath, 5)}`);
  return version;
}

/**
 * Debian's redis-server on a free loopback port, its files in the bench's temp
 * dir, with AOF on, fsync once a second and no RDB snapshots; every other
 * setting is Redis's default. Resolves once it answers PING.
 */
async function startRedis(dir: string): Promise<{ proc: Proc; port: number }> {
  const port = freePort();
  // A fresh data directory for every drain: the same empty start each time.
  const dataDir = await Deno.makeTempDir({ dir, prefix: "redis-" });
  const proc = await startProcess(
    "redis",
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dataDir,
      "--logfile",
      "",
      ...PEER_SETTINGS.redisArgs,
    ],
    {},
    dir,
  );
  const deadline = Date.now() + 10_000;
  while (!await redisAnswers(port)) {
    if (Date.now() > deadline) {
      throw new Error(`redis-server did not answer on port ${port}\n${await tail(proc.logPath)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { proc, port };
}

/** One PING over a fresh connection (the Redis protocol accepts it inline). */
async function redisAnswers(port: number): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("+PONG");
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

/** Waits until a process's log has a line equal to `line`. */
async function waitForLine(proc: Proc, line: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await Deno.readTextFile(proc.logPath).catch(() => "");
    if (text.split("\n").some((l) => l.trim() === line)) return;
    if (Date.now() > deadline) throw new Error(`${proc.name} never printed "${line}"\n${await tail(proc.logPath)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A Standard Webhooks secret for the worker: `whsec_` + base64 of 32 random bytes, like a shop's. */
function newSecret(): string {
  return "whsec_" + btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
}

if (import.meta.main) {
  const count = Number(Deno.args[0] ?? 1_000);
  Deno.chdir(new URL("..", import.meta.url));
  const dir = await Deno.makeTempDir({ prefix: "aimbrella-peer-" });
  const cleanup = async () => {
    await stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  Deno.addSignalListener("SIGINT", () => cleanup().finally(() => Deno.exit(130)));
  try {
    const port = freePort();
    const shop = await startDeno("shop", "bench/shop.ts", { SHOP_PORT: String(port) }, dir);
    await waitForHttp(`http://127.0.0.1:${port}/stats`, shop);
    const log = (line: string) => console.error(line);
    const result = await peerDrain(
      { shop: { port, postbackUrl: `http://127.0.0.1:${port}/postback` } },
      count,
      90_000,
      dir,
      { log, settle: () => Promise.resolve() },
    );
    console.log(JSON.stringify(result, null, 2));
    if (result.kind === "failed") Deno.exitCode = 1;
  } finally {
    await cleanup();
  }
}
