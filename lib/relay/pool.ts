import type { AppContext } from "../context.ts";
import {
  getDeliveryEntryShared,
  heldWhileDue,
  isDeliveryDue,
  releaseDeliveryLease,
  storedDelivery,
} from "../db/deliveries.ts";
import { describeError, log } from "../log.ts";
import { attemptDelivery, attemptHandedOver } from "./deliver.ts";
import { DELIVERY_LEASE_MS } from "./lease.ts";
import { type AttemptOutcome, strainsDestination } from "./schedule.ts";
import type { Delivery } from "./types.ts";

export interface PoolLimits {
  /** Attempts (and reads before them) in flight at once in this process. */
  total: number;
  /**
   * Attempts in flight at once to one destination (a shop's URL origin): a slow shop only fills its own share. The
   * most a destination gets: its share halves with each attempt that strains it (strainsDestination) and grows by one
   * with each delivered, like TCP's congestion window, so a shop that is down or overloaded, or coming back from an
   * outage to a backlog, gets a few at once rather than this many.
   */
  perDestination: number;
  /** The least a destination's share shrinks to: a shop that is down still gets attempts, to notice it is back. */
  minPerDestination: number;
  /**
   * How long a destination's shrunk share is remembered once it has nothing in flight or waiting: the postbacks of
   * a shop that is down come back on their schedule's steps (minutes apart), and would otherwise start again at
   * `perDestination` each time.
   */
  shrunkShareMemoryMs: number;
  /**
   * Deliveries waiting for their destination's share, at most, in all; past that they stay due in the index, and
   * once half the parking is free again the pool asks for a sweep to find them (whenRoom).
   */
  parked: number;
  /**
   * The same, for one destination: once half its parking is free again after it let some go, the pool asks for a
   * sweep. One hanging shop's backlog can hold only this much of the parking that other shops' backlogs need.
   */
  parkedPerDestination: number;
  /**
   * An attempt still running after this long stops counting against `total` (see `long`): a shop that answers
   * slowly or not at all costs the pool an open connection, not work.
   */
  longAfterMs: number;
  /**
   * Attempts running past `longAfterMs`, at most, beside `total`; past that they count against `total` again. Counted
   * there, five hanging shops (5 × 64) filled the pool and held up every other shop's postbacks until they timed out.
   */
  long: number;
}

/**
 * As many attempts at one destination as the bench's BullMQ peer has in flight (its worker's concurrency): a shop
 * catching up after an outage gets its backlog at the rate it can take. Since a parked postback is no longer read
 * twice, 64 per destination drained a one-shop backlog 1.29 × as fast as 32 (side by side), for 2-4 MB more at peak.
 * A shop's answer takes milliseconds; one that takes a second is waited for beside the 320, up to 512 of them: eight
 * shops that hang (8 × 64) leave the whole pool to the others and twelve a fifth of it. A waiting request costs about
 * 62 KB (measured: 1,024 POSTs held by a local server took 63 MB more), so 512 bound that at about 32 MB.
 */
export const DEFAULT_POOL_LIMITS: PoolLimits = {
  total: 320,
  perDestination: 64,
  minPerDestination: 2,
  shrunkShareMemoryMs: 60 * 60_000,
  parked: 12_000,
  parkedPerDestination: 4_000,
  longAfterMs: 1_000,
  long: 512,
};

interface Offered {
  done: Promise<void>;
  resolve: () => void;
  /** Resolves once the id has left the queue: its attempt started, it was parked, or it was let go. */
  taken: Promise<void>;
  resolveTaken: () => void;
}

/** One of a destination's attempt slots, held from the read before an attempt until the attempt ends. */
interface Slot {
  name: string;
  destination: Destination;
}

interface Destination {
  active: number;
  /** Attempts it may have in flight now: between minPerDestination and perDestination (see PoolLimits). */
  share: number;
  /** Deliveries read and due, waiting for a free slot here, as read (see Parked). */
  parked: Parked[];
  /** Due deliveries to here were let go for want of its parking since it last asked for a sweep. */
  letGo: boolean;
}

/** A take under way (a read, then an attempt): when it started, and whether it counts as long-running. */
interface Running {
  startedAt: number;
  long: boolean;
}

/**
 * A delivery waiting for its destination's share, as it was read. Its attempt claims it against that version, so
 * it is not read again when its turn comes; only when the claim fails (it was written meanwhile, or is no longer
 * due) is it read again.
 */
interface Parked {
  id: string;
  entry: Deno.KvEntry<Delivery>;
}

