import type { AppContext } from "../context.ts";
import { iterateAttentionDeliveryIds, rescheduleDelivery } from "../db/deliveries.ts";
import type { Delivery } from "./types.ts";

/**
 * Puts every failed postback of a shop created since `since` back on the
 * schedule (same webhook-ids, so shops can deduplicate). Returns how many.
 * Each is judged as it stands when it is written (`onlyIf`): one resent
 * since the replay began is under way or delivered, and is left alone.
 */
export async function replayFailedDeliveries(ctx: AppContext, shopId: string, since: number): Promise<number> {
  const now = ctx.now();
  let queued = 0;
  for await (const id of iterateAttentionDeliveryIds(ctx.kv, shopId, since)) {
    if (!await rescheduleDelivery(ctx.kv, id, now, { queue: ctx.config.jobsQueue, now }, { onlyIf: replayable })) {
      continue;
    }
    queued++;
    if (!ctx.config.jobsQueue) ctx.kick({ kind: "postback", id });
  }
  return queued;
}

/**
 * A failed postback the shop did not turn away: one it answered 410 Gone (stop sending) is sent again only when
 * someone resends it by hand, as the shop asked.
 */
function replayable(d: Delivery): boolean {
  return d.status === "failed" && d.lastStatusCode !== 410;
}
