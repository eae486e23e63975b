import { gatherForGroup } from "./collected.ts";
import { GroupQueue } from "./group_queue.ts";
import { getManyEntries } from "./kv.ts";

/**
 * Group commit, the classic database technique: writes that arrive while an
 * earlier commit is in flight wait for it and then go to the store together,
 * in one atomic operation. Each write stays atomic (all of its keys are in
 * that operation), a lone write is committed at once, and under load the store
 * makes one durable commit (one fsync with SQLite) for many writes, whose
 * index keys then mostly share pages. Committing the keys of a new payment
 * alone cost the store more than the rest of init-payment together.
 *
 * A write that checks something (say, that its key is still free) can fail
 * the whole group. The group's checked keys are then read: the writes whose
 * checks no longer hold fail, and the rest go again as one group (a shop's
 * retries of stored payments reach the commit, and must not cost every other
 * write in their group a commit of its own). Anything else that fails a group
 * (a limit, a store error), or a second failure, sends it write by write, so
 * only the write at fault fails. Two writes with the same identity never share
 * a group, so their checks cannot both pass within one operation.
 */
export interface GroupCommitOptions<T> {
  /** Adds one write's checks and mutations to an atomic operation. */
  addOps: (op: Deno.AtomicOperation, item: T) => void;
  /** What makes two writes conflict (e.g. the payment id): such writes go to separate groups. */
  identity: (item: T) => string;
  /** Most writes per group; keeps an operation under KV's limits (100 checks, 1000 mutations, 800 KB). */
  maxGroup: number;
}

/** A group committer per store (and isolate), made on first use: writes of one kind to one store share commits. */
export function groupCommitterPerStore<T>(opts: GroupCommitOptions<T>): (kv: Deno.Kv) => GroupCommitter<T> {
  const committers = new WeakMap<Deno.Kv, GroupCommitter<T>>();
  return (kv) => {
    let committer = committers.get(kv);
    if (!committer) committers.set(kv, committer = new GroupCommitter(kv, opts));
    return committer;
  };
}

interface Waiting<T> {
  item: T;
  /** The versionstamp of the commit that stored the write, or null when a check failed. */
  resolve: (versionstamp: string | null) => void;
  reject: (err: unknown) => void;
}

export class GroupCommitter<T> extends GroupQueue<Waiting<T>> {
  constructor(private readonly kv: Deno.Kv, private readonly opts: GroupCommitOptions<T>) {
    super();
  }

  /** Commits the write; true when its checks passed and it is stored, false when a check failed. */
  commit(item: T): Promise<boolean> {
    return this.commitStamped(item).then((v) => v !== null);
  }

  /** Commits the write; the versionstamp it was stored with (shared by its group), or null when a check failed. */
  commitStamped(item: T): Promise<string | null> {
    return new Promise((resolve, reject) => this.enqueue({ item, resolve, reject }));
  }

  protected runGroup(): Promise<void> {
    return this.#commitGroup(this.#takeGroup());
  }

  #takeGroup(): Waiting<T>[] {
    const group: Waiting<T>[] = [];
    const later: Waiting<T>[] = [];
    const identities = new Set<string>();
    for (const w of this.waiting) {
      const id = this.opts.identity(w.item);
      if (group.length < this.opts.maxGroup && !identities.has(id)) {
        identities.add(id);
        group.push(w);
      } else {
        later.push(w);
      }
    }
    this.waiting = later;
    return group;
  }

  async #commitGroup(group: Waiting<T>[], retried = false): Promise<void> {
    if (group.length > 1) {
      let checks: Deno.AtomicCheck[][] | null = null;
      try {
        const op = this.kv.atomic();
        const sums = new SummedCounters(op);
        // The group's log entries go to the store as a few shared keys (collected.ts), like its counters.
        const logs = gatherForGroup(sums.op);
        for (const w of group) {
          sums.nextWrite();
          this.opts.addOps(sums.op, w.item);
        }
        sums.addTo(op);
        logs.write(op);
        const res = await op.commit();
        if (res.ok) {
          for (const w of group) w.resolve(res.versionstamp);
          return;
        }
        checks = sums.checks;
      } catch {
        // Whatever failed the group (a limit, a store error) is found again, and reported, write by write.
      }
      const stale = checks && !retried ? await this.#staleWrites(checks) : null;
      if (stale?.size) {
        for (const i of stale) group[i].resolve(null);
        return this.#commitGroup(group.filter((_, i) => !stale.has(i)), true);
      }
    }
    await Promise.all(group.map(async (w) => {
      try {
        const op = this.kv.atomic();
        this.opts.addOps(op, w.item);
        const res = await op.commit();
        w.resolve(res.ok ? res.versionstamp : null);
      } catch (err) {
        w.reject(err);
      }
    }));
  }

  /** Which writes (by index) check a key whose versionstamp is no longer the one checked; empty when the read fails. */
  async #staleWrites(checks: Deno.AtomicCheck[][]): Promise<Set<number>> {
    const all = checks.flatMap((list, write) => list.map((check) => ({ check, write })));
    const stale = new Set<number>();
    try {
      // The queue waits meanwhile: the keys are read at once.
      const entries = await getManyEntries(this.kv, all.map((c) => c.check.key));
      entries.forEach((e, i) => {
        if (e.versionstamp !== all[i].check.versionstamp) stale.add(all[i].write);
      });
    } catch {
      stale.clear();
    }
    return stale;
  }
}

/**
 * Counters (`sum` mutations) of a group's writes, added up per key before
 * they reach the store: writes of one shop and day bump the same counters,
 * and one mutation per key costs the store less than one per write. `op` is
 * the operation as the writes see it; everything but `sum` goes straight
 * through, and each write's checks are noted on the way (for a failed group).
 */
class SummedCounters {
  readonly #totals = new Map<string, { key: Deno.KvKey; n: bigint }>();
  readonly op: Deno.AtomicOperation;
  /** Each write's checks, in the order of the writes (see nextWrite). */
  readonly checks: Deno.AtomicCheck[][] = [];

  constructor(target: Deno.AtomicOperation) {
    const totals = this.#totals;
    // AtomicOperation keeps its state in private fields: every other method runs on the real operation.
    const op: Deno.AtomicOperation = {
      check: (...checks) => {
        this.checks[this.checks.length - 1]?.push(...checks);
        target.check(...checks);
        return op;
      },
      set: (key, value, options) => (target.set(key, value, options), op),
      delete: (key) => (target.delete(key), op),
      min: (key, n) => (target.min(key, n), op),
      max: (key, n) => (target.max(key, n), op),
      enqueue: (value, options) => (target.enqueue(value, options), op),
      mutate: (...mutations) => (target.mutate(...mutations), op),
      commit: () => target.commit(),
      sum: (key, n) => {
        const id = JSON.stringify(key);
        const t = totals.get(id);
        if (t) t.n += BigInt(n);
        else totals.set(id, { key, n: BigInt(n) });
        return op;
      },
    };
    this.op = op;
  }

  /** Starts the next write: the checks that follow are its own. */
  nextWrite() {
    this.checks.push([]);
  }

  /** Adds one `sum` per counter key (wrapping at 2^64 as KV's own sums do). */
  addTo(op: Deno.AtomicOperation) {
    for (const { key, n } of this.#totals.values()) op.sum(key, BigInt.asUintN(64, n));
  }
}
