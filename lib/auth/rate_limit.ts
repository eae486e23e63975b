import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { describeError, log } from "../log.ts";

/**
 * Where limiters share their counts: each process writes its own count per key and minute to KV, and reads the
 * others' (see RateLimiter). `everyMs` 0 keeps counts in this process alone.
 */
export interface SharedCounts {
  kv: Deno.Kv;
  /** The limiter's name in the store: one count per limiter, so two limiters never add up each other's keys. */
  name: string;
  everyMs: number;
  /** The clock that tells when a minute has ended (the app's); Date.now by default. */
  now?: () => number;
}

/** One key's count in the current minute. */
interface Window {
  start: number;
  /** Requests this process counted. */
  count: number;
  /** What the other processes had counted when last read. */
  others: number;
  /** `count` as this process last wrote it to the store. */
  written: number;
  /** The limit its last request was judged by (a shop may have its own). */
  limit: number;
}

const COUNTS_PREFIX = "rate_limit_counts";
/** Keys counted in memory at most (about 100 bytes each); past it, the key idle longest is forgotten. */
const MAX_KEYS_KEPT = 10_000;
/** Keys one sharing round writes and reads, the busiest first; the rest wait for the next round. */
const MAX_KEYS_PER_ROUND = 200;
/** Processes' counts read per key: more processes than that serving one key are rare, and each adds to the count. */
const MAX_PROCESSES_READ = 64;
/** Concurrent reads of other processes' counts within one round. */
const READS_AT_ONCE = 10;

/**
 * A fixed-window request counter per key (an API key, a client address). Counting stays in this process's memory, so
 * the hot path writes nothing; with `shared`, a round every `everyMs` after requests came writes this process's count
 * of each key that changed to KV (a key per process, which only it writes: no read, no conflict) and reads the other
 * processes' counts of those keys, and of keys at half their limit or more (read each round until the minute ends), so
 * every isolate on Deno Deploy refuses a key once all of them together reached its limit, give or take what came in
 * during the last round. A failed round is logged and tried again at the next
 * request; meanwhile each process limits on what it knows.
 */
export class RateLimiter {
  private windows = new Map<string, Window>();
  /** This process's name in the store. */
  readonly #process = crypto.randomUUID();
  /** The newest minute a request was counted in: only its counts are shared. */
  #minute = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #sharing = false;
  #shareAgain = false;
  #stopped = false;

  constructor(private readonly perMinute: number, private readonly shared?: SharedCounts) {
    if (shared?.everyMs) registerLimiter(shared.kv, this);
  }

  /** Counts one request; throws a 429 AppError when the key is over `limit` (the limiter's default if not given). */
  take(key: string, now: number, limit = this.perMinute) {
    if (!this.allows(key, now, limit)) throw rateLimited(now - (now % 60_000), now);
  }

  /** Counts one request like `take`, and answers whether the key is still within its limit instead of throwing. */
  allows(key: string, now: number, limit = this.perMinute): boolean {
    const w = this.#window(key, now);
    w.count++;
    w.limit = limit;
    this.#scheduleShare();
    return w.count + w.others <= limit;
  }

  /** Throws the 429 when the key is already over its limit in this window, without counting the request. */
  refuseIfOver(key: string, now: number, limit = this.perMinute) {
    const windowStart = now - (now % 60_000);
    const w = this.windows.get(key);
    if (w && w.start === windowStart && w.count + w.others >= limit) throw rateLimited(windowStart, now);
  }

