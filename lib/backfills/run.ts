import type { AppContext } from "../context.ts";
import { type BackfillName, type BackfillState, commitBackfillState, getBackfillState } from "../db/backfills.ts";

/**
 * Backfills give records stored by an earlier version what this one writes with each new record: background checks
 * that only records written since would otherwise get. Each reads a bounded part of the store (only records that can
 * still need it), in time order through an existing listing, a batch at a time; each write is one atomic operation
 * checked against the version read (a record changed meanwhile is left to what changed it, which wrote it as this
 * version does), and writes only what is missing, so a second run changes nothing. Progress is one record per
 * backfill (lib/db/backfills.ts): resumable after a restart, shared by runners on several processes.
 *
 * They run at every start-up in the background (startBackfills), so an operator who upgrades in place need not
 * remember them: once done, a start-up costs one read per backfill. `deno task payment backfill` runs them to the end
 * in the foreground and says when they are.
 */
export interface Backfill {
  name: BackfillName;
  /** What it does, for the start-up log and the CLI. */
  what: string;
  /**
   * One batch of at most `batchSize` records from `state.after` (the records stored before `state.cut`): the cursor
   * reached, whether nothing is left to read, and how many records it wrote.
   */
  step(ctx: AppContext, state: BackfillState, batchSize: number): Promise<BackfillStep>;
}

export interface BackfillStep {
  after: string | null;
  done: boolean;
  written: number;
}

export interface BackfillResult {
  name: BackfillName;
  done: boolean;
  /** Records written by this run (another runner's writes are its own). */
  written: number;
}

/**
 * Runs a backfill from where it stands, a batch and its progress at a time, until it is done, `maxBatches` ran or
 * `signal` aborts. Once done, one read.
 */
export async function runBackfill(
  ctx: AppContext,
  backfill: Backfill,
  opts: { batchSize?: number; maxBatches?: number; signal?: AbortSignal } = {},
): Promise<BackfillResult> {
  const batchSize = opts.batchSize ?? 100;
  let written = 0;
  for (let batches = 0; batches < (opts.maxBatches ?? Infinity) && !opts.signal?.aborted;) {
    const read = await getBackfillState(ctx.kv, backfill.name);
    if (read.value?.done) return { name: backfill.name, done: true, written };
    if (!read.value) {
      // The first run anywhere fixes the cut: records written from now on are this version's own.
      const first: BackfillState = { done: false, cut: ctx.now(), after: null, written: 0, doneAt: null };
      await commitBackfillState(ctx.kv, backfill.name, read, first);
      continue;
    }
    const state = read.value;
    const step = await backfill.step(ctx, state, batchSize);
    batches++;
    written += step.written;
    // A failed check means another runner moved on meanwhile: its progress is read next, and this batch's writes,
    // each checked on its own record, stand (or were refused as already made).
    await commitBackfillState(ctx.kv, backfill.name, read, {
      ...state,
      done: step.done,
      after: step.after,
      written: state.written + step.written,
      doneAt: step.done ? ctx.now() : null,
    });
  }
  return { name: backfill.name, done: (await getBackfillState(ctx.kv, backfill.name)).value?.done === true, written };
}

/**
 * When a record the backfill finds is first checked. Where the schedule it would have had from `from` has a step left
 * and none has passed yet, that step, exactly as a record written by this version has it (`next`). Where steps passed
 * unchecked, their one catch-up check comes sooner than the next step, but never in the past (a burst for everything
 * found at once): spread over `spreadMs` from now by the record's id, so runners agree and a big store's checks come a
 * few at a time. The job then goes on with the schedule's own next step.
 */
export function catchUpCheckAt(
  at: { from: number; firstStepMs: number; next: number; now: number },
  id: string,
  spreadMs: number,
): number {
  if (at.now < at.from + at.firstStepMs) return at.next;
  return Math.min(at.next, at.now + 1 + spreadOffset(id, spreadMs));
}

/** A stable offset in [0, spreadMs) for an id (FNV-1a of its characters). */
function spreadOffset(id: string, spreadMs: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return h % spreadMs;
}