/**
 * Every postback attempt of this process goes through its pool, whoever asks
 * for it: an in-process kick after a state change, a KV queue message, a sweep
 * of the due index. The pool keeps as many attempts in flight as its limits
 * allow (as one finishes the next starts, so there are no batches to wait
 * for), and gives each destination its own share, so a shop that answers
 * slowly or not at all only delays its own postbacks. Attempts that have run a
 * while (longAfterMs) are waited for beside the total, so several such shops at
 * once do not fill the pool either (see DEFAULT_POOL_LIMITS).
 *
 * An id offered twice while it is waiting or running is one attempt: the sweep
 * and the queue listener never send the same delivery twice from here. Across
 * processes the claim (a lease checked against the version read) keeps them
 * apart. Whatever the pool does not get to (it was stopped, or too much was
 * parked) stays due in the index, where the next sweep finds it.
 */
export class RelayPool {
  readonly #known = new Map<string, Offered>();
  /** Deliveries found held by another's live lease: when the look at them planned for the lease's end comes. */
  readonly #relooks = new Map<string, number>();
  /** Offered ids not read yet, in order; `#head` is the next one (a moving index instead of Array.shift). */
  #queue: string[] = [];
  #head = 0;
  /** Takes under way that count against `total`. */
  #inFlight = 0;
  /** Takes under way past `longAfterMs`, counted beside `total` (up to `long`). */
  #longRunning = 0;
  readonly #running = new Set<Running>();
  /** While takes are under way: moves those past `longAfterMs` out of `#inFlight`. */
  #longWatch: ReturnType<typeof setInterval> | undefined;
  #parked = 0;
  /** Due deliveries were let go for want of parking in all since the pool last asked for a sweep for that. */
  #letGo = false;
  #onRoom: (() => void) | undefined;
  readonly #destinations = new Map<string, Destination>();
  /**
   * Shares below perDestination of destinations with nothing in flight or waiting, with when they are forgotten;
   * in the order they were put here (the oldest goes first when it is full).
   */
  readonly #shrunkShares = new Map<string, { share: number; until: number }>();
  /** New deliveries this process committed leased to itself (handOver), by id, until their first attempt. */
  readonly #handedOver = new Map<string, Deno.KvEntry<Delivery>>();
  /** The stop's writes giving back the leases of handed-over deliveries it let go (see stop), waited for by idle. */
  #givingBack: Promise<unknown>[] = [];
  #stopped = false;

  private readonly limits: PoolLimits;

  constructor(private readonly ctx: AppContext, limits: Partial<PoolLimits> = {}) {
    this.limits = { ...DEFAULT_POOL_LIMITS, ...limits };
  }

