import { AppError } from "../errors.ts";

/**
 * A fixed-window request counter per shop, kept in this isolate's memory. It
 * bounds a runaway integration cheaply on the hot path; it is not a global
 * quota (each isolate counts on its own), which is the trade-off for not
 * writing to KV on every request.
 */
export class RateLimiter {
  private windows = new Map<string, { start: number; count: number }>();

  constructor(private readonly perMinute: number) {}

  /** Counts one request; throws a 429 AppError when the shop is over its limit. */
  take(key: string, now: number) {
    const windowStart = now - (now % 60_000);
    let w = this.windows.get(key);
    if (!w || w.start !== windowStart) {
      if (this.windows.size > 10_000) this.windows.clear(); // bounded memory; a reset only forgives
      w = { start: windowStart, count: 0 };
      this.windows.set(key, w);
    }
    if (++w.count > this.perMinute) {
      const retryAfter = Math.ceil((windowStart + 60_000 - now) / 1000);
      throw new AppError(429, "rate_limited", `Too many requests; retry in ${retryAfter} s.`, undefined, {
        "retry-after": String(retryAfter),
      });
    }
  }
}
