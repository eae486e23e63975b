import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The shape prom-client's registry formats (its own type for it is not exported). */
interface MetricValue {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}
interface MetricSnapshot {
  name: string;
  help: string;
  type: "counter" | "histogram";
  aggregator: "sum";
  values: MetricValue[];
}

/** Upper bounds (seconds) of the request and provider-call duration histograms. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** The due-postback gauge counts at most this many index keys per scrape, so a huge backlog cannot slow a scrape. */
export const DUE_POSTBACKS_CAP = 10_000;

/**
 * The pending-refund count reads at most this many index keys per scrape, so a huge backlog cannot slow a scrape;
 * past this many it says "at least", which is alarm enough. The oldest's age is exact at any number (the index's
 * first key).
 */
export const PENDING_REFUNDS_CAP = 1_000;

/**
 * The unhandled paid-orphan gauge reads at most this many index keys of each provider's account per scrape; past it
 * that account's count says "at least", which is alarm enough (each one is a buyer's money an operator has to look at),
 * and another account's are counted still.
 */
export const PAID_ORPHANS_CAP = 1_000;

/** What the scrape-time gauges read; computed when Prometheus asks, never on the request path. */
export interface ScrapeSources {
  /** Postbacks due now and not yet delivered, counted up to DUE_POSTBACKS_CAP. */
  duePostbacks(): Promise<number>;
  /** Refunds waiting on their provider (pending), counted up to PENDING_REFUNDS_CAP, and when the oldest was asked for. */
  pendingRefunds(): Promise<{ count: number; oldestCreatedAt: number | null }>;
  /** Paid orphans no operator has marked handled, by provider and account, counted up to PAID_ORPHANS_CAP each. */
  unhandledPaidOrphans(): Promise<{ provider: string; account: string; count: number }[]>;
  /** The BigQuery export's state, or null when the export is off. */
  export(): Promise<{ backlog: number; lastSuccessAt: number | null; failures: number } | null>;
  now(): number;
}

