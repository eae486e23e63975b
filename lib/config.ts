import { z } from "zod";
import { classifyAddress } from "./relay/url_guard.ts";
import { isKvConnectUrl } from "./db/kv.ts";

/**
 * Every environment variable the app reads, in one schema. `loadConfig` is the
 * only reader of the environment; nothing reads env at import time, so tests
 * build their own Config.
 */
const flag = z.enum(["0", "1", "true", "false"]).transform((v) => v === "1" || v === "true");
const optionalText = z.string().trim().min(1).optional();

const EnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8000),
  // Where the server listens. Not HOSTNAME alone: Docker and Kubernetes set that to the machine's own name, whose
  // address is the network's (see listenAddress).
  BIND_ADDRESS: z.string().trim().min(1).optional(),
  HOSTNAME: z.string().min(1).optional(),
  // Every URL we hand out is built on it by adding a path: a query, a fragment or credentials would break them all.
  PUBLIC_BASE_URL: z.url({ protocol: /^https?$/ }).refine((u) => {
    const url = new URL(u);
    return !url.search && !url.hash && !url.username && !url.password;
  }, "must be an address without a query (?), a fragment (#) or credentials").optional(),
  DENO_KV_PATH: z.string().min(1).optional(),
  // Set by Deno Deploy: there KV is the platform's database, queues are off and zero-config mode is refused.
  DENO_DEPLOYMENT_ID: z.string().optional(),
  // Set by Deno Deploy: "production", "git-branch/<name>" or "preview/<id>"; each has its own KV database.
  DENO_TIMELINE: z.string().optional(),
  BANSKY_API_URL: z.url({ protocol: /^https?$/ }).optional(),
  BANSKY_API_TOKEN: optionalText,
  BANSKY_WEBHOOK_SECRET: optionalText,
  // The organisation behind the default account (e.g. its BIN), shown in the operation log.
  BANSKY_ORG_ID: optionalText,
  // The address and chain service behind crypto invoices; unset = the built-in chain simulator at /sandbox/chain.
  CHAIN_API_URL: z.url({ protocol: /^https?$/ }).optional(),
  CHAIN_API_TOKEN: optionalText,
  CHAIN_WEBHOOK_SECRET: optionalText,
  // How often open invoices are read again at the chain, whatever its notices say.
  CHAIN_POLL_INTERVAL_S: z.coerce.number().int().min(1).max(3600).default(30),
  INVOICE_TTL_S: z.coerce.number().int().min(60).max(2_592_000).default(3600),
  // How long a closed invoice's address rests before another invoice may take it (late money stays the closed one's).
  INVOICE_ADDRESS_REST_S: z.coerce.number().int().min(0).max(2_592_000).default(86_400),
  DEV_ALLOW_LOCAL_URLS: flag.optional(),
  JOBS_QUEUE: z.enum(["on", "off"]).optional(),
  JOBS_SWEEP_INTERVAL_MS: z.coerce.number().int().min(100).optional(),
  MAX_AMOUNT: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER).default(100_000_000),
  POSTBACK_SCHEDULE: z.string().regex(/^\d+(\.\d+)?(,\d+(\.\d+)?)*$/, "comma-separated seconds, e.g. 0,5,300")
    .default("0,5,300,1800,7200,18000,36000,36000"),
  POSTBACK_TIMEOUT_MS: z.coerce.number().int().positive().default(15_000),
  // Provider webhooks handled at once per process; more get 503 with Retry-After (providers retry).
  WEBHOOKS_IN_FLIGHT_MAX: z.coerce.number().int().min(1).max(100_000).default(128),
  // At most 30 s: a refund job's run holds its refund 60 s (JOB_LEASE_MS in lib/refunds/settle.ts), and its provider
  // calls share one such timeout; a run outlasting the hold could meet another run of the same refund, and a retry
  // under a new Idempotency-Key (Stripe) could then make a second refund.
  PROVIDER_TIMEOUT_MS: z.coerce.number().int().positive().max(30_000).default(10_000),
  PAYMENT_TTL_S: z.coerce.number().int().min(60).max(2_592_000).default(86_400),
  // When a pending payment is asked about at the provider again, in seconds after its creation (then at expiry).
  PAYMENT_CHECK_SCHEDULE: z.string().regex(/^\d+(,\d+)*$/, "comma-separated whole seconds, e.g. 120,600,3600")
    .refine((v) => v.split(",").map(Number).every((n, i, all) => n > 0 && (i === 0 || n > all[i - 1])), {
      message: "must be positive and increasing",
    })
    .default("120,600,3600,21600"),
  DEMO: flag.optional(),
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(1200),
  RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: z.coerce.number().int().positive().default(60),
  // How often each process shares its rate-limit counts through KV, in ms; 0 counts per process only.
  RATE_LIMIT_SHARE_MS: z.coerce.number().int().min(0).max(60_000).default(1_000),
  // Bearer token for GET /metrics; unset = the route is off (404).
  METRICS_TOKEN: z.string().trim().min(16, "must be at least 16 characters").optional(),
  SESSION_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  PASSWORD_ITERATIONS: z.coerce.number().int().min(1000).default(600_000),
  METABASE_SITE_URL: z.url({ protocol: /^https?$/ }).optional(),
  METABASE_SECRET_KEY: optionalText,
  METABASE_OPERATOR_DASHBOARD_ID: z.coerce.number().int().positive().optional(),
  METABASE_SHOP_DASHBOARD_ID: z.coerce.number().int().positive().optional(),
  // Project and dataset ids end up inside the view SQL that `bq setup` writes, so only BigQuery's own alphabet passes.
  BIGQUERY_PROJECT: z.string().regex(/^[a-z0-9][a-z0-9.:-]{0,127}$/, "must be a Google Cloud project id").optional(),
  BIGQUERY_DATASET: z.string().regex(/^[A-Za-z0-9_]{1,1024}$/, "letters, digits and underscores only").optional(),
  BIGQUERY_LOCATION: z.string().regex(/^[A-Za-z0-9-]{2,64}$/, "a BigQuery location such as EU or europe-west3")
    .optional(),
  BIGQUERY_CREDENTIALS: optionalText,
  BIGQUERY_API_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  BIGQUERY_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  ANALYTICS_EMAIL: z.enum(["raw", "hash", "omit"]).default("raw"),
  ANALYTICS_HASH_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  ANALYTICS_BATCH_SIZE: z.coerce.number().int().min(1).max(500).default(500),
  ANALYTICS_INTERVAL_MS: z.coerce.number().int().min(10).default(5_000),
  ANALYTICS_SETTLE_MS: z.coerce.number().int().min(0).default(5_000),
});

