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
): Delivery {
  const base = {
    ...d,
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
      const step = d.scheduleStep + 1;
      if (step >= scheduleMs.length) return { ...base, status: "failed", scheduleStep: step, lastError: outcome.error };
      const wait = outcome.retryAfterMs !== null
        ? Math.min(Math.max(outcome.retryAfterMs, scheduleMs[step]), MAX_RETRY_AFTER_MS)
        : scheduleMs[step];
      return { ...base, status: "pending", scheduleStep: step, nextAttemptAt: now + wait, lastError: outcome.error };
    }
  }
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date), or null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}
