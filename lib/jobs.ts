import { runAnalyticsExport } from "./analytics/export.ts";
import type { AppContext } from "./context.ts";
import { isJobMessage, iterateDueJobs, JOB_KINDS, type JobKind, type JobMessage } from "./db/jobs.ts";
import { describeError, log } from "./log.ts";
import { relayPool } from "./relay/pool.ts";
import { runRefundJob } from "./refunds/settle.ts";
import { runRefundRecheck } from "./refunds/recheck.ts";
import { runPaymentCheck } from "./payments/janitor.ts";
import { runInvoiceCheck } from "./invoices/deposits.ts";

/**
 * Jobs a sweep has running at once, by kind. Postbacks go to the relay pool, which sets the real limits (in
 * total and per destination); the sweep only keeps it fed, and a postback parked behind its destination's share
 * frees its sweep slot at once (see sweepOffers). More waiting in the pool only costs memory: handing it 4,000 at
 * once, a 10,000-postback drain peaked at 430 MB and went no faster; 128 drained as fast in under 200 MB.
 */
const SWEEP_CONCURRENCY: Record<JobKind, number> = {
  postback: 128,
  analytics: 32,
  payment_check: 32,
  refund: 32,
  refund_recheck: 32,
  invoice_check: 32,
};
/** Longer waits are left to the sweep, which survives restarts. */
const MAX_KICK_DELAY_MS = 60_000;
/**
 * How long the cron's sweep waits for the work under way: within the minute between cron runs, because Deno.cron
 * skips a run while the last one is still going (see cronSweep).
 */
export const CRON_SWEEP_WAIT_MS = 50_000;
/** How often the cron's sweep looks whether the work under way has ended. */
const CRON_IDLE_POLL_MS = 250;

/** Runs one job by its id; idempotent, since every trigger may run a job more than once. */
type Handler = (ctx: AppContext, id: string) => Promise<void>;

/** The job registry: a new kind of background work is one entry in JOB_KINDS and one here. */
const handlers = {
  // Through the process's pool: one attempt per delivery at a time, a fair share per destination.
  postback: (ctx, id) => relayPool(ctx).offer(id),
  analytics: runAnalyticsExport,
  payment_check: runPaymentCheck,
  refund: runRefundJob,
  refund_recheck: runRefundRecheck,
  invoice_check: runInvoiceCheck,
} satisfies Record<JobKind, Handler>;

const jobKey = (msg: JobMessage) => `${msg.kind}:${msg.id}`;

/** A job started by a sweep: its end, and when it stops holding one of the sweep's slots. */
interface SweepStart {
  done: Promise<void>;
  taken: Promise<void>;
}

/**
 * Kinds whose jobs free their sweep slot before they end. A postback goes to the relay pool and frees its slot once
 * the pool has taken it, parked ones included: a postback parked behind its destination's share (one slow shop's
 * backlog, 8 s an answer) is the pool's to wait for, and holding the sweep's slot meanwhile, 128 of them kept the
 * sweep from every other shop's postbacks and from every later kind.
 */
const sweepOffers: Partial<Record<JobKind, (ctx: AppContext, id: string) => SweepStart>> = {
  postback: (ctx, id) => relayPool(ctx).offerTracked(id),
};

const logSweepFailure = (err: unknown) => log.error("sweep failed", { error: describeError(err) });

/** A listing of the due index: how many due jobs it started or joined, and their ends. */
interface Listed {
  ran: number;
  /** Waited for only by a sweep that waits (see startSweep). */
  ends: Promise<void>[];
}

/**
 * Runs background jobs from three triggers: KV queue messages (where queues
 * exist), in-process kicks, and sweeps of the due index (cron, start-up, and an
 * optional interval). Every trigger ends in the same idempotent handler.
 */
export class JobRunner {
  /** The sweep listing the due index now, if any; it ends when every due job was started, not when they end. */
  private listing: Promise<Listed> | null = null;
  /** Jobs running in this process by kind and id: a sweep that finds one due joins it instead of a second run. */
  private running = new Map<string, Promise<void>>();
  private inFlight = new Set<Promise<void>>();
  /** Every job run under way, however it started: `running` keeps one per job, and a job may run twice at once. */
  private allRuns = new Set<Promise<void>>();
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private stopped = false;

