import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";

/**
 * A fixed-window request counter per key (an API key, a client address), kept
 * in this isolate's memory. It bounds a runaway integration cheaply on the hot
 * path; it is not a global quota (each isolate counts on its own), which is the
 * trade-off for not writing to KV on every request.
 */
export class RateLimiter {
  private windows = new Map<string, { start: number; count: number }>();

  constructor(private readonly perMinute: number) {}

  /** Counts one request; throws a 429 AppError when the key is over `limit` (the limiter's default if not given). */
  take(key: string, now: number, limit = this.perMinute) {
    const windowStart = now - (now % 60_000);
    let w = this.windows.get(key);
    if (!w || w.start !== windowStart) {
      if (this.windows.size > 10_000) this.windows.clear(); // bounded memory; a reset only forgives
      w = { start: windowStart, count: 0 };
      this.windows.set(key, w);
    }
    if (++w.count > limit) throw rateLimited(windowStart, now);
  }

  /** Throws the 429 when the key is already over its limit in this window, without counting the request. */
  refuseIfOver(key: string, now: number, limit = this.perMinute) {
    const windowStart = now - (now % 60_000);
    const w = this.windows.get(key);
    if (w && w.start === windowStart && w.count >= limit) throw rateLimited(windowStart, now);
  }
}

function rateLimited(windowStart: number, now: number): AppError {
  const retryAfter = Math.max(1, Math.ceil((windowStart + 60_000 - now) / 1000));
  return new AppError(429, "rate_limited", `Too many requests; retry in ${retryAfter} s.`, undefined, {
    "retry-after": String(retryAfter),
  });
}

const unauthenticated = new WeakMap<AppContext, RateLimiter>();

/**
 * The app's one counter of unauthenticated requests per client address (bad or missing API keys, rejected
 * webhooks, console sign-in posts), shared by those routes so one address cannot spread its attempts over them.
 */
export function unauthenticatedLimiter(ctx: AppContext): RateLimiter {
  let limiter = unauthenticated.get(ctx);
  if (!limiter) unauthenticated.set(ctx, limiter = new RateLimiter(ctx.config.unauthenticatedPerMinute));
  return limiter;
}
