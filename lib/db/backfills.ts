/**
 * Progress of the backfills that give records stored by an earlier version what the current one writes with every
 * record (lib/backfills/): one record per backfill, read and written with a check on the version read, so runners
 * on several processes share one cut and one cursor, never step back, and a finished one costs a read.
 */
export const BACKFILLS = [
  "payment_late_checks",
  "refund_reversal_checks",
  "refund_pending_index",
  "invoice_late_index",
  "payment_names",
] as const;
export type BackfillName = typeof BACKFILLS[number];

export interface BackfillState {
  /** Every record the backfill reads has been read. */
  done: boolean;
  /**
   * When the first run started: records written since were written by this version and need nothing. Fixed by the
   * first run on any process, so later runs (a restart, another process, the CLI) read up to the same point.
   */
  cut: number;
  /**
   * Where the walk stands: the key part (a ULID) of the last record read, or for a walk of a job index the last job
   * (JSON); null before the first batch.
   */
  after: string | null;
  /** Records the backfill wrote, over all runs. */
  written: number;
  /** When it finished (null until then). */
  doneAt: number | null;
}

const stateKey = (name: BackfillName) => ["backfill_state", name] as const;

export function getBackfillState(kv: Deno.Kv, name: BackfillName): Promise<Deno.KvEntryMaybe<BackfillState>> {
  return kv.get<BackfillState>(stateKey(name));
}

/**
 * Stores a backfill's progress, checked against the state as read (an absent one: only if still absent, so the first
 * runners agree on one cut). False when another runner moved it meanwhile: read it again and go on from there.
 */
export async function commitBackfillState(
  kv: Deno.Kv,
  name: BackfillName,
  read: Deno.KvEntryMaybe<BackfillState>,
  next: BackfillState,
): Promise<boolean> {
  return (await kv.atomic().check(read).set(stateKey(name), next).commit()).ok;
}

/** Forgets a backfill's progress: the store as an earlier version left it (tests of the backfills). */
export async function deleteBackfillState(kv: Deno.Kv, name: BackfillName): Promise<void> {
  await kv.delete(stateKey(name));
}
