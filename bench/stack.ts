/**
 * Starts the processes under test on loopback: the standalone Bansky sandbox,
 * the bench shop's postback receiver, the floor server and the app itself
 * (main.ts, exactly as deployed, pointed at the sandbox as if it were Bansky).
 */
import { childEnv, DENO, freePort, type Proc, startDeno, startTaskV8Flags, waitForHttp } from "./procs.ts";

/** Shared with the sandbox: the app talks to it as it would to Bansky. */
const SANDBOX_TOKEN = "bench-sandbox-token";
const SANDBOX_SECRET = "bench-sandbox-webhook-secret";
const CHAIN_TOKEN = "bench-chain-token";
const CHAIN_SECRET = "bench-chain-webhook-secret";

/**
 * Seconds before each postback attempt in the bench: retries a second apart, so a failed attempt shows up as latency
 * within the run instead of as loss. The BullMQ peer's jobs get the same attempts and spacing.
 */
export const BENCH_POSTBACK_SCHEDULE_S = [0, 1, 1, 1, 1, 1];

export interface Stack {
  dir: string;
  sandbox: { proc: Proc; port: number; token: string };
  shop: { proc: Proc; port: number; postbackUrl: string; shopId: string; apiKey: string };
  /** A second receiver that answers each postback after 8 s (one shop's slowness must not hold up others). */
  slowShop: { proc: Proc; port: number; postbackUrl: string };
  floor: { proc: Proc; port: number };
  /** The same floor calling the sandbox with the app's HTTP client instead of fetch (init-payment's second row). */
  floorSameClient: { proc: Proc; port: number };
  app: { proc: Proc; port: number };
  /** Starts the app again on the same port and KV file once it is stopped (for the drain); resolves when it answers. */
  startApp(): Promise<Proc>;
  /** Runs an operator command (cli/SCRIPT.ts) against the app's store, as an operator would beside the running app. */
  operatorCommand(script: string, ...args: string[]): Promise<string>;
}