  /** Stops sharing (the store is closing); counting goes on in memory. */
  stop() {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #window(key: string, now: number): Window {
    const start = now - (now % 60_000);
    if (start > this.#minute) this.#minute = start;
    let w = this.windows.get(key);
    // Kept in the order keys were last counted (moved to the end each time), so the bound below forgets the keys
    // idle longest. Forgetting them all at once let anyone with enough addresses wipe everyone's counts.
    this.windows.delete(key);
    if (!w || w.start !== start) {
      w = { start, count: 0, others: 0, written: 0, limit: this.perMinute };
      if (this.windows.size >= MAX_KEYS_KEPT) this.windows.delete(this.windows.keys().next().value!);
    }
    this.windows.set(key, w);
    return w;
  }

  #scheduleShare() {
    if (!this.shared?.everyMs || this.#stopped || this.#timer) return;
    if (this.#sharing) {
      this.#shareAgain = true;
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#share();
    }, this.shared.everyMs);
    // Sharing never keeps a process up on its own.
    Deno.unrefTimer(this.#timer);
  }

  async #share() {
    const { kv, name, now = Date.now } = this.shared!;
    const minute = this.#minute;
    // A minute that has ended has no more requests to judge: only counts not yet written are, for processes whose
    // clocks lag. #minute moves only with a request, which may not come for hours (bad keys are rare).
    const current = now() < minute + 60_000;
    // Keys counted here since the last round, and keys near their limit: the others' counts of those are read again
    // each round, so a process that has not counted one for a while does not judge it by what it read long ago.
    const due = [...this.windows]
      .filter(([, w]) => w.start === minute && ((w.count !== w.written && shared(w)) || (current && nearLimit(w))))
      .sort(([, a], [, b]) => b.count + b.others - a.count - a.others);
    const round = due.slice(0, MAX_KEYS_PER_ROUND);
    if (!round.length) return;
    this.#sharing = true;
    try {
      const op = kv.atomic();
      const counts = round.map(([, w]) => w.count);
      let writes = 0;
      for (const [i, [key, w]] of round.entries()) {
        if (w.written === counts[i]) continue;
        // Kept a minute past their own: a process whose clock lags a little still reads the others' counts.
        op.set(countKey(name, key, minute, this.#process), counts[i], { expireIn: 120_000 });
        writes++;
      }
      if (writes) await op.commit();
      round.forEach(([, w], i) => (w.written = counts[i]));
      for (let i = 0; i < round.length; i += READS_AT_ONCE) {
        await Promise.all(
          round.slice(i, i + READS_AT_ONCE).map(async ([key, w]) => {
            let others = 0;
            const iter = kv.list<number>({ prefix: countKey(name, key, minute) }, { limit: MAX_PROCESSES_READ });
            for await (const e of iter) if (e.key.at(-1) !== this.#process) others += e.value;
            w.others = others;
          }),
        );
      }
    } catch (err) {
      if (!this.#stopped) {
        log.warn("rate limit counts not shared; limiting on this process's own", { error: describeError(err) });
      }
    } finally {
      this.#sharing = false;
    }
    // Again after the next interval: what came meanwhile, what did not fit, and keys near their limit (until the
    // minute ends: then none of its keys is due).
    if (this.#shareAgain || due.length > round.length || (current && round.some(([, w]) => nearLimit(w)))) {
      this.#shareAgain = false;
      this.#scheduleShare();
    }
  }
}

/**
 * Counted here at least a tenth of its limit: worth telling the others. Below that a key costs the store nothing, so
 * a flood of addresses making a request or two each (IPv6 ones cost nothing) writes and reads nothing, while each
 * process can let at most a tenth of a key's limit more through than all of them together would.
 */
function shared(w: Window): boolean {
  return w.count * SHARE_FROM_SHARE_OF_LIMIT >= w.limit;
}
const SHARE_FROM_SHARE_OF_LIMIT = 10;

/** At least half its limit counted, here and elsewhere: what the others count next may put it over. */
function nearLimit(w: Window): boolean {
  return (w.count + w.others) * 2 >= w.limit;
}

/** Where a process's count of a key in a minute is kept; without the process, the prefix of every process's count. */
function countKey(name: string, key: string, start: number, process?: string): Deno.KvKey {
  return process ? [COUNTS_PREFIX, name, key, start, process] : [COUNTS_PREFIX, name, key, start];
}

/** Limiters that share through each store, so the app stops them before the store closes. */
const limitersByStore = new WeakMap<Deno.Kv, Set<RateLimiter>>();

function registerLimiter(kv: Deno.Kv, limiter: RateLimiter) {
  let set = limitersByStore.get(kv);
  if (!set) limitersByStore.set(kv, set = new Set());
  set.add(limiter);
}

/** Stops every limiter sharing through `kv` (the app's close, before the store closes). */
export function stopRateLimiters(kv: Deno.Kv) {
  for (const limiter of limitersByStore.get(kv) ?? []) limiter.stop();
  limitersByStore.delete(kv);
}

/** A limiter that shares its counts through the app's store (RATE_LIMIT_SHARE_MS), named `name` there. */
export function sharedLimiter(ctx: AppContext, name: string, perMinute: number): RateLimiter {
  return new RateLimiter(perMinute, {
    kv: ctx.kv,
    name,
    everyMs: ctx.config.rateLimitShareMs,
    now: () => ctx.now(),
  });
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
  if (!limiter) {
    unauthenticated.set(ctx, limiter = sharedLimiter(ctx, "unauthenticated", ctx.config.unauthenticatedPerMinute));
  }
  return limiter;
}