export type Env = Record<string, string | undefined>;

export interface BanskyConfig {
  apiUrl: string;
  apiToken: string;
  webhookSecret: string;
}

export interface ChainConfig {
  apiUrl: string;
  apiToken: string;
  webhookSecret: string;
}

export interface Config {
  port: number;
  /** The address the server listens on (see listenAddress). */
  hostname: string;
  /** A HOSTNAME that is a machine's name, not an address, so not listened on (said at start). */
  ignoredHostname: string | null;
  publicBaseUrl: string;
  /** A SQLite file, ":memory:", a KV Connect URL, or undefined for the platform's KV (Deno Deploy). */
  kvPath: string | undefined;
  /** Set when Bansky is configured; undefined means the embedded sandbox is the provider. */
  bansky?: BanskyConfig;
  /** The default account's organisation id (BANSKY_ORG_ID), shown in the operation log. */
  defaultOrgId: string;
  /** Set when a chain service is configured; undefined means the built-in chain simulator. */
  chain?: ChainConfig;
  /** How often open invoices are read again at the chain, in ms. */
  chainPollMs: number;
  /** How long an invoice waits for a deposit when the request gives no `expiresIn`, in ms. */
  invoiceTtlMs: number;
  /** How long a closed invoice's address rests before another invoice may take it, in ms. */
  addressRestMs: number;
  allowLocalUrls: boolean;
  jobsQueue: boolean;
  sweepIntervalMs?: number;
  maxAmount: number;
  /** Delay before each postback attempt, in ms; its length is the number of attempts. */
  postbackScheduleMs: number[];
  /** Provider webhooks handled at once per process; more are refused with 503 for the provider to retry. */
  webhooksInFlightMax: number;
  /** Re-checks of a pending payment at the provider, in ms after its creation (see payments/janitor.ts). */
  paymentCheckScheduleMs: number[];
  postbackTimeoutMs: number;
  providerTimeoutMs: number;
  /** How long a payment waits for the buyer when init-payment gives no `expiresIn`, in ms. */
  paymentTtlMs: number;
  demo: boolean;
  /** API requests a key may make per minute (all processes together), unless its shop has its own limit. */
  rateLimitPerMinute: number;
  /** Unauthenticated requests (bad keys, rejected webhooks, sign-in posts) per client address per minute. */
  unauthenticatedPerMinute: number;
  /** How often each process shares its rate-limit counts with the others through KV, in ms (0: it does not). */
  rateLimitShareMs: number;
  /** Bearer token Prometheus sends to GET /metrics; undefined = no metrics are kept and the route is off. */
  metricsToken?: string;
  /** Signs operator sessions; without it a random one is kept in KV (zero-config). */
  sessionSecret?: string;
  /** PBKDF2 iterations for new operator passwords. */
  passwordIterations: number;
  /** BigQuery export target; undefined = the export is off. */
  bigquery?: BigQueryConfig;
  analytics: AnalyticsConfig;
  /** Signed Metabase embedding; undefined = the built-in charts. */
  metabase?: MetabaseConfig;
}

