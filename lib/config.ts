import { z } from "zod";

/**
 * Every environment variable the app reads, in one schema. `loadConfig` is the
 * only reader of the environment; nothing reads env at import time, so tests
 * build their own Config.
 */
const flag = z.enum(["0", "1", "true", "false"]).transform((v) => v === "1" || v === "true");
const optionalText = z.string().trim().min(1).optional();

const EnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8000),
  HOSTNAME: z.string().min(1).default("0.0.0.0"),
  PUBLIC_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  DENO_KV_PATH: z.string().min(1).default("./data/kv.sqlite3"),
  BANSKY_API_URL: z.url({ protocol: /^https?$/ }).optional(),
  BANSKY_API_TOKEN: optionalText,
  BANSKY_WEBHOOK_SECRET: optionalText,
  DEV_ALLOW_LOCAL_URLS: flag.optional(),
  JOBS_QUEUE: z.enum(["on", "off"]).default("on"),
  JOBS_SWEEP_INTERVAL_MS: z.coerce.number().int().min(100).optional(),
  MAX_AMOUNT: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER).default(100_000_000),
  POSTBACK_SCHEDULE: z.string().regex(/^\d+(\.\d+)?(,\d+(\.\d+)?)*$/, "comma-separated seconds, e.g. 0,5,300")
    .default("0,5,300,1800,7200,18000,36000,36000"),
  POSTBACK_TIMEOUT_MS: z.coerce.number().int().positive().default(15_000),
  PROVIDER_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  DEMO: flag.optional(),
  RATE_LIMIT_PER_MINUTE: z.coerce.number().int().positive().default(1200),
  SESSION_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  PASSWORD_ITERATIONS: z.coerce.number().int().min(1000).default(600_000),
  METABASE_SITE_URL: z.url({ protocol: /^https?$/ }).optional(),
  METABASE_SECRET_KEY: optionalText,
  METABASE_OPERATOR_DASHBOARD_ID: z.coerce.number().int().positive().optional(),
  METABASE_SHOP_DASHBOARD_ID: z.coerce.number().int().positive().optional(),
});

export type Env = Record<string, string | undefined>;

export interface BanskyConfig {
  apiUrl: string;
  apiToken: string;
  webhookSecret: string;
}

export interface Config {
  port: number;
  hostname: string;
  publicBaseUrl: string;
  kvPath: string;
  /** Set when Bansky is configured; undefined means the embedded sandbox is the provider. */
  bansky?: BanskyConfig;
  allowLocalUrls: boolean;
  jobsQueue: boolean;
  sweepIntervalMs?: number;
  maxAmount: number;
  /** Delay before each postback attempt, in ms; its length is the number of attempts. */
  postbackScheduleMs: number[];
  postbackTimeoutMs: number;
  providerTimeoutMs: number;
  demo: boolean;
  /** API requests a shop may make per minute (per isolate). */
  rateLimitPerMinute: number;
  /** Signs operator sessions; without it a random one is kept in KV (zero-config). */
  sessionSecret?: string;
  /** PBKDF2 iterations for new operator passwords. */
  passwordIterations: number;
  /** Signed Metabase embedding; undefined = the built-in charts. */
  metabase?: MetabaseConfig;
}

export interface MetabaseConfig {
  siteUrl: string;
  secretKey: string;
  operatorDashboardId: number;
  shopDashboardId: number;
}

export class ConfigError extends Error {}

/** Parses the environment once; a bad value throws one ConfigError naming every bad variable. */
export function loadConfig(env: Env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
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
  return {
    metabase,
    port: e.PORT,
    hostname: e.HOSTNAME,
    publicBaseUrl: (e.PUBLIC_BASE_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ""),
    kvPath: e.DENO_KV_PATH,
    bansky,
    // Local URLs are a development convenience: on in zero-config mode, off once a real provider is set.
    allowLocalUrls: e.DEV_ALLOW_LOCAL_URLS ?? !bansky,
    jobsQueue: e.JOBS_QUEUE === "on",
    sweepIntervalMs: e.JOBS_SWEEP_INTERVAL_MS,
    maxAmount: e.MAX_AMOUNT,
    postbackScheduleMs: e.POSTBACK_SCHEDULE.split(",").map((s) => Math.round(Number(s) * 1000)),
    postbackTimeoutMs: e.POSTBACK_TIMEOUT_MS,
    providerTimeoutMs: e.PROVIDER_TIMEOUT_MS,
    demo: e.DEMO ?? !bansky,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    sessionSecret: e.SESSION_SECRET,
    passwordIterations: e.PASSWORD_ITERATIONS,
  };
}
