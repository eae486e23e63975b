/**
 * The benchmark phases. Each drives the load generator (bench/load.ts, its own
 * process) against processes started by stack.ts and returns plain numbers;
 * report.ts turns them into the table.
 */
import type { ClosedResult, ClosedSpec, PacedResult, PacedSpec, RequestKind } from "./load.ts";
import type { Profile } from "./profile.ts";
import {
  cpuByThreadMs,
  cpuSample,
  cpuTimeMs,
  foreignShare,
  runDenoJson,
  THREAD_KINDS,
  type ThreadKind,
} from "./procs.ts";
import type { Stack } from "./stack.ts";
import { median, nowMs, percentile, sortedCopy } from "./stats.ts";

export type Who = "app" | "floor";

/** What the phases need from the driver: a progress line, and a wait for a quiet machine before measuring. */
export interface Driver {
  log(line: string): void;
  settle(): Promise<void>;
}

export interface ThroughputResult {
  endpoint: string;
  /** The app against the case's second floor, from the same rounds (when the case has one). */
  alsoAgainst?: ThroughputResult;
  target: number;
  rounds: Record<Who, ClosedResult[]>;
  /** Median requests per second over the measured rounds. */
  rps: Record<Who, number>;
  /**
   * Median CPU time the server process spent per answered request, in ms (all its threads). Unlike requests per
   * second it hardly moves when other programs share the machine, so it backs up the ratio on a busy machine.
   */
  cpuMsPerRequest: Record<Who, number>;
  /** The same split by thread (see cpuByThreadMs), over all measured rounds together: which thread a slow run cost. */
  threadCpuMsPerRequest: Record<Who, Record<ThreadKind, number>>;
  /** Median of the per-round latency percentiles. */
  p50Ms: Record<Who, number>;
  p99Ms: Record<Who, number>;
  ratio: number;
  /** App/floor ratio of each pair of rounds, to show how steady the ratio is. */
  roundRatios: number[];
  errors: Record<Who, number>;
  firstError: string | null;
  /** Files of ids saved by the rounds (init-payment only), by target. */
  idFiles: Record<Who, string[]>;
  /** Share of the machine (0..1) other programs used during each measured round (empty where unknown). */
  foreign: number[];
  /**
   * The provider sandbox's CPU time per answered request in each measured round, in ms (zero where the target's
   * requests do not call it). Compare one target's rounds with each other: the app's calls ask the same of the sandbox
   * every round, so their spread shows roughly how much the machine's own speed moved (the sandbox's heap, which holds
   * every payment, grows over the run too). The floor's `fetch` costs the sandbox more per call than the app's client.
   */
  sandboxCpuMsPerRequest: Record<Who, number[]>;
}

export interface ThroughputCase {
  endpoint: string;
  target: number;
  expectStatus: number;
  request: (who: Who) => RequestKind;
  /** Keep the ids of created payments (for the phases after init-payment). */
  saveIds?: boolean;
  /**
   * Start the warm-up with this many requests (capped at 10 s). The pay wrapper records a buyer's first visit
   * with a commit; a first pass over every id makes the measured rounds repeat visits for both targets.
   */
  warmupRequests?: number;
  /** Warm-up time after that first pass (default: the profile's). */
  warmupMs?: number;
  /**
   * A second floor run in the same rounds (its turn beside the other two, in the same rotation), so that its store
   * grows as theirs do: the result's `alsoAgainst` is the app against it. Asked as the floor is.
   */
  secondFloor?: { proc: { pid: number }; port: number };
}

/**
 * Runs one endpoint against the app and the floor, side by side: a warm-up
 * round each, then `rounds` measured rounds each, alternating which goes first
 * (ABBA) so drift over the run (disk cache, KV size, thermal) hits both alike.
 */
