import assert from "node:assert/strict";
import { nextDeliveryState, parseRetryAfter, replayedNow, resentNow, strainsDestination } from "./schedule.ts";
import type { Delivery } from "./types.ts";

const schedule = [0, 5_000, 300_000];
const base: Delivery = {
  id: "msg_1",
  paymentId: "pay_1",
  shopId: "shop_1",
  url: "https://shop.example/pb",
  eventType: "payment.succeeded",
  body: "{}",
  status: "pending",
  attempts: 0,
  scheduleStep: 0,
  nextAttemptAt: 0,
  leaseUntil: 99,
  lastStatusCode: null,
  lastError: null,
  createdAt: 0,
  updatedAt: 0,
};

Deno.test("[schedule] a 2xx delivers and a 410 stops for good", () => {
  const delivered = nextDeliveryState(base, { kind: "delivered", statusCode: 204 }, schedule, 1000);
  assert.equal(delivered.status, "delivered");
  assert.equal(delivered.attempts, 1);
  assert.equal(delivered.leaseUntil, 0);
  const gone = nextDeliveryState(base, { kind: "gone", statusCode: 410 }, schedule, 1000);
  assert.equal(gone.status, "failed");
});

Deno.test("[schedule] failures follow the schedule, then fail", () => {
  const fail = { kind: "retry" as const, statusCode: 500, retryAfterMs: null, error: "HTTP 500" };
  const first = nextDeliveryState(base, fail, schedule, 1000);
  assert.deepEqual([first.status, first.scheduleStep, first.nextAttemptAt], ["pending", 1, 6000]);
  const second = nextDeliveryState(first, fail, schedule, 6000);
  assert.deepEqual([second.status, second.nextAttemptAt], ["pending", 306_000]);
  const third = nextDeliveryState(second, fail, schedule, 306_000);
  assert.equal(third.status, "failed");
  assert.equal(third.attempts, 3);
  assert.equal(third.lastError, "HTTP 500");
});

Deno.test("[schedule] Retry-After on 429/503 delays the next attempt but never below the schedule", () => {
  const later = nextDeliveryState(
    base,
    { kind: "retry", statusCode: 429, retryAfterMs: 60_000, error: "HTTP 429" },
    schedule,
    0,
  );
  assert.equal(later.nextAttemptAt, 60_000);
  const sooner = nextDeliveryState(
    base,
    { kind: "retry", statusCode: 503, retryAfterMs: 1, error: "HTTP 503" },
    schedule,
    0,
  );
  assert.equal(sooner.nextAttemptAt, 5_000);
});

Deno.test("[schedule] a replayed postback still retrying gets an attempt besides its schedule: failing, it goes back to where it was, or later if the shop asks", () => {
  const fail = { kind: "retry" as const, statusCode: 503, retryAfterMs: null, error: "HTTP 503" };
  const failAskingAnHour = { ...fail, retryAfterMs: 3_600_000 };
  // Waiting an hour for its second attempt, as the shop asked (Retry-After).
  const waiting = nextDeliveryState(base, failAskingAnHour, schedule, 1000);
  assert.deepEqual([waiting.scheduleStep, waiting.nextAttemptAt], [1, 3_601_000]);
  const replayed = replayedNow({ ...waiting, leaseUntil: 5 }, 2000);
  assert.deepEqual(
    [replayed.status, replayed.scheduleStep, replayed.nextAttemptAt, replayed.leaseUntil, replayed.attempts],
    ["pending", 1, 2000, 0, 1],
    "due now, the shop's Retry-After overridden, at the same step",
  );
  // Replayed again before that attempt: still back to where the first replay found it.
  assert.deepEqual(replayedNow(replayed, 2500).replayedFrom, { scheduleStep: 1, nextAttemptAt: 3_601_000 });

  const back = nextDeliveryState(replayed, fail, schedule, 2000);
  assert.deepEqual([back.status, back.scheduleStep, back.nextAttemptAt, back.attempts], ["pending", 1, 3_601_000, 2]);
  assert.equal(back.replayedFrom, undefined);
  // The shop asks for longer than the wait it was on: later, then.
  const later = nextDeliveryState(replayed, { ...fail, retryAfterMs: 7_200_000 }, schedule, 2000);
  assert.equal(later.nextAttemptAt, 7_202_000);
  // However often replayed, its own schedule ends it failed on its own timeline.
  let d = back;
  for (let i = 0; i < 5; i++) d = nextDeliveryState(replayedNow(d, 4000 + i), fail, schedule, 4000 + i);
  assert.deepEqual([d.status, d.scheduleStep], ["pending", 1]);
  const third = nextDeliveryState(d, fail, schedule, 3_601_000);
  const last = nextDeliveryState(third, fail, schedule, 3_901_000);
  assert.deepEqual([third.scheduleStep, last.status], [2, "failed"]);
  // Delivered from a replay: nothing of it is kept.
  const delivered = nextDeliveryState(replayed, { kind: "delivered", statusCode: 200 }, schedule, 2000);
  assert.deepEqual([delivered.status, delivered.replayedFrom], ["delivered", undefined]);
});

Deno.test("[schedule] a replayed failed postback, like a resent one, runs the schedule once more", () => {
  const failed: Delivery = { ...base, status: "failed", attempts: 3, scheduleStep: 3, leaseUntil: 0 };
  for (const putBack of [replayedNow, resentNow]) {
    const again = putBack(failed, 5000);
    assert.deepEqual([again.status, again.scheduleStep, again.nextAttemptAt, again.attempts], ["pending", 0, 5000, 3]);
  }
  const retrying: Delivery = { ...base, attempts: 2, scheduleStep: 2, nextAttemptAt: 9_000 };
  assert.equal(resentNow(retrying, 5000).scheduleStep, 0, "an operator's resend starts the schedule again");
});

Deno.test("[schedule] reads Retry-After as seconds or an HTTP date", () => {
  assert.equal(parseRetryAfter("120", 0), 120_000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6_000);
  assert.equal(parseRetryAfter("soon", 0), null);
  assert.equal(parseRetryAfter(null, 0), null);
});

Deno.test("[schedule] only a failed connection, 429 and a gateway's 502/503/504 strain a destination", () => {
  const retry = (statusCode: number | null) => ({ kind: "retry" as const, statusCode, retryAfterMs: null, error: "x" });
  for (const code of [429, 502, 503, 504]) assert.equal(strainsDestination(retry(code)), true, String(code));
  for (const code of [400, 404, 500, 301]) assert.equal(strainsDestination(retry(code)), false, String(code));
  assert.equal(strainsDestination({ ...retry(null), noAnswer: "connection" }), true);
  // A hanging shop's attempts cost the pool no share of its work; a URL we would not send to never reached the shop.
  assert.equal(strainsDestination({ ...retry(null), noAnswer: "timeout" }), false);
  assert.equal(strainsDestination(retry(null)), false);
  assert.equal(strainsDestination({ kind: "delivered", statusCode: 200 }), false);
  assert.equal(strainsDestination({ kind: "gone", statusCode: 410 }), false);
});

Deno.test("[schedule] a Retry-After never shortens a schedule step longer than the most we honour", () => {
  const twoDays = 2 * 24 * 60 * 60_000;
  const next = nextDeliveryState(
    base,
    { kind: "retry", statusCode: 503, retryAfterMs: 3 * 24 * 60 * 60_000, error: "HTTP 503" },
    [0, twoDays],
    0,
  );
  assert.equal(next.nextAttemptAt, twoDays);
});