  /** Set when the relay pool asked for a sweep while one was listing (which may have passed what it let go). */
  private relist = false;

  constructor(private readonly ctx: AppContext) {
    relayPool(ctx).whenRoom(this.sweepAgain);
  }

  /**
   * Runs one job; errors are logged, never thrown, so a queue message is not retried for our own bug. A kick or
   * a queue message always runs it (a job may ask for itself again from its own run, as a full analytics batch
   * does), since the handlers are idempotent.
   */
  run(msg: JobMessage): Promise<void> {
    // After stop() the store may be closing; a job left undone stays due for the next process.
    if (this.stopped) return Promise.resolve();
    const key = jobKey(msg);
    const run: Promise<void> = this.runHandler(msg).finally(() => {
      if (this.running.get(key) === run) this.running.delete(key);
      this.allRuns.delete(run);
    });
    this.running.set(key, run);
    this.allRuns.add(run);
    return run;
  }

  private async runHandler(msg: JobMessage): Promise<void> {
    try {
      await handlers[msg.kind](this.ctx, msg.id);
    } catch (err) {
      log.error("job failed", { kind: msg.kind, id: msg.id, error: describeError(err) });
    }
  }

  /**
   * Handler for `kv.listenQueue`. Once stopping it refuses the message (it throws), so the queue delivers it again,
   * to a process still running, when that one next looks at the queue (on a SQLite file, another process does so on
   * its own at most once a minute): acknowledged here, the others would have only their sweeps to find its job.
   */
  onQueueMessage = async (value: unknown): Promise<void> => {
    if (this.stopped) throw new Error("stopping: the job is left to a process still running");
    if (isJobMessage(value)) await this.run(value);
  };

