import { sortableId } from "../ids.ts";

/**
 * Records that a group commit (group_commit.ts) stores as a few shared keys
 * instead of one key each: the activity log's entries, the operation log's.
 * Every key costs the store its own row and expiry-index entry whatever its
 * size, so under load a key per group instead of one or more per write took
 * a large share off the store's work for a new payment.
 *
 * A kind of record makes one Collector; its `add` helpers ask `gathering(op)`
 * whether the operation they were given belongs to a group (then they push
 * there) or writes its own keys. Only readers that walk a whole prefix (the
 * export, the log listings) can read such records: nothing finds one by id.
 */
export class Collector<T> {
  readonly #gathering = new WeakMap<Deno.AtomicOperation, T[]>();

  constructor(private readonly writeGathered: (target: Deno.AtomicOperation, items: T[]) => void) {
    collectors.push(this as Collector<unknown>);
  }

  /** The records gathered for `op`'s group so far, or null when `op` writes its own keys. */
  gathering(op: Deno.AtomicOperation): T[] | null {
    return this.#gathering.get(op) ?? null;
  }

  start(through: Deno.AtomicOperation): { write(target: Deno.AtomicOperation): void } {
    const items: T[] = [];
    this.#gathering.set(through, items);
    return {
      write: (target) => {
        this.#gathering.delete(through);
        if (items.length) this.writeGathered(target, items);
      },
    };
  }
}

const collectors: Collector<unknown>[] = [];

/**
 * From now on, records added through `through` (the operation a group's writes see) are gathered; `write` adds
 * them to `target`, the group's real operation, as few keys.
 */
export function gatherForGroup(through: Deno.AtomicOperation): { write(target: Deno.AtomicOperation): void } {
  const started = collectors.map((c) => c.start(through));
  return { write: (target) => started.forEach((s) => s.write(target)) };
}

/**
 * Adds gathered records to `target` as few keys, in order: `key` makes each key from a fresh time-ordered seq. A
 * key holding one record holds it bare, as a lone write does; `gatheredRecords` reads either. Returns each key's
 * seq with the records it holds.
 */
export function setInChunks<T>(
  target: Deno.AtomicOperation,
  key: (seq: string) => Deno.KvKey,
  records: T[],
  opts: { expireIn?: number } = {},
): { seq: string; records: T[] }[] {
  return chunksUnderValueLimit(records).map((chunk) => {
    const seq = sortableId();
    target.set(key(seq), chunk.length === 1 ? chunk[0] : chunk, { expireIn: opts.expireIn });
    return { seq, records: chunk };
  });
}

/** The records a key holds: one written alone, or a group's (see setInChunks). */
export function gatheredRecords<T>(stored: T | T[]): T[] {
  return Array.isArray(stored) ? stored : [stored];
}

/**
 * Keys a reader of gathered records fetches per trip to the store. A list's batch is otherwise its limit (up to
 * 500 keys), and a group's key can hold dozens of records: a reader needing a few hundred records would read tens of
 * megabytes.
 */
export const GATHERED_LIST_BATCH = 32;

/**
 * KV values are at most 64 KiB as serialized: V8 takes at most 2 bytes per character of a string and less than
 * JSON for the rest, so 24,000 characters of JSON stay well under it. A record alone over that is still written
 * alone (a record that large would fail its own commit as well).
 */
const CHUNK_JSON_CHARS = 24_000;

/** Splits records, in order, into runs that each fit one KV value. */
function chunksUnderValueLimit<T>(items: T[]): T[][] {
  const chunks: T[][] = [];
  let chunk: T[] = [];
  let chars = 0;
  for (const item of items) {
    const size = JSON.stringify(item).length;
    if (chunk.length && chars + size > CHUNK_JSON_CHARS) {
      chunks.push(chunk);
      chunk = [];
      chars = 0;
    }
    chunk.push(item);
    chars += size;
  }
  if (chunk.length) chunks.push(chunk);
  return chunks;
}
