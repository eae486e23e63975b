/**
 * Shared set-up for flow tests: the app on a loopback port with a fresh
 * in-memory KV, the Bansky sandbox (embedded or standalone on its own port)
 * and a local shop that records the postbacks it receives.
 */
import { type Config, loadConfig } from "../lib/config.ts";
import { createShop } from "../lib/shops.ts";
import { Sandbox, type SandboxKnobs } from "../lib/providers/sandbox.tsx";
import { createServer, type ServerParts } from "../server.ts";
import type { Resolver } from "../lib/relay/url_guard.ts";

export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The environment every test app needs: bound to loopback on `port`, its KV at `kvPath`, local URLs allowed, no demo. */
export function loopbackAppEnv(port: number, kvPath: string): Record<string, string> {
  return {
    PORT: String(port),
    HOSTNAME: "127.0.0.1",
    PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    DENO_KV_PATH: kvPath,
    DEV_ALLOW_LOCAL_URLS: "1",
    DEMO: "0",
  };
}

export interface TestShop {
  id: string;
  apiKey: string;
  webhookSecret: string;
}

export interface TestApp {
  baseUrl: string;
  config: Config;
  server: ServerParts;
  kv: Deno.Kv;
  shop: TestShop;
  /** The standalone sandbox, when the test asked for one. */
  sandbox: Sandbox;
  sandboxUrl: string;
  close(): Promise<void>;
}

export interface TestAppOptions {
  env?: Record<string, string>;
  knobs?: Partial<SandboxKnobs>;
  /** Run the sandbox on its own port and configure it as Bansky (a real network hop). */
  standaloneSandbox?: boolean;
  allowedHosts?: string[];
  kvPath?: string;
  /** A stand-in DNS for postback hosts (tests of the address guard). */
  resolve?: Resolver;
}

export const SANDBOX_TOKEN = "test-sandbox-token";
export const SANDBOX_SECRET = "test-sandbox-webhook-secret";

export async function startTestApp(opts: TestAppOptions = {}): Promise<TestApp> {
  const port = freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  let standalone: { sandbox: Sandbox; server: Deno.HttpServer; url: string } | undefined;
  const env: Record<string, string> = {
    ...loopbackAppEnv(port, opts.kvPath ?? ":memory:"),
    POSTBACK_SCHEDULE: "0,0.2,0.2,0.2,0.2",
    POSTBACK_TIMEOUT_MS: "2000",
    PROVIDER_TIMEOUT_MS: "2000",
    PASSWORD_ITERATIONS: "1000",
  };
  if (opts.standaloneSandbox) {
    const sandboxPort = freePort();
    const url = `http://127.0.0.1:${sandboxPort}`;
    const sandbox = new Sandbox({
      apiToken: SANDBOX_TOKEN,
      webhookSecret: SANDBOX_SECRET,
      publicUrl: url,
      knobs: opts.knobs,
    });
    const server = Deno.serve({ hostname: "127.0.0.1", port: sandboxPort, onListen() {} }, sandbox.app.fetch);
    standalone = { sandbox, server, url };
    Object.assign(env, { BANSKY_API_URL: url, BANSKY_API_TOKEN: SANDBOX_TOKEN, BANSKY_WEBHOOK_SECRET: SANDBOX_SECRET });
  }
  const config = loadConfig({ ...env, ...opts.env });
  const kv = await Deno.openKv(config.kvPath);
  const server = await createServer(config, kv, { sandboxKnobs: opts.knobs, resolve: opts.resolve });
  if (config.jobsQueue) kv.listenQueue(server.runner.onQueueMessage);
  const http = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, server.app.fetch);
  const { shop, apiKey } = await createShop(kv, { name: "Test shop", allowedHosts: opts.allowedHosts ?? [] }, {
    allowLocalUrls: true,
    now: Date.now(),
  });
  const sandbox = standalone?.sandbox ?? server.sandbox!;
  return {
    baseUrl,
    config,
    server,
    kv,
    shop: { id: shop.id, apiKey, webhookSecret: shop.webhookSecret },
    sandbox,
    sandboxUrl: standalone?.url ?? `${baseUrl}/sandbox/bansky`,
    async close() {
      await server.close();
      await http.shutdown();
      if (standalone) {
        standalone.sandbox.close();
        await standalone.server.shutdown();
      }
      kv.close();
    },
  };
}

export interface ReceivedPostback {
  headers: Headers;
  body: string;
  at: number;
}