export async function compareThroughput(
  stack: Stack,
  profile: Profile,
  c: ThroughputCase,
  driver: Driver,
): Promise<ThroughputResult> {
  // The targets measured: the app, the floor and, when the case has one, a second floor.
  type Target = Who | "second";
  const targets: Target[] = c.secondFloor ? ["app", "floor", "second"] : ["app", "floor"];
  const port: Record<Target, number> = {
    app: stack.app.port,
    floor: stack.floor.port,
    second: c.secondFloor?.port ?? 0,
  };
  const pids: Record<Target, number> = {
    app: stack.app.proc.pid,
    floor: stack.floor.proc.pid,
    second: c.secondFloor?.proc.pid ?? 0,
  };
  const rounds: Record<Target, ClosedResult[]> = { app: [], floor: [], second: [] };
  const cpu: Record<Target, number[]> = { app: [], floor: [], second: [] };
  const sandboxCpu: Record<Target, number[]> = { app: [], floor: [], second: [] };
  // CPU by thread kind of each round, like `cpu` (ms, not per request).
  const threadMs: Record<Target, Record<ThreadKind, number>[]> = { app: [], floor: [], second: [] };
  const idFiles: Record<Who, string[]> = { app: [], floor: [] };
  const foreign: number[] = [];
  let seq = 0;
  const once = async (who: Target, durationMs: number, maxRequests?: number) => {
    const saveIdsTo = c.saveIds && who !== "second" ? `${stack.dir}/ids-${who}-${seq++}.json` : undefined;
    const spec: ClosedSpec = {
      mode: "closed",
      port: port[who],
      concurrency: profile.concurrency,
      durationMs,
      maxRequests,
      expectStatus: c.expectStatus,
      request: c.request(who === "second" ? "floor" : who),
      saveIdsTo,
    };
    const before = cpuSample();
    const cpuBefore = cpuTimeMs(pids[who]);
    const sandboxBefore = cpuTimeMs(stack.sandbox.proc.pid);
    const threadsBefore = cpuByThreadMs(pids[who]);
    const result = await runDenoJson<ClosedResult>("bench/load.ts", [JSON.stringify(spec)]);
    cpu[who].push((cpuTimeMs(pids[who]) - cpuBefore) / result.ok);
    sandboxCpu[who].push((cpuTimeMs(stack.sandbox.proc.pid) - sandboxBefore) / result.ok);
    const threadsAfter = cpuByThreadMs(pids[who]);
    threadMs[who].push(
      Object.fromEntries(THREAD_KINDS.map((k) => [k, threadsAfter[k] - threadsBefore[k]])) as Record<
        ThreadKind,
        number
      >,
    );
    const share = foreignShare(before, cpuSample());
    if (share !== null) foreign.push(share);
    if (saveIdsTo && who !== "second") idFiles[who].push(saveIdsTo);
    return result;
  };

  for (const who of targets) {
    if (c.warmupRequests) await once(who, 10_000, c.warmupRequests);
    await once(who, c.warmupMs ?? profile.warmupMs);
  }
  foreign.length = 0;
  for (const t of targets) cpu[t].length = sandboxCpu[t].length = threadMs[t].length = 0;
  for (let i = 0; i < profile.rounds; i++) {
    // ABBA (with a second floor, ABC CBA) so drift over the run hits every target alike.
    const order = i % 2 === 0 ? targets : targets.toReversed();
    for (const who of order) {
      await driver.settle();
      rounds[who].push(await once(who, profile.roundMs));
    }
    const line = (w: Target) => {
      const microsPerRequest = (k: ThreadKind) => (threadMs[w][i][k] * 1000 / rounds[w][i].ok).toFixed(0);
      const byThread = THREAD_KINDS.map((k) => `${k} ${microsPerRequest(k)}`).join(", ");
      return `${w} ${rounds[w][i].rps.toFixed(0)} req/s (${cpu[w][i].toFixed(3)} ms CPU/req: ${byThread} µs)`;
    };
    driver.log(`  ${c.endpoint} round ${i + 1}/${profile.rounds}: ${targets.map(line).join(", ")}`);
  }

  /** The app against `floor` (the floor, or the second floor), from the rounds above. */
  const against = (floor: Target, endpoint: string): ThroughputResult => {
    const per = <T>(f: (who: Target) => T): Record<Who, T> => ({ app: f("app"), floor: f(floor) });
    const rps = per((w) => median(rounds[w].map((r) => r.rps)));
    return {
      endpoint,
      target: c.target,
      rounds: per((w) => rounds[w]),
      rps,
      cpuMsPerRequest: per((w) => median(cpu[w])),
      threadCpuMsPerRequest: per((w) => {
        const answered = Math.max(1, rounds[w].reduce((n, r) => n + r.ok, 0));
        return Object.fromEntries(
          THREAD_KINDS.map((k) => [k, threadMs[w].reduce((ms, round) => ms + round[k], 0) / answered]),
        ) as Record<ThreadKind, number>;
      }),
      p50Ms: per((w) => median(rounds[w].map((r) => r.p50Ms))),
      p99Ms: per((w) => median(rounds[w].map((r) => r.p99Ms))),
      ratio: rps.app / rps.floor,
      roundRatios: rounds.app.map((a, i) => a.rps / rounds[floor][i].rps),
      errors: per((w) => rounds[w].reduce((n, r) => n + r.errors, 0)),
      firstError: [...rounds.app, ...rounds[floor]].find((r) => r.firstError)?.firstError ?? null,
      idFiles,
      foreign,
      sandboxCpuMsPerRequest: per((w) => sandboxCpu[w]),
    };
  };
  return {
    ...against("floor", c.endpoint),
    ...(c.secondFloor ? { alsoAgainst: against("second", `${c.endpoint}, floor with the app's HTTP client`) } : {}),
  };
}