  /**
   * A delivery this process just committed with its first lease (firstAttemptLease), as stored: when it is
   * offered, its first attempt needs neither a read nor a claim. The caller offers it next (a kick). Handed over
   * once stopped (made leased before the stop, its commit back after), its lease is given back, as stop does.
   */
  handOver(entry: Deno.KvEntry<Delivery>) {
    if (!this.#stopped) this.#handedOver.set(entry.value.id, entry);
    else if (entry.value.leaseUntil > 0) this.#giveBack(entry);
  }

  /** Attempts the delivery if it is due; resolves once this process is done with it (attempted or not). */
  offer(id: string): Promise<void> {
    return this.offerTracked(id).done;
  }

  /**
   * `offer`, also telling when the pool took the id off its queue (`taken`): its attempt started, it was parked
   * behind its destination's share, or it was let go. A sweep waits for that, not for the end, before it offers
   * more, so one slow shop's parked backlog does not keep it from the rest of the due index.
   */
  offerTracked(id: string): { done: Promise<void>; taken: Promise<void> } {
    const known = this.#known.get(id);
    if (known) return known;
    if (this.#stopped) return { done: Promise.resolve(), taken: Promise.resolve() };
    let resolve!: () => void;
    let resolveTaken!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const taken = new Promise<void>((r) => (resolveTaken = r));
    this.#known.set(id, { done, resolve, taken, resolveTaken });
    this.#queue.push(id);
    this.#pump();
    return { done, taken };
  }

  /** Whether it has stopped taking new work (see stop). */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** How many deliveries this process holds: offered and not finished. */
  get size(): number {
    return this.#known.size;
  }

  /**
   * Takes nothing new and lets queued and parked ids go (they stay due); running attempts finish. Resolves once the
   * leases of the handed-over ones it let go are given back (below).
   */
  stop(): Promise<void> {
    this.#stopped = true;
    // New deliveries handed over and not attempted yet (queued, parked, or their kick still to come) hold a lease of
    // this process's, which sends nothing more: given back, the next process's start-up sweep sends them at once,
    // rather than the cron's run after the lease (a deploy at a busy moment), and another process already running at
    // its next sweep. A failed write leaves the lease to run out.
    const letGo = new Set(this.#queue.slice(this.#head));
    for (const d of this.#destinations.values()) for (const p of d.parked) letGo.add(p.id);
    // One a take holds is left to it: its attempt runs on, or its read (a sweep's, out when the hand-over came) ends
    // in the take's own give-back.
    for (const [id, entry] of this.#handedOver) {
      if (this.#known.has(id) && !letGo.has(id)) continue;
      this.#giveBack(entry);
      this.#handedOver.delete(id);
    }
    for (const id of this.#queue.slice(this.#head)) this.#finish(id);
    this.#queue = [];
    this.#head = 0;
    for (const d of this.#destinations.values()) d.parked.splice(0).forEach((p) => this.#finish(p.id));
    this.#parked = 0;
    return this.#givenBack();
  }

  /** Resolves once this process holds no delivery: after `stop`, once the attempts that were running have ended. */
  async idle(): Promise<void> {
    while (this.#known.size) await Promise.all([...this.#known.values()].map((k) => k.done));
    await this.#givenBack();
  }

  /** Gives back the first lease of a handed-over delivery this process will not attempt; a failure leaves it to run out. */
  #giveBack(entry: Deno.KvEntry<Delivery>) {
    // Where a queue exists, its message goes in the same write; on a SQLite file it reaches another process only when
    // that one next looks at the queue (at most a minute), so processes sharing a file sweep (JOBS_SWEEP_INTERVAL_MS).
    const given = releaseDeliveryLease(this.ctx.kv, entry, { queue: this.ctx.config.jobsQueue });
    this.#givingBack.push(given.catch(() => {}));
  }

  async #givenBack() {
    await Promise.all(this.#givingBack);
  }

  /**
   * Called once half the parking (in all, or a destination's) is free again after due deliveries were let go for
   * want of it (they stay due in the index): the owner sweeps to find them. Nobody waits for room meanwhile, so one
   * slow shop's backlog filling the parking holds up no other shop and no sweep.
   */
  whenRoom(onRoom: () => void) {
    this.#onRoom = onRoom;
  }

  #pump() {
    while (!this.#stopped && this.#head < this.#queue.length && this.#inFlight < this.limits.total) {
      this.#take(this.#queue[this.#head++]);
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
  }

  /**
   * Reads the delivery (reads of concurrent takes share one store read) and attempts it or parks it. A parked
   * delivery comes back here as it was read (`parkedEntry`), holding the slot that freed for it (`held`), so the
   * slot is never lost: whether it is attempted, found no longer due, or fails, the slot passes on to the
   * destination's next parked delivery. A slot handed on by a long-running take starts its next take as long-running
   * (`long`): one leaves as one enters, so the cap holds, and a hanging shop's attempts, which time out together, do
   * not all count against `total` at once until the watch moves them again.
   */
  async #take(id: string, held?: Slot, parkedEntry?: Deno.KvEntry<Delivery>, long = false) {
    if (long) this.#longRunning++;
    else this.#inFlight++;
    const running: Running = { startedAt: Date.now(), long };
    this.#running.add(running);
    if (!this.#longWatch) {
      this.#longWatch = setInterval(this.#watchLong, this.limits.longAfterMs / 2);
      // Takes end by their own timeouts; the watch alone never keeps a process up.
      Deno.unrefTimer(this.#longWatch);
    }
    let slot = held;
    try {
      // Handed over by the commit that made it: ours, as stored, without a read.
      const handedBefore = this.#handedOver.get(id);
      const entry = handedBefore ?? parkedEntry ?? await getDeliveryEntryShared(this.ctx.kv, id);
      // Handed over while the read was out (a sweep offered it between its commit and the hand-over): the stored
      // entry is leased to us, so it reads as not due, but it is ours to send now.
      const handed = handedBefore ?? this.#handedOver.get(id);
      // A parked one was due when it was read, and its claim checks again. Not judged here: its attempt always waits
      // for the store before the slot passes on, so thousands of parked ones passed over never nest one hand-on in
      // the next (a clock stepped back once overflowed the stack that way).
      const delivery = handed
        ? handed.value
        : parkedEntry
        ? parkedEntry.value
        : isDeliveryDue(entry.value, this.ctx.now())
        ? entry.value
        : null;
      if (this.#stopped) {
        if (handed) this.#giveBack(handed);
        return this.#finish(id);
      }
      if (!delivery) {
        // Due but held by a live lease: an attempt under way elsewhere, or one a killed process left (what a restart's
        // sweep finds). Looked at again once the lease ends, rather than at the cron's next run, a minute later.
        // One look per lease: sweeps of a store several processes drain find the same held deliveries again and again.
        const now = this.ctx.now();
        const held = heldWhileDue(entry.value, now);
        const planned = this.#relooks.get(id) ?? 0;
        if (held > 0 && planned <= now) {
          this.#relooks.set(id, now + held + 1);
          this.ctx.kick({ kind: "postback", id }, held + 1);
        } else if (held === 0) this.#relooks.delete(id);
        return this.#finish(id);
      }
      this.#relooks.delete(id);
      if (!slot) {
        const name = destinationOf(delivery);
        const destination = this.#destinations.get(name) ?? this.#newDestination(name);
        if (destination.active >= destination.share) {
          const parkingFull = this.#parked >= this.limits.parked;
          if (parkingFull || destination.parked.length >= this.limits.parkedPerDestination) {
            if (parkingFull) this.#letGo = true;
            else destination.letGo = true;
            return this.#finish(id);
          }
          destination.parked.push({ id, entry: handed ?? entry as Deno.KvEntry<Delivery> });
          this.#parked++;
          this.#known.get(id)?.resolveTaken();
          return;
        }
        destination.active++;
        slot = { name, destination };
      }
      this.#known.get(id)?.resolveTaken();
      let outcome = handed
        ? await attemptHandedOver(this.ctx, handed)
        : await attemptDelivery(this.ctx, entry as Deno.KvEntry<Delivery>);
      if (!outcome && !handed && parkedEntry) {
        // Written while it waited here (by another process, or an operator's resend), or no longer due: as it
        // stands now, if due.
        const fresh = await getDeliveryEntryShared(this.ctx.kv, id);
        if (isDeliveryDue(fresh.value, this.ctx.now())) {
          outcome = await attemptDelivery(this.ctx, fresh as Deno.KvEntry<Delivery>);
        }
      }
      if (outcome) this.#adjustShare(slot.destination, outcome);
      this.#finish(id);
    } catch (err) {
      log.error("postback attempt failed", { deliveryId: id, error: describeError(err) });
      this.#finish(id);
    } finally {
      // Passed on as long-running only by a take that itself ran long: a shop that answers quickly again gets its
      // slots counted against the total again.
      if (slot) this.#release(slot, running.long && Date.now() - running.startedAt >= this.limits.longAfterMs);
      this.#running.delete(running);
      if (running.long) this.#longRunning--;
      else this.#inFlight--;
      if (this.#running.size === 0) {
        clearInterval(this.#longWatch);
        this.#longWatch = undefined;
      }
      this.#pump();
    }
  }

  /**
   * Takes that have run past `longAfterMs` (a shop slow to answer, or not answering until the timeout) stop counting
   * against `total`, up to `long` of them, so the pool starts others in their place. Checked twice per `longAfterMs`
   * by one timer, not a timer per attempt: most attempts end in milliseconds.
   */
  #watchLong = () => {
    const startedBefore = Date.now() - this.limits.longAfterMs;
    let moved = false;
    for (const running of this.#running) {
      if (this.#longRunning >= this.limits.long) break;
      if (running.long || running.startedAt > startedBefore) continue;
      running.long = true;
      this.#inFlight--;
      this.#longRunning++;
      moved = true;
    }
    if (moved) this.#pump();
  };

  /**
   * A slot freed at a destination (by a long-running take or not): it goes to the next parked delivery there,
   * unless the destination is over its share (it shrank while these ran). A share grown meanwhile starts more of its
   * parked deliveries, as far as the pool has room.
   */
  #release({ name, destination }: Slot, long: boolean) {
    const next = this.#stopped || destination.active > destination.share ? undefined : this.#unpark(destination);
    if (next === undefined) {
      destination.active--;
      if (destination.active === 0 && destination.parked.length === 0) this.#forget(name, destination);
      return;
    }
    this.#take(next.id, { name, destination }, next.entry, long);
    while (
      !this.#stopped && destination.active < destination.share && destination.parked.length &&
      this.#inFlight < this.limits.total
    ) {
      const more = this.#unpark(destination)!;
      destination.active++;
      this.#take(more.id, { name, destination }, more.entry);
    }
  }

  /** Takes the destination's next parked delivery; asks for a sweep once half the parking it filled is free again. */
  #unpark(destination: Destination): Parked | undefined {
    const next = destination.parked.shift();
    if (next === undefined) return undefined;
    this.#parked--;
    const roomInAll = this.#letGo && this.#parked <= this.limits.parked / 2;
    const roomHere = destination.letGo && destination.parked.length <= this.limits.parkedPerDestination / 2;
    if (roomInAll || roomHere) {
      if (roomInAll) this.#letGo = false;
      if (roomHere) destination.letGo = false;
      this.#onRoom?.();
    }
    return next;
  }

  /** Halves the destination's share after an attempt that strained it; one more after each delivered. */
  #adjustShare(destination: Destination, outcome: AttemptOutcome) {
    if (strainsDestination(outcome)) {
      const least = Math.min(this.limits.minPerDestination, this.limits.perDestination);
      destination.share = Math.max(least, Math.floor(destination.share / 2));
    } else if (outcome.kind === "delivered" && destination.share < this.limits.perDestination) {
      destination.share++;
    }
  }

  /** A destination as it starts: at its remembered shrunk share, else at perDestination. */
  #newDestination(name: string): Destination {
    const remembered = this.#shrunkShares.get(name);
    this.#shrunkShares.delete(name);
    const share = remembered && remembered.until > Date.now() ? remembered.share : this.limits.perDestination;
    const destination: Destination = { active: 0, share, parked: [], letGo: false };
    this.#destinations.set(name, destination);
    return destination;
  }

  /** Drops a destination with nothing in flight or waiting, remembering its share if it shrank (bounded). */
  #forget(name: string, destination: Destination) {
    this.#destinations.delete(name);
    if (destination.share >= this.limits.perDestination) return;
    if (this.#shrunkShares.size >= MAX_SHRUNK_SHARES_KEPT) {
      this.#shrunkShares.delete(this.#shrunkShares.keys().next().value!);
    }
    this.#shrunkShares.set(name, { share: destination.share, until: Date.now() + this.limits.shrunkShareMemoryMs });
  }

  #finish(id: string) {
    this.#handedOver.delete(id);
    const known = this.#known.get(id);
    this.#known.delete(id);
    known?.resolveTaken();
    known?.resolve();
  }
}

/**
 * Where a postback goes, as far as sharing goes: its shop and its URL's origin (one shop may have several). By origin
 * alone, a shop whose postback URL named another shop's origin took from that shop's share; several shops behind one
 * receiving service each have their own.
 */
function destinationOf(d: Delivery): string {
  let origin = d.url;
  try {
    origin = new URL(d.url).origin;
  } catch {
    // Not a URL: its attempt fails as such; it still has a destination of its own.
  }
  return `${d.shopId} ${origin}`;
}

/** Shrunk shares remembered at most (a few dozen bytes each): more destinations than that are rarely down at once. */
const MAX_SHRUNK_SHARES_KEPT = 10_000;

const pools = new WeakMap<AppContext, RelayPool>();

/** The relay pool of an app context (one per process and context). */
export function relayPool(ctx: AppContext): RelayPool {
  let pool = pools.get(ctx);
  if (!pool) pools.set(ctx, pool = new RelayPool(ctx));
  return pool;
}

/**
 * The lease a new delivery is born with when the process committing it makes its first attempt itself (no
 * claim of its own, see RelayPool.handOver). Should that process die first, the delivery waits this long,
 * as one whose attempt a crash cut short does, and then any sweep sends it. None once the pool has stopped (the
 * process is stopping, its requests still answered): it would not send it, and the next process's start-up sweep
 * would find it leased and leave it to the cron's run after the lease, a minute later.
 */
export function firstAttemptLease(ctx: AppContext, now: number): number {
  return relayPool(ctx).stopped ? 0 : now + DELIVERY_LEASE_MS;
}

/**
 * Sends a delivery this process just committed leased to itself (born with firstAttemptLease), as `versionstamp`
 * stored it: its first attempt needs neither a read nor a claim. The sweep is the durable backup.
 */
export function sendCommitted(ctx: AppContext, delivery: Delivery, versionstamp: string) {
  relayPool(ctx).handOver(storedDelivery(delivery, versionstamp));
  ctx.kick({ kind: "postback", id: delivery.id });
}
