import { Hono } from "hono";
import type { AppContext } from "../lib/context.ts";
import { kvReadable, kvWritable } from "../lib/db/health.ts";

/** How long one readiness probe answers for. */
const READY_PROBE_TTL_MS = 5_000;

/**
 * Probes for load balancers and uptime checks. Liveness (/healthz): the
 * process answers and KV reads. Readiness (/readyz): KV also takes a write,
 * which a full disk or a read-only file refuses while reads still work.
 */
export function healthRoutes(ctx: AppContext) {
  const app = new Hono();
  app.get("/healthz", async (c) => {
    if (await kvReadable(ctx.kv)) return c.json({ status: "ok" });
    return c.json({ status: "error", error: { code: "kv_unreadable", message: "The store cannot be read." } }, 503);
  });
  // Anyone may call it, so one probe write serves every caller for a few seconds.
  let probe: { at: number; writable: Promise<boolean> } | null = null;
  app.get("/readyz", async (c) => {
    c.header("cache-control", "no-store");
    const now = ctx.now();
    if (!probe || now - probe.at >= READY_PROBE_TTL_MS) probe = { at: now, writable: kvWritable(ctx.kv, now) };
    if (await probe.writable) return c.json({ status: "ok" });
    return c.json({ status: "error", error: { code: "kv_unwritable", message: "The store refuses writes." } }, 503);
  });
  return app;
}
