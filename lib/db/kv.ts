/**
 * Opens Deno KV: a SQLite file (creating its folder), ":memory:", a KV Connect
 * URL (a Deploy database from an operator's machine), or, with no path, the
 * platform's own KV on Deno Deploy.
 */
export async function openKv(path: string | undefined): Promise<Deno.Kv> {
  if (path === undefined || path === ":memory:" || /^https?:\/\//.test(path)) return await Deno.openKv(path);
  try {
    const dir = path.replace(/[/\\][^/\\]*$/, "");
    if (dir && dir !== path) await Deno.mkdir(dir, { recursive: true });
    return await Deno.openKv(path);
  } catch (err) {
    throw new KvFileError(path, err);
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

/** Collects a KV list into an array of values. */
export async function collectValues<T>(iter: Deno.KvListIterator<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const entry of iter) out.push(entry.value);
  return out;
}
