/**
 * Opens Deno KV: a SQLite file (creating its folder), ":memory:", a KV Connect
 * URL (a Deploy database from an operator's machine), or, with no path, the
 * platform's own KV on Deno Deploy.
 */
export async function openKv(path: string | undefined): Promise<Deno.Kv> {
  if (path === undefined || path === ":memory:" || isKvConnectUrl(path)) return await Deno.openKv(path);
  let kv: Deno.Kv | undefined;
  let reader: Deno.Kv;
  try {
    const dir = path.replace(/[/\\][^/\\]*$/, "");
    if (dir && dir !== path) await Deno.mkdir(dir, { recursive: true });
    // Another process opening a new file at the same moment (the app and the operator CLI) may hold SQLite's lock
    // while it sets the file up; denokv waits 5 s for it, then gives up.
    const open = () => Deno.openKv(path);
    kv = await open().catch((err) => retryOnLock(err, open));
    reader = await open().catch((err) => retryOnLock(err, open));
  } catch (err) {
    kv?.close();
    throw new KvFileError(path, err);
  }
  // Another process may write to the same file (several app processes, the operator CLI).
  return readThroughSecondConnection(retryWritesOnLock(kv), reader);
}

/** A KV path that names a KV Connect database (a denokv server, a Deploy database from elsewhere), not a file. */
export function isKvConnectUrl(path: string): boolean {
  return /^https?:\/\//.test(path);
}

/**
 * Sends every read of `kv` (get, getMany, list) through `reader`, a second
 * connection to the same SQLite file, and closes both together. Deno KV runs
 * each connection's reads and commits one after another on one database
 * thread, so under load a read waited behind the commits in flight (measured:
 * about 6 ms per read at 800 refunds a second, against 0.1 ms on a second
 * connection). A read there still sees every commit that finished before it
 * was asked for (SQLite's WAL: a read starts from the newest commit), and
 * checks are made by the commit itself, so nothing about correctness moves.
 * Patches the instance, like retryWritesOnLock, so identity stays as it is.
 */
export function readThroughSecondConnection(kv: Deno.Kv, reader: Deno.Kv): Deno.Kv {
  kv.get = reader.get.bind(reader);
  kv.getMany = reader.getMany.bind(reader);
  kv.list = reader.list.bind(reader);
  const close = kv.close.bind(kv);
  kv.close = () => {
    reader.close();
    close();
  };
  return kv;
}

/**
 * Attempts of a write refused with a lock error, the first included, and the
 * time they may take after the first refusal: enough for two processes writing
 * flat out (measured: none of 6,400 contended writes over four connections
 * failed), bounded so a file another program keeps locked still surfaces.
 */
export const LOCK_ATTEMPTS = 30;
const LOCK_RETRY_BUDGET_MS = 5_000;
/** Longest pause between two attempts; pauses double from 2 ms up to this, each a random share of it. */
const LOCK_MAX_PAUSE_MS = 100;

/**
 * True for the error Deno KV throws when SQLite refused a write because
 * another connection to the same file (another process) wrote in between:
 * `TypeError: database is locked` (SQLITE_BUSY; "database table is locked" is
 * SQLITE_LOCKED). denokv retries a busy lock at the start or the commit of its
 * transaction itself, but not once the transaction has read (an atomic
 * operation's checks) and finds its snapshot stale at the first write; that
 * error reaches us with nothing of the write stored, so it is safe to retry.
 * Reads never see it (denokv retries them without a bound). Opening a file
 * can, as `Error: database is locked`, when another process holds the lock
 * past denokv's 5 s wait while it sets a new file up.
 */
export function isKvLockError(err: unknown): boolean {
  // A write's refusal is a TypeError; an open's (the file being set up by another process) a plain Error.
  return err instanceof Error && /\bdatabase (table )?is locked\b/.test(err.message);
}

/**
 * Makes every write of `kv` (atomic commits, set, delete, enqueue) try again,
 * a bounded number of times with jittered pauses, when it fails with a lock
 * error. Patches the instance, so identity (per-store group readers and
 * writers) and everything else stay as they are; without an error the cost is
 * the one `catch` on the write's promise.
 */
export function retryWritesOnLock(kv: Deno.Kv): Deno.Kv {
  const atomic = kv.atomic.bind(kv);
  const commitOnce = Object.getPrototypeOf(atomic()).commit as Deno.AtomicOperation["commit"];
  // One shared function, no closure per operation. Committing the same operation again sends the same checks,
  // mutations and enqueues.
  function commit(this: Deno.AtomicOperation) {
    return commitOnce.call(this).catch((err) => retryOnLock(err, () => commitOnce.call(this)));
  }
  kv.atomic = () => {
    const op = atomic();
    op.commit = commit;
    return op;
  };
  const set = kv.set.bind(kv);
  kv.set = (key, value, options) =>
    set(key, value, options).catch((err) => retryOnLock(err, () => set(key, value, options)));
  const del = kv.delete.bind(kv);
  kv.delete = (key) => del(key).catch((err) => retryOnLock(err, () => del(key)));
  const enqueue = kv.enqueue.bind(kv);
  kv.enqueue = (value, options) =>
    enqueue(value, options).catch((err) => retryOnLock(err, () => enqueue(value, options)));
  return kv;
}

/**
 * After a first attempt failed with `err`: tries `write` (or an open) again while it fails with a lock error, up to
 * LOCK_ATTEMPTS in all.
 */
export async function retryOnLock<T>(err: unknown, write: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_RETRY_BUDGET_MS;
  for (let attempt = 1;; attempt++) {
    if (!isKvLockError(err) || attempt >= LOCK_ATTEMPTS || Date.now() > deadline) throw err;
    // Full jitter: writers refused together spread out instead of colliding again.
    await new Promise((r) => setTimeout(r, Math.random() * Math.min(LOCK_MAX_PAUSE_MS, 2 ** attempt)));
    try {
      return await write();
    } catch (next) {
      err = next;
    }
  }
}

/** A KV file that cannot be opened for writing (read-only file or folder, a directory, a missing mount...). */
export class KvFileError extends Error {
  constructor(readonly path: string, cause: unknown) {
    const reason = String((cause as Error)?.message ?? cause);
    // SQLite opens the file read-write and sets up its journal at once, so these surface here, not at the first write.
    const problem = /readonly/i.test(reason)
      ? "the file is read-only"
      : "the file or its folder cannot be created or written";
    super(`cannot open the KV file ${path}: ${problem} (${reason})`, { cause });
  }
}

/** Most keys KV reads in one getMany. */
const GET_MANY_LIMIT = 10;

/** Reads any number of keys, 10 per trip (KV's getMany limit) with the trips at once: the entries in the keys' order. */
export async function getManyEntries<T>(kv: Deno.Kv, keys: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<T>[]> {
  const trips = Array.from(
    { length: Math.ceil(keys.length / GET_MANY_LIMIT) },
    (_, i) => kv.getMany<T[]>(keys.slice(i * GET_MANY_LIMIT, (i + 1) * GET_MANY_LIMIT)),
  );
  return (await Promise.all(trips)).flat();
}

/** Collects a KV list into an array of values. */
export async function collectValues<T>(iter: Deno.KvListIterator<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const entry of iter) out.push(entry.value);
  return out;
}
