import assert from "node:assert/strict";
import { canTransition, isTerminal, PAYMENT_STATUSES, postbackEventType } from "./status.ts";

Deno.test("[status] payments only move forward and terminal states never change", () => {
  assert.ok(canTransition("pending", "succeeded"));
  assert.ok(canTransition("pending", "failed"));
  assert.ok(canTransition("pending", "expired"));
  assert.ok(!canTransition("pending", "pending"));
  for (const terminal of ["succeeded", "failed", "expired"] as const) {
    assert.ok(isTerminal(terminal));
    for (const to of PAYMENT_STATUSES) assert.ok(!canTransition(terminal, to), `${terminal} -> ${to}`);
  }
});

Deno.test("[status] only settled payments produce postbacks", () => {
  assert.equal(postbackEventType("pending"), null);
  assert.equal(postbackEventType("succeeded"), "payment.succeeded");
  assert.equal(postbackEventType("failed"), "payment.failed");
  assert.equal(postbackEventType("expired"), "payment.expired");
});
