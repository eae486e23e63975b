import { analyticsStatus, createAnalytics, startAnalyticsExport } from "./lib/analytics/mod.ts";
import { countDueJobs } from "./lib/db/jobs.ts";
import { readPendingRefunds } from "./lib/db/refunds.ts";
import { DUE_POSTBACKS_CAP, Metrics, PAID_ORPHANS_CAP, PENDING_REFUNDS_CAP } from "./lib/metrics.ts";
import { countUnhandledPaidOrphans } from "./lib/db/paid_orphans.ts";
import type { Config } from "./lib/config.ts";
import type { AppContext } from "./lib/context.ts";
import { initSetting } from "./lib/db/settings.ts";
import { type DemoShop, ensureDemoOperator, ensureDemoShop } from "./lib/demo.ts";
import { randomId } from "./lib/ids.ts";
import { startEmailIndexBackfill } from "./lib/payments/search.ts";
import { startBackfills } from "./lib/backfills/mod.ts";
import { JobRunner } from "./lib/jobs.ts";
import { adapterFor, ProviderRegistry } from "./lib/providers/registry.ts";
import { type BanskyCredentials, DEFAULT_ACCOUNT_ID, type ProviderAccount } from "./lib/accounts/types.ts";
import { Sandbox, type SandboxKnobs } from "./sandbox/bansky.tsx";
import { type ChainKnobs, ChainSimulator } from "./sandbox/chain.ts";
import { ChainClient } from "./lib/invoices/chain.ts";
import { type Resolver, resolveWithDns } from "./lib/relay/url_guard.ts";
import { createApp } from "./routes/mod.tsx";
import { operationWritesSettled } from "./lib/db/operations.ts";
import { stopRateLimiters } from "./lib/auth/rate_limit.ts";
import { closePinnedProxy } from "./lib/relay/pinned_proxy.ts";
import { providerTransport } from "./lib/providers/http1_client.ts";

export interface ServerParts {
  app: ReturnType<typeof createApp>;
  ctx: AppContext;
  runner: JobRunner;
  sandbox?: Sandbox;
  /** The built-in chain simulator, when no chain service is configured. */
  chainSimulator?: ChainSimulator;
  demo?: DemoShop;
  integrations: Record<string, string>;
  close(): Promise<void>;
}

/** Credentials of the embedded sandbox, kept in KV so webhooks in flight still verify after a restart. */
interface SandboxCredentials {
  apiToken: string;
  webhookSecret: string;
}

/**
 * Wires config and KV into the provider, job runner and HTTP app. main.ts adds
 * the listener, queue and cron; tests call this directly.
 */
