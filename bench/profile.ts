/**
 * How long and how hard each phase runs. The full profile is what
 * docs/benchmarks.md reports and fits in about three minutes on 2 cores;
 * --quick is a smoke run of the same code paths in well under a minute.
 */
export interface Profile {
  name: "full" | "quick";
  /** Measured rounds per target and endpoint; the table shows their median. */
  rounds: number;
  roundMs: number;
  /** One unmeasured round per target first, so both are JIT-warm and have open KV pages. */
  warmupMs: number;
  /**
   * Warm-up of the pay phase, after one visit to every id. The app's redirect kept getting cheaper for tens of
   * seconds of traffic (0.17 → 0.13 ms CPU per request, also in a fresh process: likely the JIT), so it gets
   * more warm-up than init-payment, where the provider call dominates.
   */
  payWarmupMs: number;
  /** Keep-alive connections of the load generator. */
  concurrency: number;
  /** Most payment ids the pay benchmark cycles through (the same number for the app and the floor). */
  payIds: number;
  webhookRate: number;
  webhookSeconds: number;
  /** The high-rate webhook phase: this many per second for webhookSeconds / 2 (at least 2 s). */
  webhookPeakRate: number;
  /** Postbacks per second made for the slow shop (8 s answers) beside the webhook phase's own. */
  slowShopRate: number;
  drainCount: number;
  /** Drains of the app and of the peer, alternating; the table shows the median run of each. */
  drainRuns: number;
  /** Give up waiting for postbacks after this long (then the missing ones count as lost); bounds the run time. */
  webhookTimeoutMs: number;
  drainTimeoutMs: number;
}

export const FULL: Profile = {
  name: "full",
  rounds: 5,
  roundMs: 3_000,
  warmupMs: 1_000,
  payWarmupMs: 8_000,
  concurrency: 32,
  payIds: 5_000,
  webhookRate: 100,
  webhookSeconds: 10,
  webhookPeakRate: 500,
  slowShopRate: 20,
  drainCount: 10_000,
  drainRuns: 3,
  webhookTimeoutMs: 30_000,
  drainTimeoutMs: 90_000,
};

export const QUICK: Profile = {
  name: "quick",
  rounds: 2,
  roundMs: 1_000,
  warmupMs: 300,
  payWarmupMs: 1_000,
  concurrency: 32,
  payIds: 1_000,
  webhookRate: 50,
  webhookSeconds: 2,
  webhookPeakRate: 200,
  slowShopRate: 10,
  drainCount: 1_000,
  drainRuns: 1,
  webhookTimeoutMs: 15_000,
  drainTimeoutMs: 30_000,
};
