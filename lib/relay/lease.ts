import type { AppContext } from "../context.ts";
import { getDeliveryEntry, renewDeliveryLease } from "../db/deliveries.ts";
import { describeError, log } from "../log.ts";
import type { Delivery } from "./types.ts";

/**
 * How long a claim holds a delivery, however long the attempt's timeout (POSTBACK_TIMEOUT_MS): a process that dies
 * mid-attempt holds its deliveries no longer than this, and then any sweep sends them. An attempt that runs longer
 * (a shop taking seconds to answer) keeps its lease by renewing it while it runs (LeaseKeeper). Leases compare
 * clocks across processes, as they always did: the margin below covers clocks a few seconds apart and stalls.
 */
export const DELIVERY_LEASE_MS = 10_000;
/** The keeper looks at the leases it keeps this often, */
const CHECK_EVERY_MS = 1_000;
/** and renews those with less than this left: a check a second late still renews with 5 s to spare. */
const RENEW_BELOW_MS = 6_000;
/**
 * The furthest ahead a lease held by a live attempt can end, as another process's clock reads it: a lease's length
 * and the clock spread the renewal margin allows for (what a check a second late still has to spare). A lease ending
 * later was left by a clock that jumped.
 */
export const LONGEST_LIVE_LEASE_MS = DELIVERY_LEASE_MS + RENEW_BELOW_MS - CHECK_EVERY_MS;

/** The lease of a delivery whose attempt runs in this process, as last stored. */
export interface HeldLease {
  entry: Deno.KvEntry<Delivery>;
  renewing: Promise<void> | null;
  /** A renewal found the delivery taken by another worker (our lease had run out): nothing more to renew. */
  lost: boolean;
  /** Lease ends of renewals whose outcome is unknown (refused or failed, maybe landed anyway); see #renew. */
  unconfirmed: number[];
  /** Renewals have failed since the last one that worked: said once, not at every check while the store is down. */
  failing: boolean;
}

/**
 * Keeps the leases of this process's running attempts alive: once a second it renews each lease that has less
 * than RENEW_BELOW_MS left, with a write checked against the version it last stored (claims share commits, see
 * group_commit.ts). Most attempts end in milliseconds and never get renewed; the timer runs only while some
 * attempt does.
 */
export class LeaseKeeper {
  readonly #held = new Set<HeldLease>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly ctx: AppContext) {}

  /** Keeps the lease of `entry`, a delivery this process just claimed or committed leased to itself. */
  hold(entry: Deno.KvEntry<Delivery>): HeldLease {
    const held: HeldLease = { entry, renewing: null, lost: false, unconfirmed: [], failing: false };
    this.#held.add(held);
    // Not unref'd: a running attempt keeps the process alive anyway, and the timer stops with the last one.
    this.#timer ??= setInterval(() => this.#renewDue(), CHECK_EVERY_MS);
    // A lease already low (a claim whose commit waited long) is renewed now, not at the next check.
    this.#renewIfLow(held, this.ctx.now());
    return held;
  }

  /** Stops keeping the lease; the entry as last stored (after any renewal under way), for the outcome to check. */
  async release(held: HeldLease): Promise<Deno.KvEntry<Delivery>> {
    this.#held.delete(held);
    if (this.#held.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    await held.renewing;
    return held.entry;
  }

  #renewDue() {
    const now = this.ctx.now();
    for (const held of this.#held) this.#renewIfLow(held, now);
  }

  #renewIfLow(held: HeldLease, now: number) {
    if (held.renewing || held.lost || held.entry.value.leaseUntil - now >= RENEW_BELOW_MS) return;
    held.renewing = this.#renew(held, now + DELIVERY_LEASE_MS)
      // The store could not be read: the next check tries again.
      .catch((err) => this.#warnOnceWhileFailing(held, err))
      .finally(() => (held.renewing = null));
  }

  /**
   * A renewal could not be written. Said once per run of failures: while the store is down every running attempt's
   * check fails each second, and one line per attempt says as much as all of them.
   */
  #warnOnceWhileFailing(held: HeldLease, err: unknown) {
    if (held.failing) return;
    held.failing = true;
    log.warn("postback lease renewal failed; trying again each second", {
      deliveryId: held.entry.value.id,
      error: describeError(err),
    });
  }

  async #renew(held: HeldLease, until: number) {
    held.unconfirmed.push(until);
    let renewed: Deno.KvEntry<Delivery> | null = null;
    let failure: unknown = null;
    try {
      renewed = await renewDeliveryLease(this.ctx.kv, held.entry, until);
    } catch (err) {
      failure = err;
    }
    if (!renewed) {
      // Refused or failed, the write may still have landed: a commit can land and report an error, and a group that
      // failed is retried write by write, whose check then fails on our own write. What the store holds tells.
      const stored = await getDeliveryEntry(this.ctx.kv, held.entry.value.id);
      // Nothing landed (the store failed): the next check tries again.
      if (stored.versionstamp === held.entry.versionstamp) {
        if (failure) this.#warnOnceWhileFailing(held, failure);
        return;
      }
      const v = stored.value;
      // One of our renewals: our lease's token (another worker's claim brings its own) and one of our ends.
      const ours = v !== null && v.leaseToken === held.entry.value.leaseToken &&
        held.unconfirmed.includes(v.leaseUntil) && v.attempts === held.entry.value.attempts;
      if (!ours) {
        held.lost = true;
        return;
      }
      renewed = stored as Deno.KvEntry<Delivery>;
    }
    held.entry = renewed;
    held.unconfirmed = [];
    if (held.failing) log.info("postback lease renewed again", { deliveryId: held.entry.value.id });
    held.failing = false;
  }
}

/**
 * Whether a lease this process holds still leaves time to start an attempt on it: enough for the keeper to renew
 * it before it runs out. A delivery handed over after waiting longer in the pool is claimed again first.
 */
export function leaseLeavesTimeToStart(d: Delivery, now: number): boolean {
  return d.leaseUntil - now >= RENEW_BELOW_MS;
}

const keepers = new WeakMap<AppContext, LeaseKeeper>();

/** The lease keeper of an app context (one per process and context, like its relay pool). */
export function leaseKeeper(ctx: AppContext): LeaseKeeper {
  let keeper = keepers.get(ctx);
  if (!keeper) keepers.set(ctx, keeper = new LeaseKeeper(ctx));
  return keeper;
}
