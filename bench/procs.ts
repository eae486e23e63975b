/**
 * Subprocess plumbing for the benchmark: every server under test, the floor,
 * the sandbox, the shop and the load generator run as their own Deno process,
 * so none shares an event loop with another. Every process started here is
 * remembered and stopped by `stopAll`, whatever happens to the run.
 */

import { median } from "./stats.ts";

/** The Deno binary from package.json; paths are relative to the repository root (run.ts changes there). */
export const DENO = "./node_modules/deno/deno";

export interface Proc {
  name: string;
  pid: number;
  logPath: string;
  /** Peak resident set size so far (VmHWM), in MB (10^6 bytes); null once the process is gone or off Linux. */
  peakRssMB(): number | null;
  stop(): Promise<void>;
}

const running = new Set<Proc>();

/**
 * The only variables the subprocesses inherit: where Deno keeps its cache.
 * Anything else from the caller's shell (PORT, JOBS_QUEUE, HTTP_PROXY, …)
 * could change what is measured, so every process gets exactly what the
 * bench gives it.
 */
const INHERITED = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"];

export function childEnv(env: Record<string, string>): Record<string, string> {
  const base: Record<string, string> = { NO_COLOR: "1" };
  for (const k of INHERITED) {
    const v = Deno.env.get(k);
    if (v !== undefined) base[k] = v;
  }
  return { ...base, ...env };
}

export { freePort } from "../fixtures/app.ts";

/**
 * Starts `deno run -A <script>` with `env`. Output goes to a log file rather
 * than a pipe nobody reads: a full pipe would block the server mid-benchmark.
 */
export function startDeno(
  name: string,
  script: string,
  env: Record<string, string>,
  logDir: string,
  args: string[] = [],
  runFlags: string[] = [],
): Promise<Proc> {
  return startProcess(name, DENO, ["run", ...runFlags, "-A", script, ...args], env, logDir);
}

/** Starts any program (the peer's Node worker, Redis) like `startDeno`: logged to a file, stopped by `stopAll`. */
export async function startProcess(
  name: string,
  command: string,
  args: string[],
  env: Record<string, string>,
  logDir: string,
): Promise<Proc> {
  const logPath = `${logDir}/${name}.log`;
  const child = new Deno.Command(command, {
    args,
    env: childEnv(env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Two append-mode handles on one file: each write lands whole, so lines from stdout and stderr do not tear.
  // A plain copy loop writes each chunk as it comes (pipeTo into FsFile.writable held output back until exit).
  for (const stream of [child.stdout, child.stderr]) {
    const file = await Deno.open(logPath, { append: true, create: true });
    (async () => {
      for await (const chunk of stream) {
        for (let n = 0; n < chunk.length;) n += await file.write(chunk.subarray(n));
      }
    })().catch(() => {}).finally(() => file.close());
  }
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const proc: Proc = {
    name,
    pid: child.pid,
    logPath,
    peakRssMB: () => (exited ? null : readPeakRssMB(child.pid)),
    async stop() {
      running.delete(proc);
      if (exited) return;
      try {
        child.kill("SIGTERM");
      } catch {
        // It exited between the check and the signal.
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }, 3_000);
      await status;
      clearTimeout(timer);
    },
  };
  running.add(proc);
  return proc;
}

/** Stops every process started by `startDeno` or `startProcess` that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()));
}

/** VmHWM from /proc/<pid>/status: the most physical memory the process has held at once. */
export function readPeakRssMB(pid: number): number | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = Number(status.match(/^VmHWM:\s+(\d+)\s+kB/m)?.[1]);
    // The kernel's "kB" is KiB.
    return Number.isFinite(kb) ? (kb * 1024) / 1e6 : null;
  } catch {
    return null;
  }
}

/**
 * CPU accounting, to tell a disturbed run from a clean one: the machine's busy
 * time (from /proc/stat) against the time of this process, the children it
 * has reaped (cutime/cstime: every load generator run) and the servers it
 * still runs. The difference is what other programs took while we measured.
 */
export interface CpuSample {
  at: number;
  machineTicks: number;
  ourTicks: number;
}

export function cpuSample(): CpuSample | null {
  try {
    const cpu = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    const machineTicks = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + (cpu[7] ?? 0);
    let ourTicks = statTicks("self", true);
    for (const p of running) ourTicks += statTicks(String(p.pid), false);
    return { at: performance.now(), machineTicks, ourTicks };
  } catch {
    return null;
  }
}

/** Share of all cores (0..1) that processes other than the bench's used between two samples. */
export function foreignShare(a: CpuSample | null, b: CpuSample | null): number | null {
  if (!a || !b || b.at <= a.at) return null;
  // /proc counts in USER_HZ, 100 per second on Linux.
  const capacity = ((b.at - a.at) / 1000) * 100 * navigator.hardwareConcurrency;
  const foreign = (b.machineTicks - a.machineTicks) - (b.ourTicks - a.ourTicks);
  return Math.min(1, Math.max(0, foreign / capacity));
}

/**
 * Waits for the machine to be quiet before a measurement: until other programs
 * use less than `threshold` of it over half a second. Each wait is capped, and
 * so is the total, so a machine that never quiets down costs a bounded delay
 * (the report then shows how busy it was).
 */
export class QuietGate {
  waitedMs = 0;
  constructor(
    private readonly budgetMs: number,
    private readonly perWaitMs: number,
    private readonly threshold = 0.1,
  ) {}