export interface MetabaseConfig {
  siteUrl: string;
  secretKey: string;
  operatorDashboardId: number;
  shopDashboardId: number;
}

/** The fields of a Google service-account key file the BigQuery client needs. */
export interface ServiceAccountKey {
  clientEmail: string;
  privateKey: string;
  privateKeyId?: string;
}

/** Set when BigQuery is configured; undefined means the export is off. */
export interface BigQueryConfig {
  projectId: string;
  dataset: string;
  location: string;
  credentials: ServiceAccountKey;
  /** Another endpoint than Google's (tests, emulators). */
  apiEndpoint?: string;
  timeoutMs: number;
}

export type EmailPolicy = "raw" | "hash" | "omit";

export interface AnalyticsConfig {
  /** What the `email` column holds: the address, an HMAC of it, or nothing. */
  email: EmailPolicy;
  /** HMAC key for `email: "hash"`. */
  hashSecret?: string;
  /** Activity entries per export run (each becomes at most one row per table). */
  batchSize: number;
  /** Pause between export runs when the last one was not full. */
  intervalMs: number;
  /** How old an activity entry must be before it is exported (see lib/analytics/export.ts). */
  settleMs: number;
}

export class ConfigError extends Error {}

/** What a process sharing a store over KV Connect should set, so jobs run within a second rather than a minute. */
const SWEEP_ADVICE = "JOBS_SWEEP_INTERVAL_MS=1000";

/**
 * Where the server listens: BIND_ADDRESS, or else HOSTNAME when it is an address (as the docs once said to set it),
 * or else the mode's default. Zero-config mode listens on this machine only: its built-in sandbox marks payments paid
 * for whoever asks, so a server left without a provider's settings must not offer that to the network. With one,
 * every interface. A HOSTNAME that is a name is ignored, and said so at start: Docker sets it to the container's id
 * and Kubernetes to the pod's name, which resolve to the container's own network address, so a zero-config server
 * in a container would have served its sandbox to that network.
 */
function listenAddress(e: { BIND_ADDRESS?: string; HOSTNAME?: string }, withProvider: boolean) {
  const fallback = withProvider ? "0.0.0.0" : "127.0.0.1";
  if (e.BIND_ADDRESS) return { hostname: e.BIND_ADDRESS, ignoredHostname: null };
  if (e.HOSTNAME && isAddress(e.HOSTNAME)) return { hostname: e.HOSTNAME, ignoredHostname: null };
  return { hostname: fallback, ignoredHostname: e.HOSTNAME ?? null };
}

/** Something the operator should hear once at start: a line for the log and the fields that go with it. */
export interface StartupWarning {
  msg: string;
  fields: Record<string, string>;
}

/** Everything to tell the operator at start about a configuration that runs, but not as they may think. */
export function startupWarnings(config: Config): StartupWarning[] {
  return [listenWarning(config), sweepWarning(config)].filter((w) => w !== null);
}

/**
 * What to tell the operator at start about where a zero-config server listens, if anything: its built-in sandbox marks
 * payments paid for whoever asks, so it listens on loopback unless told otherwise. A HOSTNAME ignored (a container's
 * name) leaves it there, which someone opening it up the old way needs to hear; a bind address others can reach
 * serves the sandbox to them, which must be a choice made knowingly.
 */
