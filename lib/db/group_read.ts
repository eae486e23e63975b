import { GroupQueue } from "./group_queue.ts";
import { retryOnLock } from "./kv.ts";

/**
 * Group reads, the read-side twin of group_commit.ts: point reads asked for
 * while an earlier read is in flight wait for it and then go to the store
 * together, as one `getMany` (at most KV's 10 keys), with each distinct key
 * read once. Every read still sees everything committed before it was asked
 * for, so a revoked key or a disabled shop is refused on the very next
 * request. Under load the store then answers a few reads for many requests
 * instead of one or two per request: with SQLite every read waits its turn on
 * the one database thread, behind the commits.
 *
 * Entries of a key asked for by several reads are the same object for all of
 * them: callers treat what they read as read-only.
 */
const MAX_KEYS = 10;

const readers = new WeakMap<Deno.Kv, GroupReader>();

/** The group reader of a store (one per store and isolate). */
export function groupReader(kv: Deno.Kv): GroupReader {
  let reader = readers.get(kv);
  if (!reader) readers.set(kv, reader = new GroupReader(kv));
  return reader;
}

interface Group {
  waiting: Waiting[];
  /** The distinct keys of the group, and where each key (by keyId) sits among them. */
  keys: Deno.KvKey[];
  index: Map<string, number>;
}

interface Waiting {
  keys: Deno.KvKey[];
  /** `keyId` of each key, worked out once. */
  ids: string[];
  resolve: (entries: Deno.KvEntryMaybe<unknown>[]) => void;
  reject: (err: unknown) => void;
}

export class GroupReader extends GroupQueue<Waiting> {
  constructor(private readonly kv: Deno.Kv) {
    super();
  }

  /** Like `kv.getMany`: the entries of `keys`, in order, from one consistent read. */
  getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
  ): Promise<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }> {
    // Too many for one read: KV refuses it, with its own message, and no group is spoiled.
    if (keys.length > MAX_KEYS) return this.kv.getMany<T>(keys);
    return new Promise((resolve, reject) => {
      this.enqueue({ keys: [...keys], ids: keys.map(keyId), resolve: resolve as Waiting["resolve"], reject });
    });
  }

  protected runGroup(): Promise<void> {
    return this.#readGroup(this.#takeGroup());
  }

  /** Waiting reads, in order, while their distinct keys fit in one getMany. */
  #takeGroup(): Group {
    const index = new Map<string, number>();
    const keys: Deno.KvKey[] = [];
    let taken = 0;
    for (const w of this.waiting) {
      // Keys not in the group yet (a key a read names twice counts twice: only ever a group closed a little early).
      let fresh = 0;
      for (const id of w.ids) if (!index.has(id)) fresh++;
      if (taken > 0 && keys.length + fresh > MAX_KEYS) break;
      w.ids.forEach((id, i) => {
        if (!index.has(id)) index.set(id, keys.push(w.keys[i]) - 1);
      });
      taken++;
    }
    return { waiting: this.waiting.splice(0, taken), keys, index };
  }

  async #readGroup({ waiting, keys, index }: Group) {
    try {
      // A lock error is the store's, not a key's: the whole group reads again (denokv's SQLite reads retry it
      // themselves; this keeps a store that does not from failing every waiter at once).
      const entries = await this.kv.getMany(keys).catch((err) => retryOnLock(err, () => this.kv.getMany(keys)));
      for (const w of waiting) w.resolve(w.ids.map((id) => entries[index.get(id)!]));
    } catch (err) {
      if (waiting.length === 1) return waiting[0].reject(err);
      // One bad key (say, over KV's size limit) must not fail its neighbours: each read goes again alone.
      await Promise.all(waiting.map(async (w) => {
        try {
          w.resolve(await this.kv.getMany(w.keys));
        } catch (err) {
          w.reject(err);
        }
      }));
    }
  }
}

/** A key as a string, to find the same key asked for twice (parts are typed, so 1 and "1" differ). */
function keyId(key: Deno.KvKey): string {
  return key.map((part) => `${typeof part}:${String(part)}`).join("\u0000");
}