  async settle(): Promise<void> {
    const start = performance.now();
    const limit = Math.min(this.perWaitMs, this.budgetMs - this.waitedMs);
    if (limit <= 0) return;
    for (;;) {
      const before = cpuSample();
      await new Promise((r) => setTimeout(r, 500));
      const share = foreignShare(before, cpuSample());
      if (share === null || share < this.threshold || performance.now() - start >= limit) break;
    }
    this.waitedMs += performance.now() - start;
  }
}

/** Synchronous writes the bench times on its machine (syncWriteMicros), and the page says it took the median of. */
export const SYNC_WRITES_TIMED = 200;

/**
 * How long one synchronous 4 KiB write takes in `dir` (median of `count`, in µs): the write a KV commit waits for.
 * A floor that commits once per request waits for one per request, whereas the app's group commits share one, so
 * this bounds how fast the write rows' floors can go on the machine. The writes append, as a write-ahead log does.
 */
export function syncWriteMicros(dir: string, count = SYNC_WRITES_TIMED): number {
  const path = `${dir}/sync-write-probe`;
  const block = new Uint8Array(4096).fill(1);
  const times: number[] = [];
  const file = Deno.openSync(path, { write: true, create: true });
  try {
    for (let i = 0; i < count; i++) {
      const start = performance.now();
      file.writeSync(block);
      file.syncDataSync();
      times.push((performance.now() - start) * 1000);
    }
  } finally {
    file.close();
    Deno.removeSync(path);
  }
  return median(times);
}

/** CPU time a running process has used so far, all threads, in ms. */
export function cpuTimeMs(pid: number): number {
  // USER_HZ is 100 on Linux: a tick is 10 ms.
  return statTicks(String(pid), false) * 10;
}

/** Where a process's CPU goes: its main (JavaScript) thread, its KV store threads, V8's helpers (GC, compiler), the rest. */
export type ThreadKind = "main" | "store" | "v8" | "other";
export const THREAD_KINDS: readonly ThreadKind[] = ["main", "store", "v8", "other"];

/**
 * CPU time (ms) of a process's live threads, by kind, told apart by their names: the main thread has the process's
 * id, Deno KV's SQLite threads are "sw-0" (one per open connection), V8's helpers (GC, compiler) "V8 DefaultWorke".
 * Threads that ended are not counted; the bench's processes keep theirs.
 */
export function cpuByThreadMs(pid: number): Record<ThreadKind, number> {
  const ms: Record<ThreadKind, number> = { main: 0, store: 0, v8: 0, other: 0 };
  let tids: string[] = [];
  try {
    tids = [...Deno.readDirSync(`/proc/${pid}/task`)].map((e) => e.name);
  } catch {
    return ms;
  }
  for (const tid of tids) {
    let comm = "";
    try {
      comm = Deno.readTextFileSync(`/proc/${pid}/task/${tid}/comm`).trim();
    } catch {
      continue;
    }
    const kind: ThreadKind = tid === String(pid)
      ? "main"
      : comm.startsWith("sw-")
      ? "store"
      : comm.startsWith("V8 ")
      ? "v8"
      : "other";
    ms[kind] += statTicks(`${pid}/task/${tid}`, false) * 10;
  }
  return ms;
}

function statTicks(pid: string, withReapedChildren: boolean): number {
  try {
    const raw = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = raw.slice(raw.lastIndexOf(")") + 2).split(" ");
    // Fields 14-17 of stat(5), counted from "state" as index 0: utime stime cutime cstime.
    return Number(f[11]) + Number(f[12]) + (withReapedChildren ? Number(f[13]) + Number(f[14]) : 0);
  } catch {
    return 0;
  }
}

/** Polls `url` until it answers at all (any status), or throws after `timeoutMs` with the process's log. */
export async function waitForHttp(url: string, proc: Proc, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { redirect: "manual" });
      await res.body?.cancel();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${proc.name} did not come up at ${url}\n${await tail(proc.logPath)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/**
 * Runs a Deno script to completion and parses the JSON it prints on stdout
 * (the load generator, the seeder). It counts as running until it exits, so
 * an interrupted benchmark stops it too.
 */
export function runDenoJson<T>(script: string, args: string[], env: Record<string, string> = {}): Promise<T> {
  return runJson<T>(DENO, ["run", "-A", script, ...args], env, script);
}

/** Runs any program to completion like `runDenoJson` (the peer's Node producer) and parses its JSON stdout. */
export async function runJson<T>(
  command: string,
  args: string[],
  env: Record<string, string> = {},
  /** What failures and the process list call it. */
  script = command,
): Promise<T> {
  const child = new Deno.Command(command, {
    args,
    env: childEnv(env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const handle: Proc = {
    name: script,
    pid: child.pid,
    logPath: "",
    peakRssMB: () => readPeakRssMB(child.pid),
    async stop() {
      running.delete(handle);
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
    },
  };
  running.add(handle);
  const out = await child.output().finally(() => running.delete(handle));
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${script} failed (${out.code}):\n${new TextDecoder().decode(out.stderr)}\n${stdout}`);
  }
  return JSON.parse(stdout) as T;
}

/** The last lines of a log, to explain a failure before the temp dir is removed. */
export async function tail(path: string, lines = 30): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** The V8 flags of `deno task start` (deno.json), so the bench runs the app as it is started for real. */
export function startTaskV8Flags(): string[] {
  const tasks = JSON.parse(Deno.readTextFileSync("deno.json")).tasks as Record<string, string>;
  return tasks.start.match(/--v8-flags=\S+/g) ?? [];
}