  /**
   * Runs a job in the background after `delayMs`. Only a shortcut for when no
   * queue wakes jobs: a timer dies with the process, the sweep does not.
   */
  kick = (msg: JobMessage, delayMs = 0): void => {
    if (this.stopped || delayMs > MAX_KICK_DELAY_MS) return;
    const start = () => {
      const p = this.run(msg).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    };
    // Due now (a postback after its commit): right after the caller's code, not a timer tick later.
    if (delayMs <= 0) return queueMicrotask(() => this.stopped || start());
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      start();
    }, delayMs);
    this.timers.add(timer);
  };

  /** Takes no new work, cancels pending kicks and waits for running ones; other runs may still be under way (drain). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    // The pool's stop gives back the leases of new postbacks it will not send, before the store may close.
    await Promise.all([relayPool(this.ctx).stop(), this.idle()]);
  }

  /**
   * Stops, then waits for every job this process has under way, however it started (a sweep, a queue message, a
   * kick), so that their outcomes are stored: a process asked to stop sends no postback twice for lack of waiting.
   * Each waits for its own calls' timeouts; the caller bounds the whole.
   */
  async drain(): Promise<void> {
    await this.stop();
    await this.listing?.catch(() => {});
    while (this.allRuns.size) await Promise.allSettled([...this.allRuns]);
    await relayPool(this.ctx).idle();
  }

  /**
   * Runs every job due now, once each, and resolves when they ended, with how many it found due. Calls while one is
   * still listing the due index share it; a call after that lists again (a slow shop's parked backlog must not
   * keep later work from being found), and jobs still running from before are joined, not started again.
   */
  async sweep(): Promise<number> {
    const { ran, ends } = await this.list();
    await Promise.all(ends);
    return ran;
  }

  /**
   * Lists the due index and starts what is due without waiting for the jobs' ends, for the triggers nobody waits on
   * (start-up, a timer, the relay pool's ask); resolves once all are started, with how many. Never rejects: a failure
   * is logged, and the next trigger lists again. Waiting costs a reaction on every job found, kept until the job ends
   * whether anyone still waits or not (measured: 440 KB for 4,000 pending postbacks), so a sweep every second over
   * one hanging shop's parked backlog kept 440 KB more a second for as long as the backlog took.
   */
  async startSweep(): Promise<number> {
    try {
      return (await this.list()).ran;
    } catch (err) {
      logSweepFailure(err);
      return 0;
    }
  }

  private list(): Promise<Listed> {
    return this.listing ??= this.startDueJobs().finally(() => {
      this.listing = null;
      if (this.relist) this.sweepAgain();
    });
  }

  /**
   * The cron's sweep: lists the due index and starts what is due, then waits while this process has jobs or postbacks
   * under way, at most `maxWaitMs` in all, and leaves the rest running. Deno.cron skips a run while the last one is
   * still going: waiting for every postback found, parked ones included, one hanging shop with 1,000 due postbacks
   * (64 at a time, 15 s each) held a cron run for about 4 minutes, and where the cron is the only durable trigger
   * (Deploy, no queues) every other shop's retries and every status check waited with it. What is left running is
   * safe to lose with the process: a parked postback is not claimed and stays due, and one under way is sent again
   * after its lease, as after a crash. The next run lists the index again and joins what still runs here.
   *
   * It looks every CRON_IDLE_POLL_MS instead of waiting on each job: that wait keeps a reaction on every job until it
   * ends, and a run a minute over a hanging shop's backlog added 440 KB per 4,000 pending postbacks each time.
   */
  async cronSweep(maxWaitMs = CRON_SWEEP_WAIT_MS): Promise<void> {
    // Stopping: the store may be closing, and what is due stays due for the next process.
    if (this.stopped) return;
    // A monotonic clock: a wall clock stepped back would stretch the run past the next minute's.
    const deadline = performance.now() + maxWaitMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), maxWaitMs)));
    const listed = this.list();
    try {
      // A listing that fails in time fails the cron run, as it did before; one that fails later is logged.
      if (await Promise.race([listed, late]) === "late") {
        listed.catch(logSweepFailure);
        return;
      }
    } finally {
      clearTimeout(timer);
    }
    while (this.busy() && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(CRON_IDLE_POLL_MS, deadline - performance.now())));
    }
  }

  /** Whether this process has a job run or a postback under way, however it started. */
  private busy(): boolean {
    return this.allRuns.size > 0 || relayPool(this.ctx).size > 0;
  }

  /** The relay pool let due postbacks go for want of parking and has room again: list the index once more. */
  private sweepAgain = () => {
    if (this.stopped) return;
    this.relist = this.listing !== null;
    if (!this.relist) this.startSweep();
  };

  /** Waits for background work started by kick (tests and shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  /**
   * Starts each kind's due jobs, kinds one after another but without waiting for a kind's last jobs before the
   * next kind starts (a slow shop's postbacks must not hold up refunds and status checks); resolves once all
   * are started, with how many and their ends.
   */
  private async startDueJobs(): Promise<Listed> {
    let ran = 0;
    const ends: Promise<void>[] = [];
    for (const kind of JOB_KINDS) {
      const slots = new Set<Promise<void>>();
      for await (const id of iterateDueJobs(this.ctx.kv, kind, this.ctx.now())) {
        // After stop() the store may be closing: what is left stays due for the next process.
        if (this.stopped) break;
        const { done, taken } = this.startForSweep({ kind, id });
        const slot = taken.finally(() => slots.delete(slot));
        slots.add(slot);
        ends.push(done);
        ran++;
        if (slots.size >= SWEEP_CONCURRENCY[kind]) await Promise.race(slots);
      }
    }
    return { ran, ends };
  }

  /** A due job for a sweep: through its kind's sweep offer, or joined when it is running here already. */
  private startForSweep(msg: JobMessage): SweepStart {
    const offer = sweepOffers[msg.kind];
    if (offer) return offer(this.ctx, msg.id);
    const done = this.running.get(jobKey(msg)) ?? this.run(msg);
    return { done, taken: done };
  }
}
