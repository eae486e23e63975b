/** Opens Deno KV at a file path (creating its folder) or in memory for ":memory:". */
export async function openKv(path: string): Promise<Deno.Kv> {
  if (path !== ":memory:") {
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