export async function startStack(dir: string): Promise<Stack> {
  const sandboxPort = freePort();
  const sandboxUrl = `http://127.0.0.1:${sandboxPort}`;
  const shopPort = freePort();
  const slowShopPort = freePort();
  const floorPort = freePort();
  const floorSameClientPort = freePort();
  const appPort = freePort();
  const postbackUrl = `http://127.0.0.1:${shopPort}/postback`;

  const appEnv: Record<string, string> = {
    PORT: String(appPort),
    BIND_ADDRESS: "127.0.0.1",
    PUBLIC_BASE_URL: `http://127.0.0.1:${appPort}`,
    DENO_KV_PATH: `${dir}/app.sqlite3`,
    BANSKY_API_URL: sandboxUrl,
    BANSKY_API_TOKEN: SANDBOX_TOKEN,
    BANSKY_WEBHOOK_SECRET: SANDBOX_SECRET,
    // The sandbox process also serves the chain simulator, the address service behind invoices.
    CHAIN_API_URL: `${sandboxUrl}/chain`,
    CHAIN_API_TOKEN: CHAIN_TOKEN,
    CHAIN_WEBHOOK_SECRET: CHAIN_SECRET,
    DEV_ALLOW_LOCAL_URLS: "1",
    LOG_LEVEL: "warn",
    POSTBACK_SCHEDULE: BENCH_POSTBACK_SCHEDULE_S.join(","),
    // One bench shop sends far more than a real shop may; the per-shop limit would otherwise measure itself.
    RATE_LIMIT_PER_MINUTE: "1000000000",
    // The init rounds leave thousands of payments pending; their first re-checks at the provider (2 min after
    // creation by default) would run under whichever phase comes then. An hour puts them after the run.
    PAYMENT_CHECK_SCHEDULE: "3600,21600",
  };

  const [sandbox, shop, slowShop, floor, floorSameClient] = await Promise.all([
    startDeno("sandbox", "sandbox/main.ts", {
      SANDBOX_PORT: String(sandboxPort),
      SANDBOX_HOSTNAME: "127.0.0.1",
      SANDBOX_PUBLIC_URL: sandboxUrl,
      CHAIN_SANDBOX_API_TOKEN: CHAIN_TOKEN,
      CHAIN_SANDBOX_WEBHOOK_SECRET: CHAIN_SECRET,
      SANDBOX_API_TOKEN: SANDBOX_TOKEN,
      SANDBOX_WEBHOOK_SECRET: SANDBOX_SECRET,
    }, dir),
    startDeno("shop", "bench/shop.ts", { SHOP_PORT: String(shopPort) }, dir),
    startDeno("slow-shop", "bench/shop.ts", { SHOP_PORT: String(slowShopPort), SHOP_DELAY_MS: "8000" }, dir),
    startDeno("floor", "bench/floor.ts", {
      FLOOR_PORT: String(floorPort),
      FLOOR_KV_PATH: `${dir}/floor.sqlite3`,
      SANDBOX_URL: sandboxUrl,
      SANDBOX_TOKEN: SANDBOX_TOKEN,
    }, dir),
    startDeno("floor-same-client", "bench/floor.ts", {
      FLOOR_PORT: String(floorSameClientPort),
      FLOOR_KV_PATH: `${dir}/floor-same-client.sqlite3`,
      SANDBOX_URL: sandboxUrl,
      SANDBOX_TOKEN: SANDBOX_TOKEN,
      FLOOR_PROVIDER_CLIENT: "http1",
    }, dir),
  ]);
  const created = await createShop(appEnv, postbackUrl);

  const startApp = async () => {
    const proc = await startDeno("app", "main.ts", appEnv, dir, [], startTaskV8Flags());
    await waitForHttp(`http://127.0.0.1:${appPort}/healthz`, proc);
    return proc;
  };
  const app = await startApp();
  await Promise.all([
    waitForHttp(`${sandboxUrl}/knobs`, sandbox),
    waitForHttp(`http://127.0.0.1:${shopPort}/stats`, shop),
    waitForHttp(`http://127.0.0.1:${slowShopPort}/stats`, slowShop),
    waitForHttp(`http://127.0.0.1:${floorPort}/`, floor),
    waitForHttp(`http://127.0.0.1:${floorSameClientPort}/`, floorSameClient),
  ]);

  const stack: Stack = {
    dir,
    sandbox: { proc: sandbox, port: sandboxPort, token: SANDBOX_TOKEN },
    shop: { proc: shop, port: shopPort, postbackUrl, ...created },
    slowShop: { proc: slowShop, port: slowShopPort, postbackUrl: `http://127.0.0.1:${slowShopPort}/postback` },
    floor: { proc: floor, port: floorPort },
    floorSameClient: { proc: floorSameClient, port: floorSameClientPort },
    app: { proc: app, port: appPort },
    async startApp() {
      stack.app.proc = await startApp();
      return stack.app.proc;
    },
    // The store exists by now: a command that found none (a wrong path) would fail rather than make an empty one.
    operatorCommand: (script, ...args) => runCli({ ...appEnv, NEW_DATABASE: "0" }, script, ...args),
  };
  return stack;
}

/** The operator the bench's new store gets first (so without --actor), who then adds the bench shop. */
const BENCH_OPERATOR = "bench-ops@example.com";

/**
 * The operator's way to add a shop, as the docs give it: the store's first operator (cli/operator.ts create), then
 * the shop under their --actor (cli/shop.ts create), with its default postback URL at the bench shop.
 */
async function createShop(env: Record<string, string>, postbackUrl: string) {
  await runCli(env, "operator", "create", BENCH_OPERATOR);
  const text = await runCli(
    env,
    "shop",
    "create",
    "--name",
    "Bench shop",
    "--postback-url",
    postbackUrl,
    "--actor",
    BENCH_OPERATOR,
  );
  const { shopId, apiKey } = JSON.parse(text) as { shopId: string; apiKey: string };
  return { shopId, apiKey };
}

/** Runs an operator command (cli/SCRIPT.ts) against the bench's store: its output, or it throws saying why. */
async function runCli(env: Record<string, string>, script: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(DENO, {
    args: ["run", "-A", `cli/${script}.ts`, ...args],
    // The bench's store is new when the operator and shop are made, before the app first starts (NEW_DATABASE=1);
    // later commands are given "0".
    env: childEnv({ NEW_DATABASE: "1", ...env }),
    clearEnv: true,
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`cli/${script}.ts ${args[0]} failed:\n${new TextDecoder().decode(out.stderr)}${text}`);
  }
  return text;
}