function listenWarning(config: Config): StartupWarning | null {
  if (config.bansky) return null;
  if (!isLoopback(config.hostname)) {
    return {
      msg: "the built-in sandbox is reachable from other machines: it marks payments paid for anyone who asks",
      fields: { on: config.hostname, toKeepItHere: "unset BIND_ADDRESS (and HOSTNAME), or set it to 127.0.0.1" },
    };
  }
  if (config.ignoredHostname) {
    return {
      msg: "HOSTNAME names a machine, not an address, so this server listens on this machine only",
      fields: {
        hostname: config.ignoredHostname,
        toServeOthers: "set BIND_ADDRESS=0.0.0.0 (the built-in sandbox then marks payments paid for anyone who asks)",
      },
    };
  }
  return null;
}

/**
 * Over KV Connect there are no queues, so jobs wait for a sweep: without JOBS_SWEEP_INTERVAL_MS that is the cron's,
 * once a minute. It runs all the same, which is why it is a warning and not a refusal: one process alone, a minute
 * late, may be what someone wants.
 */
function sweepWarning(config: Config): StartupWarning | null {
  if (config.kvPath === undefined || !isKvConnectUrl(config.kvPath) || config.sweepIntervalMs) return null;
  return {
    msg: "KV Connect has no queues and JOBS_SWEEP_INTERVAL_MS is unset: background work (postback retries, postbacks " +
      "a stopping process hands over, invoice reads) waits for the once-a-minute cron",
    fields: { toRunItSooner: `set ${SWEEP_ADVICE} (each process then sweeps every second)` },
  };
}

/** This machine only: `localhost`, or an address of the loopback range (127.0.0.0/8, ::1 however written). */
function isLoopback(host: string): boolean {
  const bare = unbracketed(host);
  return bare === "localhost" || classifyAddress(bare) === "loopback";
}

/**
 * An IPv4 or IPv6 address (as the URL guard reads them), or `localhost`: what a person sets to choose an interface,
 * never a machine's name.
 */
function isAddress(text: string): boolean {
  const bare = unbracketed(text);
  return bare === "localhost" || classifyAddress(bare) !== "invalid";
}

/** `[::1]` as `::1`, lower-case: how an address may be written in a URL, read as the address. */
function unbracketed(host: string): string {
  return host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
}