/** One route and status: request count and duration histogram, plain numbers the request path adds to. */
interface RequestTally {
  buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * The process's metrics in one prom-client registry, per app (tests run several
 * apps in one process). HTTP requests are the hot path (init-payment, the pay
 * redirect): they add to plain numbers in maps keyed by route and status, with
 * no label object or string built per request, and are turned into prom-client
 * metric values only at scrape time. Provider calls and postback attempts are
 * rarer and use prom-client's own metrics, with their label children cached.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Map<string, Map<number, RequestTally>>();
  private readonly providerCalls: Histogram<"provider" | "operation" | "outcome">;
  private readonly postbacks: Counter<"outcome">;
  private readonly paidOrphans: Counter<"provider" | "account">;
  private readonly unhandledPaidOrphans: Gauge<"provider" | "account">;
  private readonly duePostbacks: Gauge;
  private readonly pendingRefunds: Gauge;
  private readonly pendingRefundAge: Gauge;
  private readonly exportBacklog: Gauge;
  private readonly exportLag: Gauge;
  private readonly exportLastSuccess: Gauge;
  private readonly exportFailures: Gauge;

  constructor(private readonly sources: ScrapeSources) {
    const registers = [this.registry];
    this.registry.registerMetric(requestMetric("aimbrellapay_http_requests_total", () => this.requestCounts()));
    this.registry.registerMetric(requestMetric("aimbrellapay_http_request_duration_seconds", () => this.requestHist()));
    this.providerCalls = new Histogram({
      name: "aimbrellapay_provider_call_duration_seconds",
      help:
        "Calls to payment providers by provider, operation (create, status, refund, refund_status, cancel) and outcome (ok, error, timeout).",
      labelNames: ["provider", "operation", "outcome"],
      buckets: [...DURATION_BUCKETS],
      registers,
    });
    this.postbacks = new Counter({
      name: "aimbrellapay_postback_attempts_total",
      help:
        "Postback attempts by outcome: delivered, retrying (another attempt is scheduled) or failed (no attempt left).",
      labelNames: ["outcome"],
      registers,
    });
    this.paidOrphans = new Counter({
      name: "aimbrellapay_paid_orphan_webhooks_total",
      help:
        "Provider webhooks refused because they say a buyer paid on a payment made for one of ours that no stored payment names (another of a stored payment's, or one never stored), by provider and account; every retry of one counts, until an operator marks it handled (then it is acknowledged, not refused).",
      labelNames: ["provider", "account"],
      registers,
    });
    this.unhandledPaidOrphans = new Gauge({
      name: "aimbrellapay_paid_orphans_unhandled",
      help:
        `Payments at a provider that took money for one of our ids that no stored payment names, not marked handled by an operator yet, by provider and account; counted at scrape time up to ${PAID_ORPHANS_CAP} each.`,
      labelNames: ["provider", "account"],
      registers,
    });
    this.duePostbacks = new Gauge({
      name: "aimbrellapay_postbacks_due",
      help: `Postbacks due now and not delivered yet, counted at scrape time up to ${DUE_POSTBACKS_CAP}.`,
      registers,
    });
    this.pendingRefunds = new Gauge({
      name: "aimbrellapay_refunds_pending",
      help:
        `Refunds waiting on their provider (pending), counted at scrape time up to ${PENDING_REFUNDS_CAP} (that many means at least that many).`,
      registers,
    });
    this.pendingRefundAge = new Gauge({
      name: "aimbrellapay_refunds_pending_oldest_age_seconds",
      help:
        "Seconds since the oldest refund still waiting on its provider was asked for, however many wait; 0 when none waits.",
      registers,
    });
    this.exportBacklog = new Gauge({
      name: "aimbrellapay_bigquery_export_backlog",
      help: "Activity entries not exported to BigQuery yet (counting stops at 100000); absent when the export is off.",
      registers: [],
    });
    this.exportLag = new Gauge({
      name: "aimbrellapay_bigquery_export_lag_seconds",
      help: "Seconds since the BigQuery export last went through while entries wait; 0 when nothing waits.",
      registers: [],
    });
    this.exportLastSuccess = new Gauge({
      name: "aimbrellapay_bigquery_export_last_success_timestamp_seconds",
      help: "When the BigQuery export last went through (Unix time; 0 = never).",
      registers: [],
    });
    this.exportFailures = new Gauge({
      name: "aimbrellapay_bigquery_export_failures",
      help: "BigQuery export runs that failed in a row.",
      registers: [],
    });
  }

  /** Counts one answered HTTP request under its route pattern (never the raw path) and status. */
  observeRequest(route: string, status: number, seconds: number): void {
    let byStatus = this.requests.get(route);
    if (!byStatus) this.requests.set(route, byStatus = new Map());
    let t = byStatus.get(status);
    if (!t) byStatus.set(status, t = { buckets: new Float64Array(DURATION_BUCKETS.length), sum: 0, count: 0 });
    t.count++;
    t.sum += seconds;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= DURATION_BUCKETS[i]) {
        t.buckets[i]++;
        break;
      }
    }
  }

  /** One provider call, as the operation log records it. */
  observeProviderCall(provider: string, operation: string, outcome: string, seconds: number): void {
    this.providerCalls.labels(provider, operation, outcome).observe(seconds);
  }

  /** One postback attempt and where it left the delivery. */
  countPostbackAttempt(outcome: "delivered" | "retrying" | "failed"): void {
    this.postbacks.labels(outcome).inc();
  }

  /**
   * One refused webhook saying money was taken on a payment no stored payment names, for the alert an operator needs:
   * the log line says which. Labelled by provider and account only, which operators create: bounded.
   */
  countPaidOrphan(provider: string, account: string): void {
    this.paidOrphans.labels(provider, account).inc();
  }

  /** The text Prometheus scrapes; the gauges are computed now. */
  async render(): Promise<string> {
    const [due, refunds, orphans, exp] = await Promise.all([
      this.sources.duePostbacks(),
      this.sources.pendingRefunds(),
      this.sources.unhandledPaidOrphans(),
      this.sources.export(),
    ]);
    // Only the accounts with some: one handled goes from its series at once (absent reads as none to the alert).
    this.unhandledPaidOrphans.reset();
    for (const o of orphans) this.unhandledPaidOrphans.labels(o.provider, o.account).set(o.count);
    this.duePostbacks.set(due);
    this.pendingRefunds.set(refunds.count);
    const oldest = refunds.oldestCreatedAt;
    this.pendingRefundAge.set(oldest === null ? 0 : Math.max(0, (this.sources.now() - oldest) / 1000));
    const exportMetrics = [this.exportBacklog, this.exportLag, this.exportLastSuccess, this.exportFailures];
    if (exp) {
      this.exportBacklog.set(exp.backlog);
      const waiting = exp.backlog > 0 && exp.lastSuccessAt !== null;
      this.exportLag.set(waiting ? Math.max(0, (this.sources.now() - exp.lastSuccessAt!) / 1000) : 0);
      this.exportLastSuccess.set((exp.lastSuccessAt ?? 0) / 1000);
      this.exportFailures.set(exp.failures);
      for (const m of exportMetrics) this.registry.registerMetric(m);
    }
    return await this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private requestCounts(): MetricSnapshot {
    const values: MetricValue[] = [];
    for (const [route, byStatus] of this.requests) {
      for (const [status, t] of byStatus) values.push({ labels: { route, status }, value: t.count });
    }
    return {
      name: "aimbrellapay_http_requests_total",
      help: "HTTP requests answered, by route pattern and status.",
      type: "counter",
      aggregator: "sum",
      values,
    };
  }

  private requestHist(): MetricSnapshot {
    const name = "aimbrellapay_http_request_duration_seconds";
    const values: MetricValue[] = [];
    for (const [route, byStatus] of this.requests) {
      for (const [status, t] of byStatus) {
        let cumulative = 0;
        for (let i = 0; i < DURATION_BUCKETS.length; i++) {
          cumulative += t.buckets[i];
          values.push({
            metricName: `${name}_bucket`,
            labels: { route, status, le: DURATION_BUCKETS[i] },
            value: cumulative,
          });
        }
        values.push({ metricName: `${name}_bucket`, labels: { route, status, le: "+Inf" }, value: t.count });
        values.push({ metricName: `${name}_sum`, labels: { route, status }, value: t.sum });
        values.push({ metricName: `${name}_count`, labels: { route, status }, value: t.count });
      }
    }
    return {
      name,
      help: "Time from a request's arrival to its answer's headers, by route pattern and status.",
      type: "histogram",
      aggregator: "sum",
      values,
    };
  }
}

/** A metric prom-client's registry formats, whose values we build ourselves at scrape time. */
function requestMetric(name: string, get: () => MetricSnapshot) {
  // prom-client's registry needs only a name and get(); its Metric class type asks for more than it uses.
  return { name, get } as unknown as Counter;
}
