import { supersedesPostback } from "../payments/status.ts";
import { newMessageId } from "./signing.ts";
import type { Delivery } from "./types.ts";

/** What a new postback is about; the relay fills in its delivery state. */
export interface NewDelivery {
  paymentId: string;
  shopId: string;
  url: string;
  eventType: string;
  /** The exact body, sent unchanged on every attempt (its signature covers it). */
  body: string;
  now: number;
  /**
   * Born leased to the process that commits it until then (firstAttemptLease), which makes the first attempt
   * without a claim of its own (see RelayPool.handOver); 0 or absent: free for any worker at once.
   */
  leaseUntil?: number;
}

/**
 * A postback record ready to schedule: a fresh `webhook-id`, due now, at the
 * start of the retry schedule. Only the relay spells delivery fields.
 */
export function newDelivery(d: NewDelivery): Delivery {
  return {
    id: newMessageId(d.now),
    paymentId: d.paymentId,
    shopId: d.shopId,
    url: d.url,
    eventType: d.eventType,
    body: d.body,
    status: "pending",
    attempts: 0,
    scheduleStep: 0,
    nextAttemptAt: d.now,
    leaseUntil: d.leaseUntil ?? 0,
    ...(d.leaseUntil ? { leaseToken: crypto.randomUUID() } : {}),
    lastStatusCode: null,
    lastError: null,
    createdAt: d.now,
    updatedAt: d.now,
  };
}

/** The payment's postback among `others` that makes `d` old news (supersedesPostback), if any. */
export function supersederOf(d: Delivery, others: Delivery[]): Delivery | undefined {
  return others.find((o) =>
    o.id !== d.id && o.paymentId === d.paymentId && supersedesPostback(o.eventType, d.eventType)
  );
}

/**
 * A postback made old news by `newer`, a later postback about the same payment: it is not sent again (nor replayed),
 * so a shop that applies postbacks in the order they arrive cannot end on it. Its attempts so far stay on record.
 */

export function supersededDelivery(d: Delivery, newer: Delivery, now: number): Delivery {
  const { replayedFrom: _, ...rest } = d;
  return { ...rest, status: "superseded", supersededBy: newer.id, leaseUntil: 0, updatedAt: now };
}
