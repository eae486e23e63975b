import type { Analytics } from "./analytics/types.ts";
import type { Config } from "./config.ts";
import type { JobMessage } from "./db/jobs.ts";
import type { Metrics } from "./metrics.ts";
import type { ProviderRegistry } from "./providers/registry.ts";
import type { Resolver } from "./relay/url_guard.ts";
import type { ChainClient } from "./invoices/chain.ts";

/** What domain code needs from the outside world, built once in main.ts (or by a test). */
export interface AppContext {
  kv: Deno.Kv;
  config: Config;
  /** The provider accounts and their adapters; a payment's calls go to its own account (`forPayment`). */
  providers: ProviderRegistry;
  resolve: Resolver;
  now: () => number;
  /** HMAC key for operator session tokens. */
  sessionKey: Uint8Array<ArrayBuffer>;
  /**
   * HMAC key of the ids derived from a shop's own id or Idempotency-Key: refunds', invoices', checkout sessions', and
   * payments' before payment names were stored (payments/names.ts).
   */
  paymentIdKey: Uint8Array<ArrayBuffer>;
  /** Runs a scheduled job in this process after a delay (used when no KV queue wakes it). */
  kick: (msg: JobMessage, delayMs?: number) => void;
  /**
   * The address and chain service behind crypto invoices: the configured one, or the chain simulator in
   * zero-config mode. Undefined when a real provider is set but no chain service is: invoices are then off,
   * never backed by a simulator anyone could pay with made-up deposits.
   */
  chain?: ChainClient;
  /** The BigQuery export, when BIGQUERY_* is configured. */
  analytics?: Analytics;
  /** Prometheus metrics, kept only when METRICS_TOKEN is set. */
  metrics?: Metrics;
  /** Certificates trusted for https postback URLs besides the system's: a test's own authority. */
  postbackCaCerts?: string[];
}
