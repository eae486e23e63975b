import type { Delivery } from "./types.ts";

/** The longest Retry-After we honour; beyond it the normal schedule applies. */
const MAX_RETRY_AFTER_MS = 24 * 60 * 60 * 1000;

export type AttemptOutcome =
  | { kind: "delivered"; statusCode: number }
  | { kind: "gone"; statusCode: 410 }
  | {
    kind: "retry";
    statusCode: number | null;
    retryAfterMs: number | null;
    error: string;
    /** Set when the shop gave no answer: its connection failed (refused, reset), or the attempt timed out. */
    noAnswer?: "connection" | "timeout";
  };

/**
 * True when an attempt suggests the destination cannot take more just now: its connection failed (refused, reset),
 * or it answered so (429 Too Many Requests, 502/503/504 from the shop's gateway). The pool then sends it fewer at
 * once (RelayPool). A 500 or a 4xx is the shop's answer to this postback, not to the load; a URL we refused to send
 * to never reached the shop. A timeout does not count: an attempt waiting on a hanging shop already costs the pool
 * no share of its work (PoolLimits.long), and at 2 at a time (15 s each) a hanging shop's backlog would take 32 times
 * as long, its postbacks read again by every sweep meanwhile.
 */
export function strainsDestination(outcome: AttemptOutcome): boolean {
  if (outcome.kind !== "retry") return false;
  const code = outcome.statusCode;
  return outcome.noAnswer === "connection" || code === 429 || code === 502 || code === 503 || code === 504;
}

/** Where an attempt leaves a delivery: only a newer postback supersedes one (supersededDelivery). */
type AttemptedStatus = Exclude<Delivery["status"], "superseded">;

/**
 * The delivery's state after one attempt: 2xx delivers, 410 stops, anything
 * else retries on the schedule (or after Retry-After for 429/503) until the
 * schedule runs out and the delivery is failed.
 */
export function nextDeliveryState(
  d: Delivery,
  outcome: AttemptOutcome,
  scheduleMs: readonly number[],
  now: number,
): Delivery & { status: AttemptedStatus } {
  const { replayedFrom, ...rest } = d;
  const base = {
    ...rest,
    attempts: d.attempts + 1,
    leaseUntil: 0,
    lastStatusCode: outcome.statusCode,
    updatedAt: now,
  };
  switch (outcome.kind) {
    case "delivered":
      return { ...base, status: "delivered", lastError: null };
    case "gone":
      return { ...base, status: "failed", lastError: "the shop answered 410 Gone" };
    case "retry": {
      if (replayedFrom) {
        // An operator's replay brought it forward: back to where it was, or later if the shop asks (replayedNow).
        const asked = outcome.retryAfterMs === null ? 0 : now + Math.min(outcome.retryAfterMs, MAX_RETRY_AFTER_MS);
        return {
          ...base,
          status: "pending",
          scheduleStep: replayedFrom.scheduleStep,
          nextAttemptAt: Math.max(replayedFrom.nextAttemptAt, asked),
          lastError: outcome.error,
        };
      }
      const step = d.scheduleStep + 1;
      if (step >= scheduleMs.length) return { ...base, status: "failed", scheduleStep: step, lastError: outcome.error };
      // The shop may ask for more time, up to MAX_RETRY_AFTER_MS, never for less than the schedule's own step (which
      // an operator may have set longer than that cap).
      const wait = outcome.retryAfterMs !== null
        ? Math.max(Math.min(outcome.retryAfterMs, MAX_RETRY_AFTER_MS), scheduleMs[step])
        : scheduleMs[step];
      return { ...base, status: "pending", scheduleStep: step, nextAttemptAt: now + wait, lastError: outcome.error };
    }
  }
}

/**
 * A postback an operator resends by hand, due now at the start of the schedule: a resend is one deliberate act on one
 * postback whose result the operator waits for, so if that attempt fails it is retried on the whole schedule again.
 */
export function resentNow(d: Delivery, now: number): Delivery {
  const { replayedFrom: _, ...rest } = d;
  return { ...rest, status: "pending", scheduleStep: 0, nextAttemptAt: now, leaseUntil: 0, updatedAt: now };
}

/**
 * A postback an operator's replay sends now (replay.ts). One still retrying gets an attempt now besides its schedule:
 * if that fails, it goes back to the step and time it was waiting for (`replayedFrom`), or later if the shop asks
 * (Retry-After), and its schedule goes on from there, ending failed on its own timeline. Starting the schedule again
 * gave a postback to a shop that stays down a whole new run with every replay, so it never ended failed; counting the
 * replayed attempt as its next step ended every postback waiting for its last attempt as failed at once, hours early,
 * when a replay met a shop still down or answering the burst with 429. The wait it was on is not waited for, a shop's
 * Retry-After included (nextDeliveryState folds it into nextAttemptAt): pressing Replay says "now".
 *
 * One that failed runs the schedule once more from its start: a shop that was down and is fixed expects its failed
 * postbacks, and a single attempt would leave failed again those it refuses for a moment (a replay sends many at
 * once: a 429, a restart). The run is bounded by the schedule: it ends failed as the first did, and replays while it
 * runs keep its place.
 */
export function replayedNow(d: Delivery, now: number): Delivery {
  if (d.status === "failed") return resentNow(d, now);
  // Replayed again before its replayed attempt ended: still back to where the first replay found it.
  const replayedFrom = d.replayedFrom ?? { scheduleStep: d.scheduleStep, nextAttemptAt: d.nextAttemptAt };
  return { ...d, status: "pending", nextAttemptAt: now, leaseUntil: 0, updatedAt: now, replayedFrom };
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date), or null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}
