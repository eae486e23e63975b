/** One postback message to a shop and its delivery state. `id` is the stable `webhook-id`. */
export interface Delivery {
  id: string;
  paymentId: string;
  shopId: string;
  url: string;
  eventType: string;
  /** The exact body sent on every attempt, fixed when the delivery is created. */
  body: string;
  /**
   * `superseded`: a payment's postback not delivered yet when a newer one about the same payment was made (a late
   * success after payment.expired): it is never sent again, so it cannot reach the shop after the newer one.
   */
  status: "pending" | "delivered" | "failed" | "superseded";
  /** The newer postback that superseded this one (status `superseded` only). */
  supersededBy?: string;
  /** Attempts made so far, across manual resends; numbers the attempt records. */
  attempts: number;
  /** Position in the retry schedule; a manual resend, or a replay of a failed one, starts it again (schedule.ts). */
  scheduleStep: number;
  nextAttemptAt: number;
  leaseUntil: number;
  /**
   * Who holds the lease: a fresh random token with each claim (and each lease a new delivery is born with), kept by
   * its renewals. It tells a holder's own renewal from another worker's claim that happens to end on the same
   * millisecond (see LeaseKeeper). Absent on records from before it.
   */
  leaseToken?: string;
  lastStatusCode: number | null;
  lastError: string | null;
  /**
   * Where an operator's replay brought a retrying postback forward from (its step and due time), until the replayed
   * attempt ends: one that fails puts it back there (see replayedNow). Absent otherwise.
   */
  replayedFrom?: { scheduleStep: number; nextAttemptAt: number };
  createdAt: number;
  updatedAt: number;
}

export interface DeliveryAttempt {
  n: number;
  at: number;
  latencyMs: number;
  statusCode: number | null;
  error: string | null;
  /** The first KiB of the shop's answer, for operators. */
  responseStart: string;
}