export async function createServer(
  config: Config,
  kv: Deno.Kv,
  opts: {
    resolve?: Resolver;
    sandboxKnobs?: Partial<SandboxKnobs>;
    chainKnobs?: Partial<ChainKnobs>;
    /** Tests' own certificate authority, trusted for https postback URLs. */
    postbackCaCerts?: string[];
  } = {},
): Promise<ServerParts> {
  // Loopback address for calls to ourselves (the embedded sandbox, the demo shop).
  const selfUrl = `http://127.0.0.1:${config.port}`;
  let sandbox: Sandbox | undefined;
  let credentials: BanskyCredentials;
  if (config.bansky) {
    credentials = { provider: "bansky", ...config.bansky };
  } else {
    const creds = (await initSetting<SandboxCredentials>(kv, "sandbox_credentials", {
      apiToken: randomId("sbx_token"),
      webhookSecret: randomId("sbx_whsec"),
    })).value;
    sandbox = new Sandbox({ ...creds, publicUrl: `${config.publicBaseUrl}/sandbox/bansky`, knobs: opts.sandboxKnobs });
    credentials = { provider: "bansky", apiUrl: `${selfUrl}/sandbox/bansky`, ...creds };
  }
  // The chain service behind invoices: the configured one, or, in zero-config mode only (the Bansky sandbox is the
  // provider), the simulator mounted at /sandbox/chain. Its deposits are made up by whoever asks, so next to a real
  // provider it would let anyone pay an invoice: there, without CHAIN_* settings, invoices are off.
  let chainSimulator: ChainSimulator | undefined;
  let chainCredentials = config.chain;
  if (!chainCredentials && !config.bansky) {
    const creds = (await initSetting<SandboxCredentials>(kv, "chain_sandbox_credentials", {
      apiToken: randomId("chn_token"),
      webhookSecret: randomId("chn_whsec"),
    })).value;
    chainSimulator = new ChainSimulator({ ...creds, knobs: opts.chainKnobs });
    chainCredentials = { apiUrl: `${selfUrl}/sandbox/chain`, ...creds };
  }
  // Every upstream API call (each account's provider, the chain service) goes through one pool of kept-alive
  // connections, or through fetch behind an operator's outbound proxy.
  const upstreamHttp = providerTransport((name) => Deno.env.get(name));
  const chain = chainCredentials &&
    new ChainClient({ ...chainCredentials, timeoutMs: config.providerTimeoutMs, http: upstreamHttp });
  // The environment's Bansky settings (or the sandbox's) are the default account, so existing set-ups keep working.
  const startedAt = Date.now();
  const defaultAccount: ProviderAccount = {
    id: DEFAULT_ACCOUNT_ID,
    provider: "bansky",
    label: config.bansky ? "Default (BANSKY_* settings)" : "Default (built-in sandbox)",
    orgId: config.defaultOrgId,
    active: true,
    currencies: [],
    createdAt: startedAt,
    updatedAt: startedAt,
    credentialsUpdatedAt: startedAt,
  };
  // Kept only when Prometheus may scrape them; the gauges read KV at scrape time through the context built below.
  const metrics = config.metricsToken
    ? new Metrics({
      duePostbacks: () => countDueJobs(kv, "postback", Date.now(), DUE_POSTBACKS_CAP),
      pendingRefunds: () => readPendingRefunds(kv, PENDING_REFUNDS_CAP),
      unhandledPaidOrphans: () => countUnhandledPaidOrphans(kv, PAID_ORPHANS_CAP),
      export: async () => ctx.analytics ? await analyticsStatus(ctx) : null,
      now: () => Date.now(),
    })
    : undefined;
  const adapterOpts = { timeoutMs: config.providerTimeoutMs, http: upstreamHttp };
  const providers = new ProviderRegistry(
    kv,
    { account: defaultAccount, adapter: await adapterFor(credentials, adapterOpts) },
    { ...adapterOpts, now: () => Date.now(), metrics },
  );

  const sessionSecret = config.sessionSecret ??
    (await initSetting(kv, "session_secret", randomId("ses_secret") + randomId("x"))).value;
  // Kept apart from the session secret so that rotating that one does not orphan the payments named by shops.
  const paymentIdSecret = (await initSetting(kv, "payment_id_key", randomId("pid_key") + randomId("x"))).value;
  const ctx: AppContext = {
    kv,
    config,
    providers,
    resolve: opts.resolve ?? resolveWithDns,
    now: () => Date.now(),
    sessionKey: new TextEncoder().encode(sessionSecret),
    paymentIdKey: new TextEncoder().encode(paymentIdSecret),
    kick: () => {},
    chain,
    analytics: await createAnalytics(config),
    metrics,
    postbackCaCerts: opts.postbackCaCerts,
  };
  const runner = new JobRunner(ctx);
  ctx.kick = runner.kick;
  // The start-up sweep (main.ts) and the queue run it from here on.
  await startAnalyticsExport(ctx);
  // Payments stored before the email index existed: guarded by its progress record, so once done it is one read.
  const emailIndexBackfill = await startEmailIndexBackfill(kv);
  // Checks and indexes that records stored before this version lack (lib/backfills/): the same guard, so an operator
  // who upgrades in place need not remember them, and a start-up once they are done costs a read each.
  const backfills = await startBackfills(ctx);

  const demo = config.demo ? await ensureDemoShop(ctx) : undefined;
  if (config.demo) await ensureDemoOperator(ctx);
  const app = createApp(ctx, { sandbox, chainSimulator, demo: demo ? { shop: demo, selfUrl } : undefined });
  const integrations = {
    provider: config.bansky
      ? `Bansky at ${new URL(config.bansky.apiUrl).host}`
      : "built-in Bansky sandbox at /sandbox/bansky",
    chain: config.chain
      ? `chain service at ${new URL(config.chain.apiUrl).host}`
      : chainSimulator
      ? "built-in chain simulator at /sandbox/chain"
      : "off: crypto invoices need CHAIN_API_URL, CHAIN_API_TOKEN and CHAIN_WEBHOOK_SECRET next to a real provider",
    jobs: config.jobsQueue ? "KV queue + cron sweep" : "cron sweep only (JOBS_QUEUE=off)",
    localUrls: config.allowLocalUrls ? "allowed (development)" : "refused",
    demo: demo ? "on at /demo" : "off",
    bigquery: ctx.analytics
      ? `on (${ctx.analytics.sink.target}, email ${config.analytics.email})`
      : "off (set BIGQUERY_PROJECT, BIGQUERY_DATASET, BIGQUERY_LOCATION and BIGQUERY_CREDENTIALS)",
    metabase: config.metabase
      ? `on (signed embeds from ${new URL(config.metabase.siteUrl).host})`
      : "off (set METABASE_SITE_URL, METABASE_SECRET_KEY and both dashboard ids; built-in charts instead)",
    metrics: metrics ? "on at /metrics (bearer METRICS_TOKEN)" : "off (set METRICS_TOKEN)",
  };
  return {
    app,
    ctx,
    runner,
    sandbox,
    chainSimulator,
    demo,
    integrations,
    async close() {
      sandbox?.close();
      chainSimulator?.close();
      stopRateLimiters(kv);
      await Promise.all([runner.stop(), emailIndexBackfill.stop(), backfills.stop()]);
      upstreamHttp.close();
      // After the relay's last attempts, which may use it.
      await closePinnedProxy(ctx);
      // Provider calls' log entries are written without their callers waiting: they must land before the store closes.
      await operationWritesSettled(kv);
    },
  };
}