/**
 * Creates `count` more payments through the app's API (when the init rounds made too few for a later phase);
 * their postbacks go to the bench shop, or to `postbackUrl` (another shop).
 */
export async function createPayments(
  stack: Stack,
  profile: Profile,
  count: number,
  opts: { postbackUrl?: string } = {},
): Promise<string[]> {
  const saveIdsTo = `${stack.dir}/ids-extra-${crypto.randomUUID()}.json`;
  const spec: ClosedSpec = {
    mode: "closed",
    port: stack.app.port,
    concurrency: profile.concurrency,
    durationMs: 60_000,
    maxRequests: count,
    expectStatus: 201,
    request: {
      kind: "init",
      apiKey: stack.shop.apiKey,
      txPrefix: `bench-extra-${crypto.randomUUID()}`,
      postbackUrl: opts.postbackUrl,
    },
    saveIdsTo,
  };
  await runDenoJson<ClosedResult>("bench/load.ts", [JSON.stringify(spec)]);
  return await readIds([saveIdsTo]);
}

/**
 * Paid payments without a shop id, so without postbacks: what the refund phase
 * refunds, so that it measures the endpoint itself (postback delivery has its
 * own rows: webhook → postback and the drain). Created through the app's API,
 * paid at the sandbox as a buyer would, and waited for until the app has
 * them `succeeded`.
 */
