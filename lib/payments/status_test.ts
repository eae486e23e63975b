import assert from "node:assert/strict";
import { TABLES } from "../analytics/schema.ts";
import {
  canTransition,
  COUNTED_STATUSES,
  PAYMENT_POSTBACK_TYPES,
  PAYMENT_STATUSES,
  type PaymentStatus,
  postbackEventType,
} from "./status.ts";

/** The moves the lifecycle allows, written out by hand to check the table against. */
const ALLOWED: [PaymentStatus, PaymentStatus][] = [
  ["pending", "succeeded"],
  ["pending", "failed"],
  ["pending", "expired"],
  ["pending", "cancelled"],
  ["succeeded", "partially_refunded"],
  ["succeeded", "refunded"],
  ["partially_refunded", "partially_refunded"],
  ["partially_refunded", "refunded"],
  // A refund the provider reverses after it succeeded.
  ["partially_refunded", "succeeded"],
  ["refunded", "partially_refunded"],
  ["refunded", "succeeded"],
  ["expired", "succeeded"],
  ["cancelled", "succeeded"],
];

Deno.test("[status] exactly the lifecycle's moves are allowed; nothing else moves", () => {
  for (const from of PAYMENT_STATUSES) {
    for (const to of PAYMENT_STATUSES) {
      const expected = ALLOWED.some(([f, t]) => f === from && t === to);
      assert.equal(canTransition(from, to), expected, `${from} -> ${to}`);
    }
  }
  assert.ok(PAYMENT_STATUSES.every((to) => !canTransition("failed", to)), "failed never changes");
});

Deno.test("[status] settling sends a postback; refund states leave it to the refund's own", () => {
  assert.equal(postbackEventType("pending"), null);
  assert.equal(postbackEventType("succeeded"), "payment.succeeded");
  assert.equal(postbackEventType("failed"), "payment.failed");
  assert.equal(postbackEventType("expired"), "payment.expired");
  assert.equal(postbackEventType("cancelled"), "payment.cancelled");
  assert.equal(postbackEventType("partially_refunded"), null);
  assert.equal(postbackEventType("refunded"), null);
  assert.deepEqual(PAYMENT_POSTBACK_TYPES, [
    "payment.succeeded",
    "payment.failed",
    "payment.expired",
    "payment.cancelled",
  ]);
  assert.deepEqual(COUNTED_STATUSES, ["succeeded", "failed", "expired", "cancelled"]);
});

Deno.test("[status] the BigQuery column documents every status", () => {
  const column = TABLES.find((t) => t.id === "payments")!.fields.find((f) => f.name === "status")!;
  for (const status of PAYMENT_STATUSES) assert.ok(column.description.includes(status), status);
});
