/**
 * Opens Deno KV: a SQLite file (creating its folder), ":memory:", a KV Connect
 * URL (a Deploy database from an operator's machine), or, with no path, the
 * platform's own KV on Deno Deploy.
 */
export async function openKv(path: string | undefined): Promise<Deno.Kv> {
  if (path === undefined) return await Deno.openKv();
  if (path !== ":memory:" && !/^https?:\/\//.test(path)) {
    const dir = path.replace(/[/\\][^/\\]*$/, "");
    if (dir && dir !== path) await Deno.mkdir(dir, { recursive: true });
  }
  return await Deno.openKv(path);
}

/** Collects a KV list into an array of values. */
export async function collectValues<T>(iter: Deno.KvListIterator<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const entry of iter) out.push(entry.value);
  return out;
}
