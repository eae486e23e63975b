import type { AppContext } from "../context.ts";
import { writeAudit } from "../db/audit.ts";
import { iterateAttentionDeliveryIds, rescheduleDelivery } from "../db/deliveries.ts";
import { replayedNow } from "./schedule.ts";
import type { Delivery } from "./types.ts";

/**
 * Most postbacks one replay request looks at (a read each, and a write for each failed one): about 0.3 s with KV on
 * SQLite, seconds on a hosted KV. A shop's backlog can be tens of thousands; the rest is a click away.
 */
export const REPLAY_BATCH = 1_000;

/** What one replay request did. */
export interface ReplayResult {
  /** Postbacks put back to be sent now. */
  queued: number;
  /** Postbacks left alone because an attempt at them was under way (they were being sent at that moment). */
  inFlight: number;
  /** Where the next request goes on from when some are left to look at; null when the replay is done. */
  resumeAfter: string | null;
}

/**
 * Sends the failed and still retrying postbacks of a shop whose last attempt failed since `since` now (same webhook-ids, so shops can
 * deduplicate): after an outage the shop is back, and a retrying one's next attempt may be hours away. A retrying one
 * keeps its place in the schedule and a failed one runs the schedule once more (replayedNow says why). Up to `batch`
 * of the postbacks needing attention at a time, after `after` when going on. Each is judged as it stands when it is
 * written (`onlyIf`): one resent since the replay began is left alone, and so is one being sent (counted in
 * `inFlight`, so the operator hears of it). The request is audited once under `actor`, before anything is put back:
 * the entry records the command (the shop, the time, where it went on from), which stays true of a replay a crash cuts
 * short, as an entry written after it, with its count, would not be of one cut short before it. Not one entry per
 * postback: a click puts back up to a thousand, and a shop's outage tens of thousands, which would crowd every other
 * operator action out of the audit log's search (the newest 10,000 entries). What each postback went through is on its
 * own record (`replayedFrom`, its attempts).
 */
export async function replayFailedDeliveries(
  ctx: AppContext,
  shopId: string,
  since: number,
  opts: { actor: string; after?: string; batch?: number },
): Promise<ReplayResult> {
  const batch = opts.batch ?? REPLAY_BATCH;
  await writeAudit(ctx.kv, {
    at: ctx.now(),
    actor: opts.actor,
    action: "postback.replay",
    target: shopId,
    before: null,
    after: { since: new Date(since).toISOString(), ...(opts.after ? { goesOnAfter: opts.after } : {}) },
  });
  let queued = 0;
  let inFlight = 0;
  let looked = 0;
  let last: string | null = null;
  for await (const id of iterateAttentionDeliveryIds(ctx.kv, shopId, since, opts.after)) {
    if (looked === batch) return { queued, inFlight, resumeAfter: last };
    looked++;
    last = id;
    // The clock of each write, not of the replay's start: a batch takes seconds, and a lease taken meanwhile must
    // still look live to it.
    const now = ctx.now();
    const jobs = { queue: ctx.config.jobsQueue, now };
    const put = await rescheduleDelivery(ctx.kv, id, now, jobs, {
      putBack: replayedNow,
      onlyIf: replayable,
      refuseInFlight: true,
    });
    if (!put) continue;
    if ("inFlightMs" in put) {
      inFlight++;
      continue;
    }
    queued++;
    if (!ctx.config.jobsQueue) ctx.kick({ kind: "postback", id });
  }
  return { queued, inFlight, resumeAfter: null };
}

/**
 * A failed postback, or one waiting for its next try, that the shop did not turn away: one it answered 410 Gone
 * (stop sending) is sent again only when someone resends it by hand, as the shop asked.
 */
function replayable(d: Delivery): boolean {
  const retrying = d.status === "pending" && d.attempts > 0;
  return (d.status === "failed" || retrying) && d.lastStatusCode !== 410;
}