/** Parses the environment once; a bad value throws one ConfigError naming every bad variable. */
export function loadConfig(env: Env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
  const onDeploy = e.DENO_DEPLOYMENT_ID !== undefined;
  if (onDeploy) checkDeploy(e);
  // KV Connect (denokv's remote protocol) has no queues: a write holding an enqueue fails whole ("Enqueue operations
  // are not supported in KV Connect"), and every write that schedules a job holds one while queues are on.
  // The CLI reads its config here too and shows this refusal as it is, so the sweep advice is addressed to a server:
  // a command runs no sweeps.
  const kvConnect = e.DENO_KV_PATH !== undefined && isKvConnectUrl(e.DENO_KV_PATH);
  if (kvConnect && !onDeploy && e.JOBS_QUEUE === "on") {
    throw new ConfigError(
      "Invalid configuration:\n  JOBS_QUEUE: KV Connect (DENO_KV_PATH is a URL) has no KV queues, and every write " +
        "that schedules a job would fail; leave it unset or set it to off (a server then runs its jobs by sweeps: " +
        `give it ${SWEEP_ADVICE} too)`,
    );
  }
  const banskyParts = [e.BANSKY_API_URL, e.BANSKY_API_TOKEN, e.BANSKY_WEBHOOK_SECRET];
  const banskyCount = banskyParts.filter(Boolean).length;
  if (banskyCount > 0 && banskyCount < 3) {
    throw new ConfigError(
      "Invalid configuration:\n  BANSKY_API_URL, BANSKY_API_TOKEN and BANSKY_WEBHOOK_SECRET must be set together",
    );
  }
  const bansky = banskyCount === 3
    ? {
      apiUrl: e.BANSKY_API_URL!.replace(/\/+$/, ""),
      apiToken: e.BANSKY_API_TOKEN!,
      webhookSecret: e.BANSKY_WEBHOOK_SECRET!,
    }
    : undefined;
  const metabaseParts = [
    e.METABASE_SITE_URL,
    e.METABASE_SECRET_KEY,
    e.METABASE_OPERATOR_DASHBOARD_ID,
    e.METABASE_SHOP_DASHBOARD_ID,
  ];
  const metabaseCount = metabaseParts.filter((v) => v !== undefined).length;
  if (metabaseCount > 0 && metabaseCount < 4) {
    throw new ConfigError(
      "Invalid configuration:\n  METABASE_SITE_URL, METABASE_SECRET_KEY, METABASE_OPERATOR_DASHBOARD_ID and METABASE_SHOP_DASHBOARD_ID must be set together",
    );
  }
  const metabase = metabaseCount === 4
    ? {
      siteUrl: e.METABASE_SITE_URL!.replace(/\/+$/, ""),
      secretKey: e.METABASE_SECRET_KEY!,
      operatorDashboardId: e.METABASE_OPERATOR_DASHBOARD_ID!,
      shopDashboardId: e.METABASE_SHOP_DASHBOARD_ID!,
    }
    : undefined;
  const chainParts = [e.CHAIN_API_URL, e.CHAIN_API_TOKEN, e.CHAIN_WEBHOOK_SECRET];
  const chainCount = chainParts.filter(Boolean).length;
  if (chainCount > 0 && chainCount < 3) {
    throw new ConfigError(
      "Invalid configuration:\n  CHAIN_API_URL, CHAIN_API_TOKEN and CHAIN_WEBHOOK_SECRET must be set together",
    );
  }
  const chain = chainCount === 3
    ? {
      apiUrl: e.CHAIN_API_URL!.replace(/\/+$/, ""),
      apiToken: e.CHAIN_API_TOKEN!,
      webhookSecret: e.CHAIN_WEBHOOK_SECRET!,
    }
    : undefined;
  const { bigquery, analytics } = analyticsConfig(e);
  return {
    metabase,
    bigquery,
    analytics,
    port: e.PORT,
    ...listenAddress(e, !!bansky),
    // As the URL parser writes it (lower-case host, no default port), which is how init-payment stores our own URLs
    // given as a payment's: a form finds its payments by comparing one with the URL it builds from this.
    publicBaseUrl: new URL(e.PUBLIC_BASE_URL ?? `http://localhost:${e.PORT}`).href.replace(/\/+$/, ""),
    kvPath: e.DENO_KV_PATH ?? (onDeploy ? undefined : "./data/kv.sqlite3"),
    bansky,
    defaultOrgId: e.BANSKY_ORG_ID ?? "",
    chain,
    chainPollMs: e.CHAIN_POLL_INTERVAL_S * 1000,
    invoiceTtlMs: e.INVOICE_TTL_S * 1000,
    addressRestMs: e.INVOICE_ADDRESS_REST_S * 1000,
    // Local URLs are a development convenience: on in zero-config mode, off once a real provider is set or on Deploy.
    allowLocalUrls: e.DEV_ALLOW_LOCAL_URLS ?? (!bansky && !onDeploy),
    // Deno Deploy and KV Connect have no KV queues: sweeps alone run jobs there.
    jobsQueue: (e.JOBS_QUEUE ?? (onDeploy || kvConnect ? "off" : "on")) === "on",
    sweepIntervalMs: e.JOBS_SWEEP_INTERVAL_MS,
    maxAmount: e.MAX_AMOUNT,
    postbackScheduleMs: e.POSTBACK_SCHEDULE.split(",").map((s) => Math.round(Number(s) * 1000)),
    paymentCheckScheduleMs: e.PAYMENT_CHECK_SCHEDULE.split(",").map((s) => Number(s) * 1000),
    postbackTimeoutMs: e.POSTBACK_TIMEOUT_MS,
    webhooksInFlightMax: e.WEBHOOKS_IN_FLIGHT_MAX,
    providerTimeoutMs: e.PROVIDER_TIMEOUT_MS,
    paymentTtlMs: e.PAYMENT_TTL_S * 1000,
    // On Deploy the demo runs only when asked for (checkDeploy refuses the sandbox without it).
    demo: e.DEMO ?? (!bansky && !onDeploy),
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    unauthenticatedPerMinute: e.RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE,
    rateLimitShareMs: e.RATE_LIMIT_SHARE_MS,
    metricsToken: e.METRICS_TOKEN,
    sessionSecret: e.SESSION_SECRET,
    passwordIterations: e.PASSWORD_ITERATIONS,
  };
}

/**
 * Deno Deploy is production: its KV is the database assigned to the app (never a file), it has no KV queues, and
 * zero-config mode (the sandbox as provider, a demo shop and operator) runs there only with an explicit DEMO=1 and
 * never on the production timeline.
 */
