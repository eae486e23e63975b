import { runAnalyticsExport } from "./analytics/export.ts";
import type { AppContext } from "./context.ts";
import { isJobMessage, iterateDueJobs, JOB_KINDS, type JobKind, type JobMessage } from "./db/jobs.ts";
import { describeError, log } from "./log.ts";
import { relayPool } from "./relay/pool.ts";
import { runRefundJob } from "./refunds/settle.ts";
import { runPaymentCheck } from "./payments/janitor.ts";
import { runInvoiceCheck } from "./invoices/deposits.ts";

/**
 * Jobs a sweep has running at once, by kind. Postbacks go to the relay pool, which sets the real limits (in
 * total and per destination); the sweep only keeps it fed. More waiting
 * in the pool only costs memory: handing it 4,000 at once, a 10,000-postback drain peaked at 430 MB and went no
 * faster; 128 drained as fast in under 200 MB. (A sweep that meets more than that of one slow shop's backlog first
 * waits behind it; new postbacks are kicked, not swept, so this is a restart's backlog only.)
 */
const SWEEP_CONCURRENCY: Record<JobKind, number> = {
  postback: 128,
  analytics: 32,
  payment_check: 32,
  refund: 32,
  invoice_check: 32,
};
/** Longer waits are left to the sweep, which survives restarts. */
const MAX_KICK_DELAY_MS = 60_000;

/** Runs one job by its id; idempotent, since every trigger may run a job more than once. */
type Handler = (ctx: AppContext, id: string) => Promise<void>;

/** The job registry: a new kind of background work is one entry in JOB_KINDS and one here. */
const handlers = {
  // Through the process's pool: one attempt per delivery at a time, a fair share per destination.
  postback: (ctx, id) => relayPool(ctx).offer(id),
  analytics: runAnalyticsExport,
  payment_check: runPaymentCheck,
  refund: runRefundJob,
  invoice_check: runInvoiceCheck,
} satisfies Record<JobKind, Handler>;

/**
 * Runs background jobs from three triggers: KV queue messages (where queues
 * exist), in-process kicks, and sweeps of the due index (cron, start-up, and an
 * optional interval). Every trigger ends in the same idempotent handler.
 */
export class JobRunner {
  private sweeping: Promise<number> | null = null;
  private inFlight = new Set<Promise<void>>();
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private stopped = false;

  constructor(private readonly ctx: AppContext) {}

  /** Runs one job; errors are logged, never thrown, so a queue message is not retried for our own bug. */
  async run(msg: JobMessage): Promise<void> {
    // After stop() the store may be closing; a job left undone stays due for the next process.
    if (this.stopped) return;
    try {
      await handlers[msg.kind](this.ctx, msg.id);
    } catch (err) {
      log.error("job failed", { kind: msg.kind, id: msg.id, error: describeError(err) });
    }
  }

  /** Handler for `kv.listenQueue`. */
  onQueueMessage = async (value: unknown): Promise<void> => {
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

  /** Cancels pending kicks and waits for running ones (tests and shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    relayPool(this.ctx).stop();
    await this.idle();
  }

  /** Runs every job due now, once each; overlapping calls share one sweep. Returns how many it ran. */
  sweep(): Promise<number> {
    this.sweeping ??= this.sweepOnce().finally(() => (this.sweeping = null));
    return this.sweeping;
  }

  /** Waits for background work started by kick (tests and shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  /**
   * Each kind's due jobs, kinds one after another but without waiting for a kind's last jobs before the next
   * kind starts (a slow shop's postbacks must not hold up refunds and status checks); resolves when all ran.
   */
  private async sweepOnce(): Promise<number> {
    let ran = 0;
    const all: Promise<void>[] = [];
    for (const kind of JOB_KINDS) {
      const running = new Set<Promise<void>>();
      for await (const id of iterateDueJobs(this.ctx.kv, kind, this.ctx.now())) {
        const p = this.run({ kind, id }).finally(() => running.delete(p));
        running.add(p);
        all.push(p);
        ran++;
        if (running.size >= SWEEP_CONCURRENCY[kind]) await Promise.race(running);
      }
    }
    await Promise.all(all);
    return ran;
  }
}
