/** Probes of the store for /healthz and /readyz. */
const probeKey = (name: "healthz" | "readyz") => ["health_probe", name] as const;

/** True when KV answers a read. */
export async function kvReadable(kv: Deno.Kv): Promise<boolean> {
  try {
    await kv.get(probeKey("healthz"));
    return true;
  } catch {
    return false;
  }
}

/**
 * True when KV takes a tiny write. A full disk or a read-only file still
 * answers reads, so liveness alone would keep sending traffic to an instance
 * that cannot record a payment.
 */
export async function kvWritable(kv: Deno.Kv, now: number): Promise<boolean> {
  try {
    await kv.set(probeKey("readyz"), now, { expireIn: 60_000 });
    return true;
  } catch {
    return false;
  }
}
