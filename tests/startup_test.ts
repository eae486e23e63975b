import assert from "node:assert/strict";

const REPO_ROOT = new URL("..", import.meta.url);
const isRoot = Deno.uid() === 0;
/** `nobody`: root ignores file modes, so the read-only case runs the app as a user the modes apply to. */
const NOBODY = 65534;

/** Runs main.ts until it exits (or 20 s pass) and returns its exit code and stderr. */
async function startOnce(env: Record<string, string>, asUser?: number, preload?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...(preload ? ["--preload", preload] : []), "main.ts"],
    cwd: REPO_ROOT,
    env: { PORT: "0", BIND_ADDRESS: "127.0.0.1", DEMO: "0", LOG_LEVEL: "warn", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(asUser === undefined ? {} : { uid: asUser, gid: asUser }),
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const out = await child.output();
  clearTimeout(timer);
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

function assertOneClearLine(result: { code: number; stderr: string }, path: string) {
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line, not a stack trace:\n${result.stderr}`);
  assert.match(lines[0], /DENO_KV_PATH/);
  assert.ok(lines[0].includes(path), lines[0]);
  assert.doesNotMatch(result.stderr, /\bat .*\.ts:\d+/);
}

Deno.test("[startup] a read-only KV file stops start-up with one line naming DENO_KV_PATH", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/kv.sqlite3`;
    const kv = await Deno.openKv(path);
    await kv.set(["seed"], 1);
    kv.close();
    for await (const f of Deno.readDir(dir)) await Deno.chmod(`${dir}/${f.name}`, 0o444);
    await Deno.chmod(dir, 0o555);
    // The child needs a cache it may write when it runs as nobody.
    const denoDir = await Deno.makeTempDir();
    if (isRoot) await Deno.chown(denoDir, NOBODY, NOBODY);
    const result = await startOnce({ DENO_KV_PATH: path, DENO_DIR: denoDir }, isRoot ? NOBODY : undefined);
    await Deno.remove(denoDir, { recursive: true });
    assertOneClearLine(result, path);
    assert.match(result.stderr, /read-only/);
  } finally {
    await Deno.chmod(dir, 0o755);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[startup] a KV path whose folder cannot be created stops start-up with one line", async () => {
  // /proc refuses new entries even to root.
  const path = "/proc/aimbrellapay-test/kv.sqlite3";
  const result = await startOnce({ DENO_KV_PATH: path });
  assertOneClearLine(result, path);
  assert.match(result.stderr, /cannot be created or written/);
});

Deno.test("[startup] a KV path that is a directory stops start-up with one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const result = await startOnce({ DENO_KV_PATH: dir });
    assertOneClearLine(result, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[startup] Deno.cron is registered before start-up can stop, as Deploy's deploy-time scan needs", async () => {
  // Stands in for Deploy's scan: a module run before main.ts that reports each cron registration.
  const preload = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      preload,
      `Object.defineProperty(Deno, "cron", { value: (name: string) => console.error("cron registered: " + name) });`,
    );
    const badConfig = await startOnce({ PORT: "eighty" }, undefined, preload);
    assert.equal(badConfig.code, 1);
    assert.match(badConfig.stderr, /^cron registered: run due background jobs\nInvalid configuration/);
    const badKv = await startOnce({ DENO_KV_PATH: "/proc/aimbrellapay-test/kv.sqlite3" }, undefined, preload);
    assert.equal(badKv.code, 1);
    assert.match(badKv.stderr, /^cron registered: run due background jobs\ncannot open the KV file/);
  } finally {
    await Deno.remove(preload);
  }
});

Deno.test("[startup] zero-config in a container stays on loopback: a HOSTNAME that names the machine is not listened on", async () => {
  // Docker sets HOSTNAME to the container's id, Kubernetes to the pod's name; both resolve to the container's network
  // address, where the built-in sandbox would mark payments paid for anyone who reached it.
  const dir = await Deno.makeTempDir();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts"],
    cwd: REPO_ROOT,
    env: { PORT: "0", HOSTNAME: "3f4e5a6b7c8d", DEMO: "0", LOG_LEVEL: "info", DENO_KV_PATH: `${dir}/kv.sqlite3` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    const lines = readLines(child.stdout);
    let listening: { on: string } | undefined;
    for await (const line of lines) {
      if (line.includes("AimbrellaPay listening")) {
        listening = JSON.parse(line);
        break;
      }
    }
    assert.ok(listening, "the server started");
    assert.match(listening.on, /^127\.0\.0\.1:\d+$/);
    const res = await fetch(`http://${listening.on}/healthz`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
    child.kill("SIGTERM");
    const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
    const warning = stderr.split("\n").find((l) => l.includes("HOSTNAME names a machine"));
    assert.ok(warning, stderr);
    assert.match(warning, /BIND_ADDRESS=0\.0\.0\.0/);
    assert.match(warning, /3f4e5a6b7c8d/);
    await lines.return(undefined);
    await child.status;
  } finally {
    clearTimeout(timer);
    await Deno.remove(dir, { recursive: true });
  }
});

/** A child's output, line by line. */
async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  const decoder = new TextDecoder();
  for await (const bytes of stream) {
    const parts = (rest + decoder.decode(bytes, { stream: true })).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest) yield rest;
}