/** A local shop: records every postback and answers with whatever `respond` says (200 by default). */
export function startShopReceiver(
  respond: (n: number, req: Request) => Response | Promise<Response> = () => new Response("ok"),
) {
  const port = freePort();
  const received: ReceivedPostback[] = [];
  let n = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async (req) => {
    const body = await req.text();
    received.push({ headers: req.headers, body, at: Date.now() });
    return await respond(++n, req);
  });
  return {
    url: `http://127.0.0.1:${port}/postback`,
    received,
    close: () => server.shutdown(),
  };
}

export function paymentBody(overrides: Record<string, unknown> = {}) {
  return {
    email: "buyer@example.com",
    amount: 1000,
    currency: "EUR",
    successUrl: "http://127.0.0.1:9/shop/success",
    errorUrl: "http://127.0.0.1:9/shop/error",
    ...overrides,
  };
}

/** POSTs to init-payment with the shop's key; returns status and parsed body. */
export async function callInit(
  app: TestApp,
  body: unknown,
  init: { headers?: Record<string, string>; key?: string; raw?: string } = {},
) {
  const res = await fetch(`${app.baseUrl}/api/v1/init-payment`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${init.key ?? app.shop.apiKey}`,
      "content-type": "application/json",
      ...init.headers,
    },
    body: init.raw ?? JSON.stringify(body),
  });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

/** Follows our pay wrapper to the sandbox and settles the payment as the buyer would; returns the buyer's final stop. */
export async function buyerSettles(payUrl: string, outcome: "paid" | "declined"): Promise<string> {
  const toProvider = await fetch(payUrl, { redirect: "manual" });
  await toProvider.body?.cancel();
  const providerPage = toProvider.headers.get("location")!;
  const settled = await fetch(`${providerPage}/${outcome}`, { method: "POST", redirect: "manual" });
  await settled.body?.cancel();
  const backToUs = settled.headers.get("location")!;
  const toShop = await fetch(backToUs, { redirect: "manual" });
  await toShop.body?.cancel();
  return toShop.headers.get("location")!;
}

/** Polls until `check` returns a value that is not undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The repository root, where main.ts, cli/ and deno.json live (subprocesses run there). */
const REPO_ROOT = new URL("..", import.meta.url);

export interface AppProcessExit {
  code: number;
  signal: Deno.Signal | null;
  stderr: string;
}

/** The app as a real process (`deno run -A main.ts`), for tests that kill and restart it. */
export interface AppProcess {
  child: Deno.ChildProcess;
  /** Settles when the process has exited, with its exit status and everything it wrote to stderr. */
  exited: Promise<AppProcessExit>;
}

/** Starts main.ts in a subprocess with `env` added to ours; stdout and stderr are collected, never inherited. */
export function spawnApp(env: Record<string, string>): AppProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts"],
    cwd: REPO_ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const exited = child.output().then((o) => ({
    code: o.code,
    signal: o.signal,
    stderr: new TextDecoder().decode(o.stderr),
  }));
  return { child, exited };
}

/** Sends `signal` (SIGKILL unless told) if the process still runs, and waits for it to exit. */
export async function stopApp(app: AppProcess, signal: Deno.Signal = "SIGKILL"): Promise<AppProcessExit> {
  try {
    app.child.kill(signal);
  } catch {
    // Already exited.
  }
  return await app.exited;
}

/** Polls `${baseUrl}/healthz` until it answers 200; fails early, with its stderr, if the process exits first. */
export async function waitHealthy(baseUrl: string, app: AppProcess, timeoutMs = 15_000): Promise<void> {
  let exit: AppProcessExit | undefined;
  app.exited.then((e) => (exit = e));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exit) throw new Error(`the app exited (code ${exit.code}) before answering /healthz:\n${exit.stderr}`);
    try {
      const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`the app did not answer ${baseUrl}/healthz within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Creates a shop with the operator CLI (`cli/shop.ts create`) against the KV in `env.DENO_KV_PATH`. */
export async function createShopWithCli(
  env: Record<string, string>,
  name: string,
  postbackUrl: string,
): Promise<TestShop> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/shop.ts", "create", "--name", name, "--postback-url", postbackUrl],
    cwd: REPO_ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`cli/shop.ts create failed (code ${out.code}):\n${stderr}`);
  const created = JSON.parse(new TextDecoder().decode(out.stdout));
  return { id: created.shopId, apiKey: created.apiKey, webhookSecret: created.webhookSecret };
}
