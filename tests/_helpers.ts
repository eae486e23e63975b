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
    PORT: String(port),
    HOSTNAME: "127.0.0.1",
    PUBLIC_BASE_URL: baseUrl,
    DENO_KV_PATH: opts.kvPath ?? ":memory:",
    DEV_ALLOW_LOCAL_URLS: "1",
    DEMO: "0",
    POSTBACK_SCHEDULE: "0,0.2,0.2,0.2,0.2",
    POSTBACK_TIMEOUT_MS: "2000",
    PROVIDER_TIMEOUT_MS: "2000",
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