function checkDeploy(e: z.infer<typeof EnvSchema>): void {
  const problems: string[] = [];
  if (e.DENO_KV_PATH !== undefined && !/^https:\/\//.test(e.DENO_KV_PATH)) {
    problems.push(
      "DENO_KV_PATH: must be unset on Deno Deploy, which opens the KV database assigned to the app, never a file",
    );
  }
  if (e.JOBS_QUEUE === "on") problems.push("JOBS_QUEUE: Deno Deploy has no KV queues; leave it unset or set it to off");
  // The default (http://localhost:8000) would hand buyers and Bansky wrapper URLs that lead nowhere.
  // As the URL parser reads it: HTTPS://pay.example is https.
  if (!e.PUBLIC_BASE_URL || new URL(e.PUBLIC_BASE_URL).protocol !== "https:") {
    problems.push("PUBLIC_BASE_URL: required on Deno Deploy, the https address buyers and Bansky reach the app at");
  }
  const banskyMissing = !e.BANSKY_API_URL || !e.BANSKY_API_TOKEN || !e.BANSKY_WEBHOOK_SECRET;
  const production = e.DENO_TIMELINE === "production";
  if (production && e.DEMO === true) {
    problems.push(
      "DEMO: the demo (a demo shop and operator) never runs on the production timeline; leave it unset there",
    );
  }
  if (banskyMissing && (production || e.DEMO !== true)) {
    problems.push(
      "BANSKY_API_URL, BANSKY_API_TOKEN and BANSKY_WEBHOOK_SECRET: required on Deno Deploy; zero-config mode (the built-in sandbox, demo shop and demo operator) runs there only with DEMO=1, never in production",
    );
  }
  if (problems.length) throw new ConfigError(`Invalid configuration:\n${problems.map((p) => `  ${p}`).join("\n")}`);
}

const BIGQUERY_REQUIRED = [
  "BIGQUERY_PROJECT",
  "BIGQUERY_DATASET",
  "BIGQUERY_LOCATION",
  "BIGQUERY_CREDENTIALS",
] as const;

/** The BigQuery target and export settings; partial BigQuery settings are an error naming what is missing. */
function analyticsConfig(e: z.infer<typeof EnvSchema>): { bigquery?: BigQueryConfig; analytics: AnalyticsConfig } {
  const problems: string[] = [];
  const given = [...BIGQUERY_REQUIRED, "BIGQUERY_API_ENDPOINT" as const].filter((name) => e[name] !== undefined);
  const missing = BIGQUERY_REQUIRED.filter((name) => e[name] === undefined);
  if (given.length > 0 && missing.length > 0) {
    problems.push(`${BIGQUERY_REQUIRED.join(", ")} must be set together; missing: ${missing.join(", ")}`);
  }
  const credentials = e.BIGQUERY_CREDENTIALS === undefined ? undefined : parseServiceAccountKey(e.BIGQUERY_CREDENTIALS);
  if (credentials === null) {
    problems.push("BIGQUERY_CREDENTIALS: must be a service-account key in JSON, with client_email and private_key");
  }
  if (e.ANALYTICS_EMAIL === "hash" && !e.ANALYTICS_HASH_SECRET) {
    problems.push("ANALYTICS_HASH_SECRET: required when ANALYTICS_EMAIL=hash");
  }
  if (problems.length) throw new ConfigError(`Invalid configuration:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  const bigquery = credentials && missing.length === 0
    ? {
      projectId: e.BIGQUERY_PROJECT!,
      dataset: e.BIGQUERY_DATASET!,
      location: e.BIGQUERY_LOCATION!,
      credentials,
      apiEndpoint: e.BIGQUERY_API_ENDPOINT?.replace(/\/+$/, ""),
      timeoutMs: e.BIGQUERY_TIMEOUT_MS,
    }
    : undefined;
  return {
    bigquery,
    analytics: {
      email: e.ANALYTICS_EMAIL,
      hashSecret: e.ANALYTICS_HASH_SECRET,
      batchSize: e.ANALYTICS_BATCH_SIZE,
      intervalMs: e.ANALYTICS_INTERVAL_MS,
      settleMs: e.ANALYTICS_SETTLE_MS,
    },
  };
}

/** Reads a service-account key; null when it is not one. Never echoes the text: it holds a private key. */
function parseServiceAccountKey(text: string): ServiceAccountKey | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const k = json as Record<string, unknown>;
  if (typeof k !== "object" || k === null) return null;
  if (typeof k.client_email !== "string" || typeof k.private_key !== "string") return null;
  if (!k.private_key.includes("PRIVATE KEY")) return null;
  return {
    clientEmail: k.client_email,
    privateKey: k.private_key,
    privateKeyId: typeof k.private_key_id === "string" ? k.private_key_id : undefined,
  };
}
