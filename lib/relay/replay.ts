import type { AppContext } from "../context.ts";
import { listAttentionDeliveries, rescheduleDelivery } from "../db/deliveries.ts";
import type { Delivery } from "./types.ts";

/**
 * Puts every failed postback of a shop created since `since` back on the
 * schedule (same webhook-ids, so shops can deduplicate). Returns how many.
 */
export async function replayFailedDeliveries(ctx: AppContext, shopId: string, since: number): Promise<number> {
  const failed = (await listAttentionDeliveries(ctx.kv, { shopId, limit: 100_000 }))
    .filter((d: Delivery) => d.status === "failed" && d.createdAt >= since);
  const now = ctx.now();
  let queued = 0;
  for (const d of failed) {
    if (!await rescheduleDelivery(ctx.kv, d.id, now, { queue: ctx.config.jobsQueue, now })) continue;
    queued++;
    if (!ctx.config.jobsQueue) ctx.kick({ kind: "postback", id: d.id });
  }
  return queued;
}
