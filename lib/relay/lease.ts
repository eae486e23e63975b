import type { AppContext } from "../context.ts";
import { renewDeliveryLease } from "../db/deliveries.ts";
import { describeError, log } from "../log.ts";
import type { Delivery } from "./types.ts";

/**
 * How long a claim holds a delivery. Short on purpose: a process that dies mid-attempt holds its deliveries no
 * longer than this, and then any sweep sends them (the crash costs the shop seconds, not an attempt's whole
 * timeout). An attempt that runs longer, a shop taking seconds to answer (up to POSTBACK_TIMEOUT_MS), keeps its
 * lease by renewing it while it runs (LeaseKeeper).
 */
export const DELIVERY_LEASE_MS = 5_000;
/** The keeper looks at the leases it keeps this often, */
const CHECK_EVERY_MS = 1_000;
/** and renews those with less than this left: a check a second late still renews with a second to spare. */
const RENEW_BELOW_MS = 3_000;

/** The lease of a delivery whose attempt runs in this process, as last stored. */
export interface HeldLease {
  entry: Deno.KvEntry<Delivery>;
  renewing: Promise<void> | null;
  /** A renewal found the delivery taken by another worker (our lease had run out): nothing more to renew. */
  lost: boolean;
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
    const held: HeldLease = { entry, renewing: null, lost: false };
    this.#held.add(held);
    // Not unref'd: a running attempt keeps the process alive anyway, and the timer stops with the last one.
    this.#timer ??= setInterval(() => this.#renewDue(), CHECK_EVERY_MS);
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
    for (const held of this.#held) {
      if (held.renewing || held.lost || held.entry.value.leaseUntil - now >= RENEW_BELOW_MS) continue;
      held.renewing = renewDeliveryLease(this.ctx.kv, held.entry, now + DELIVERY_LEASE_MS)
        .then(
          (renewed) => {
            if (renewed) held.entry = renewed;
            else held.lost = true;
          },
          (err) =>
            log.error("postback lease renewal failed", { deliveryId: held.entry.value.id, error: describeError(err) }),
        )
        .finally(() => (held.renewing = null));
    }
  }
}

/**
 * Whether a lease this process holds still leaves time to start an attempt on it: enough for the keeper to renew
 * it before it runs out. A delivery handed over after waiting longer in the pool is claimed again first.
 */
export function leaseLeavesTimeToStart(d: Delivery, now: number): boolean {
  return d.leaseUntil - now >= RENEW_BELOW_MS - CHECK_EVERY_MS;
}

const keepers = new WeakMap<AppContext, LeaseKeeper>();

/** The lease keeper of an app context (one per process and context, like its relay pool). */
export function leaseKeeper(ctx: AppContext): LeaseKeeper {
  let keeper = keepers.get(ctx);
  if (!keeper) keepers.set(ctx, keeper = new LeaseKeeper(ctx));
  return keeper;
}
