import assert from "node:assert/strict";
import { nextDeliveryState, parseRetryAfter, strainsDestination } from "./schedule.ts";
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