export async function paidPaymentsWithoutPostbacks(stack: Stack, profile: Profile, count: number): Promise<string[]> {
  const saveIdsTo = `${stack.dir}/ids-refundable.json`;
  await runDenoJson<ClosedResult>("bench/load.ts", [JSON.stringify(
    {
      mode: "closed",
      port: stack.app.port,
      concurrency: profile.concurrency,
      durationMs: 60_000,
      maxRequests: count,
      expectStatus: 201,
      request: { kind: "init", apiKey: stack.shop.apiKey, txPrefix: "unused", noShopId: true },
      saveIdsTo,
    } satisfies ClosedSpec,
  )]);
  const ids = await readIds([saveIdsTo]);
  const idsFile = `${stack.dir}/refundable-ids.json`;
  await Deno.writeTextFile(idsFile, JSON.stringify(ids));
  await settlePaced(stack, idsFile, 500);
  // The sandbox's webhooks settle them; wait until the app has the last ones.
  const deadline = Date.now() + 30_000;
  for (const id of [...ids.slice(-20), ...ids.slice(0, 20)]) {
    for (;;) {
      const res = await fetch(`http://127.0.0.1:${stack.app.port}/api/v1/payments/${encodeURIComponent(id)}`, {
        headers: { authorization: `Bearer ${stack.shop.apiKey}` },
      });
      const body = await res.json();
      if (body.payment?.status === "succeeded") break;
      if (Date.now() > deadline) throw new Error(`payment ${id} did not succeed (${JSON.stringify(body)})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return ids;
}

/** Reads and concatenates id files written by the load generator. */
export async function readIds(files: string[]): Promise<string[]> {
  const lists = await Promise.all(files.map(async (f) => JSON.parse(await Deno.readTextFile(f)) as string[]));
  return lists.flat();
}

export interface Delivered {
  expected: number;
  received: number;
  lost: number;
  /** Arrivals beyond the first for the same payment (a redelivery or a second postback). */
  duplicates: number;
}

export interface WebhookResult extends Delivered {
  rate: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Settlements the sandbox refused (should be 0). */
  sendErrors: number;
  generatorLagMs: number;
  foreign: number | null;
  /** Where the phase's slowest postback spent its time (null when none arrived). */
  slowest: SlowestPostback | null;
}

/**
 * Where one postback spent its time, from the app's own record of its payment (`deno task payment show`), so a
 * stall shows on which side it was: before the app moved the payment (the sandbox's webhook, the app's check of it and
 * of the status with the sandbox), between that and the relay's first attempt (the commit, the relay), or after (the
 * way to the shop). Each time is in ms after the settlement at the sandbox; null where the record does not give it.
 * The app's times are whole milliseconds of its clock, the bench's of the same machine's.
 */
export interface SlowestPostback {
  paymentId: string;
  /** When the shop had it: the postback's latency. */
  latencyMs: number;
  /** When the app moved the payment to its new status (its events' time, taken before the move's commit). */
  statusChangedMs: number | null;
  /** When the relay started the postback's first attempt after that (after the commit). */
  attemptMs: number | null;
}

/** Settles the payments in `idsFile` at the sandbox, `rate` a second (the load generator's paced mode). */
function settlePaced(stack: Stack, idsFile: string, rate: number): Promise<PacedResult> {
  const spec: PacedSpec = {
    mode: "paced",
    appPort: stack.app.port,
    sandboxPort: stack.sandbox.port,
    sandboxToken: stack.sandbox.token,
    idsFile,
    rate,
  };
  return runDenoJson<PacedResult>("bench/load.ts", [JSON.stringify(spec)]);
}

/** A steady rate of settlements for a while. */
export interface WebhookLoad {
  rate: number;
  seconds: number;
}

/**
 * How many pending payments a webhook phase settles: its measured ones and, first, its warm-up's (the profile's
 * warm-up time at the same rate).
 */
export function webhookPaymentsNeeded(profile: Profile, load: WebhookLoad): number {
  return warmupCount(profile, load) + load.rate * load.seconds;
}

function warmupCount(profile: Profile, load: WebhookLoad): number {
  return Math.ceil(load.rate * profile.warmupMs / 1000);
}

/**
 * Webhook in → postback out, end to end, at a steady rate. The generator
 * settles `rate` payments per second at the sandbox; each settlement makes the
 * sandbox sign and send its webhook at once, and the app must verify it,
 * confirm the status with the sandbox, commit, and deliver the signed postback
 * to the shop. Latency is settlement → arrival at the shop.
 *
 * A warm-up at the same rate goes first and is not measured, as for the
 * throughput rows: the first webhooks of a run pay for code that has never
 * run in any of the three processes (the sandbox's sender, the app's webhook
 * route, the relay's first connection to the shop), about 60 ms for the
 * first, which would otherwise be a p99 of its own.
 */
export async function webhookLatency(
  stack: Stack,
  profile: Profile,
  pendingIds: string[],
  driver: Driver,
  load: WebhookLoad = { rate: profile.webhookRate, seconds: profile.webhookSeconds },
  /** Other load to run beside the measured part (not the warm-up); waited for before the result. */
  alongside?: () => Promise<unknown>,
): Promise<WebhookResult> {
  const needed = webhookPaymentsNeeded(profile, load);
  if (pendingIds.length < needed) throw new Error(`need ${needed} pending payments, have ${pendingIds.length}`);
  const warmupIds = pendingIds.slice(0, warmupCount(profile, load));
  const measuredIds = pendingIds.slice(warmupIds.length, needed);
  const settle = async (ids: string[]) => {
    const idsFile = `${stack.dir}/webhook-ids.json`;
    await Deno.writeTextFile(idsFile, JSON.stringify(ids));
    await shopCall(stack, "POST", "/reset");
    return await settlePaced(stack, idsFile, load.rate);
  };
  const warmup = await settle(warmupIds);
  await awaitArrivals(stack, warmup.sent.length, profile.webhookTimeoutMs);

  await driver.settle();
  const before = cpuSample();
  const other = alongside?.();
  const paced = await settle(measuredIds);
  const arrivals = await awaitArrivals(stack, paced.sent.length, profile.webhookTimeoutMs);
  const foreign = foreignShare(before, cpuSample());
  await other;

  const latencies: number[] = [];
  let slowest: { paymentId: string; settledAt: number; latencyMs: number } | null = null;
  for (const [paymentId, sentAt] of paced.sent) {
    const first = arrivals.firstAt.get(paymentId);
    if (first === undefined) continue;
    const latencyMs = first - sentAt;
    latencies.push(latencyMs);
    if (!slowest || latencyMs > slowest.latencyMs) slowest = { paymentId, settledAt: sentAt, latencyMs };
  }
  const sorted = sortedCopy(latencies);
  return {
    rate: load.rate,
    seconds: load.seconds,
    ...tally(paced.sent.map(([id]) => id), arrivals),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted[sorted.length - 1] ?? NaN,
    sendErrors: paced.errors,
    generatorLagMs: paced.maxLagMs,
    foreign,
    slowest: slowest && await explainPostback(stack, slowest),
  };
}

/** The app's events shown by `deno task payment show`, as far as explainPostback reads them. */
interface ShownPayment {
  events: { type: string; at: number }[];
  deliveries: { attemptLog: { at: number }[] }[];
}

/** Times one postback's way from the app's record of it (see SlowestPostback), read after the phase. */
async function explainPostback(
  stack: Stack,
  p: { paymentId: string; settledAt: number; latencyMs: number },
): Promise<SlowestPostback> {
  const explained: SlowestPostback = {
    paymentId: p.paymentId,
    latencyMs: p.latencyMs,
    statusChangedMs: null,
    attemptMs: null,
  };
  let shown: ShownPayment;
  try {
    shown = JSON.parse(await stack.operatorCommand("payment", "show", p.paymentId));
  } catch {
    // The explanation is a diagnosis, never the measurement: without it the row stands.
    return explained;
  }
  const since = (at: number | null) => (at === null ? null : at - p.settledAt);
  const changedAt = shown.events.find((e) => e.type === "status_changed")?.at ?? null;
  const attempts = shown.deliveries.flatMap((d) => d.attemptLog.map((a) => a.at))
    .filter((at) => changedAt !== null && at >= changedAt);
  return {
    ...explained,
    statusChangedMs: since(changedAt),
    attemptMs: since(attempts.length ? Math.min(...attempts) : null),
  };
}

export interface DrainResult extends Delivered {
  seedMs: number;
  /** App start (spawn) until it answered /healthz. */
  startupMs: number;
  /** First to last arrival at the shop. */
  drainMs: number;
  /** Postbacks per second over drainMs. */
  rate: number;
  /** App spawn until the last arrival. */
  totalMs: number;
  peakRssMB: number | null;
  foreign: number | null;
}

/** Drains of one relay (the app's, or the peer's) as the report judges them: see medianRun. */
export type DrainRuns<T> = T & { rates: number[] };

/**
 * Several drains of one relay as one result: the run with the median rate (the lower middle one of an even count)
 * for the rate and the times, with every run's rate beside it; what arrived, was lost or came twice summed over
 * all runs, and the highest peak RSS of any, so a loss or a peak in any run shows.
 */
export function medianRun<T extends Delivered & { rate: number; peakRssMB?: number | null }>(runs: T[]): DrainRuns<T> {
  const middle = runs.toSorted((a, b) => a.rate - b.rate)[Math.floor((runs.length - 1) / 2)];
  const sum = (f: (r: T) => number) => runs.reduce((n, r) => n + f(r), 0);
  const peaks = runs.map((r) => r.peakRssMB).filter((mb) => typeof mb === "number");
  return {
    ...middle,
    expected: sum((r) => r.expected),
    received: sum((r) => r.received),
    lost: sum((r) => r.lost),
    duplicates: sum((r) => r.duplicates),
    ...("peakRssMB" in middle ? { peakRssMB: peaks.length ? Math.max(...peaks) : null } : {}),
    rates: runs.map((r) => r.rate),
  };
}

/**
 * A backlog of due postbacks (10,000 in the full run), queued while the app
 * was stopped; then the app starts and the clock runs until the shop has
 * every one. The app's own start-up
 * sweep and its KV queue listener both pick them up, as after a real outage.
 */
export async function drainBacklog(stack: Stack, profile: Profile, driver: Driver): Promise<DrainResult> {
  await stack.app.proc.stop();
  await shopCall(stack, "POST", "/reset");
  const seeded = await runDenoJson<{ seeded: number; ms: number }>("bench/seed_postbacks.ts", [
    `${stack.dir}/app.sqlite3`,
    stack.shop.shopId,
    stack.shop.postbackUrl,
    String(profile.drainCount),
  ]);

  await driver.settle();
  const spawnedAt = nowMs();
  const app = await stack.startApp();
  const startupMs = nowMs() - spawnedAt;
  const before = cpuSample();
  const arrivals = await awaitArrivals(stack, profile.drainCount, profile.drainTimeoutMs);
  const foreign = foreignShare(before, cpuSample());
  return {
    ...drainFigures(arrivals, profile.drainCount, spawnedAt),
    seedMs: seeded.ms,
    startupMs,
    peakRssMB: app.peakRssMB(),
    foreign,
  };
}

/**
 * What a drain of the seeded backlog (ours or the peer's) reports from its arrivals: delivered, lost and
 * duplicates, the rate from the first to the last arrival, and spawn → last arrival.
 */
export function drainFigures(arrivals: Arrivals, count: number, spawnedAt: number) {
  const drainMs = arrivals.lastAt - arrivals.earliestAt;
  const expectedIds = Array.from({ length: count }, (_, i) => `pay_seed_${i}`);
  return {
    ...tally(expectedIds, arrivals),
    drainMs,
    rate: (arrivals.firstAt.size - 1) / (drainMs / 1000),
    totalMs: arrivals.lastAt - spawnedAt,
  };
}

export interface Arrivals {
  /** First arrival per payment id. */
  firstAt: Map<string, number>;
  /** Arrivals per payment id. */
  count: Map<string, number>;
  earliestAt: number;
  lastAt: number;
}

type ShopRecord = [messageId: string, paymentId: string, at: number];

/** What the arrival counting needs of the stack: the bench shop's port (the peer's drain runs it alone too). */
export interface ShopRef {
  shop: { port: number };
}

/** Waits until the shop has `expected` distinct postbacks (or the timeout), then a moment for stray duplicates. */
export async function awaitArrivals(stack: ShopRef, expected: number, timeoutMs: number): Promise<Arrivals> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stats = await shopCall(stack, "GET", "/stats") as { unique: number };
    if (stats.unique >= expected || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // A duplicate would come from a second worker or a retry of an attempt the shop already answered; retries
  // run a second apart (POSTBACK_SCHEDULE), so wait just over that before counting.
  await new Promise((r) => setTimeout(r, 1_200));
  const records = await shopCall(stack, "GET", "/records") as ShopRecord[];
  const firstAt = new Map<string, number>();
  const count = new Map<string, number>();
  let earliestAt = Infinity;
  let lastAt = -Infinity;
  for (const [, paymentId, at] of records) {
    count.set(paymentId, (count.get(paymentId) ?? 0) + 1);
    if (!firstAt.has(paymentId) || at < firstAt.get(paymentId)!) firstAt.set(paymentId, at);
    earliestAt = Math.min(earliestAt, at);
  }
  // The drain ends when the last payment got its first postback; later duplicates do not extend it.
  for (const at of firstAt.values()) lastAt = Math.max(lastAt, at);
  return { firstAt, count, earliestAt, lastAt };
}

export function tally(expectedIds: string[], arrivals: Arrivals): Delivered {
  const received = expectedIds.filter((id) => arrivals.firstAt.has(id)).length;
  let duplicates = 0;
  for (const n of arrivals.count.values()) duplicates += n - 1;
  return { expected: expectedIds.length, received, lost: expectedIds.length - received, duplicates };
}

/**
 * Waits until the shop has received nothing new for `quietMs` (postbacks a
 * phase caused, e.g. refund.succeeded, still on their way), so they cannot be
 * counted by the next phase.
 */
export async function awaitQuietShop(
  stack: Stack,
  quietMs = 1_000,
  timeoutMs = 30_000,
  port = stack.shop.port,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let since = Date.now();
  while (Date.now() < deadline) {
    const { received } = await shopCall(stack, "GET", "/stats", port) as { received: number };
    if (received !== last) [last, since] = [received, Date.now()];
    else if (Date.now() - since >= quietMs) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function shopCall(
  stack: ShopRef,
  method: "GET" | "POST",
  path: string,
  port = stack.shop.port,
): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  if (!res.ok) throw new Error(`shop ${path} answered ${res.status}`);
  return await res.json();
}

export interface SlowShopResult extends WebhookResult {
  /** Postbacks per second made for the slow shop meanwhile (each answered after 8 s). */
  slowRate: number;
  /** How many of those the slow shop had received when the fast shop had all of its own. */
  slowReceived: number;
}

/**
 * The webhook → postback latency of the bench shop while another shop answers
 * each postback after 8 s (well inside the timeout) and keeps getting more of
 * them: one slow shop must only slow itself. Then the slow shop answers at
 * once again and its backlog is waited out, so that later phases start clean.
 */
export async function webhookLatencyBesideSlowShop(
  stack: Stack,
  profile: Profile,
  ids: { fast: string[]; slow: string[] },
  driver: Driver,
): Promise<SlowShopResult> {
  const slowRate = profile.slowShopRate;
  const slowFile = `${stack.dir}/slow-shop-ids.json`;
  await Deno.writeTextFile(slowFile, JSON.stringify(ids.slow.slice(0, slowRate * profile.webhookSeconds)));
  await shopCall(stack, "POST", "/reset", stack.slowShop.port);
  const slowLoad = () => settlePaced(stack, slowFile, slowRate);
  const load = { rate: profile.webhookRate, seconds: profile.webhookSeconds };
  const fast = await webhookLatency(stack, profile, ids.fast, driver, load, slowLoad);
  const { received } = await shopCall(stack, "GET", "/stats", stack.slowShop.port) as { received: number };
  // Let the slow shop's backlog drain at once, and wait for it, so the next phase measures only itself.
  await shopCall(stack, "POST", "/delay?ms=0", stack.slowShop.port);
  await awaitQuietShop(stack, 1_000, 60_000, stack.slowShop.port);
  return { ...fast, slowRate, slowReceived: received };
}
