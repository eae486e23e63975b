/**
 * Writes N due postbacks into the app's KV while the app is stopped, for the
 * drain benchmark. Each is written by the app's own data layer
 * (`addDeliveryOps`) exactly as a webhook would write it: the delivery record,
 * its per-payment index and its due-index entry (a first attempt gets no queue
 * message: its creator sends it at once, and the sweep after a restart). Making
 * 10,000 real payments and webhooks first would take minutes; what the drain
 * measures starts from this state either way.
 *
 * Usage: seed_postbacks.ts KV_PATH SHOP_ID POSTBACK_URL COUNT   (prints {"seeded": N, "ms": …})
 */
import { addDeliveryOps } from "../lib/db/deliveries.ts";
import { newMessageId } from "../lib/relay/signing.ts";
import type { Delivery } from "../lib/relay/types.ts";
import { benchPostback } from "./peers/postback.mjs";

const [kvPath, shopId, url, countArg] = Deno.args;
const count = Number(countArg);
/** Commits in flight at once: enough to keep SQLite busy, few enough to stay gentle on memory. */
const PARALLEL = 64;

function delivery(i: number, now: number): Delivery {
  const { paymentId, body } = benchPostback(i, now);
  return {
    id: newMessageId(),
    paymentId,
    shopId,
    url,
    eventType: "payment.succeeded",
    body,
    status: "pending",
    attempts: 0,
    scheduleStep: 0,
    nextAttemptAt: now,
    leaseUntil: 0,
    lastStatusCode: null,
    lastError: null,
    createdAt: now,
    updatedAt: now,
  };
}

const kv = await Deno.openKv(kvPath);
const started = performance.now();
let next = 0;
await Promise.all(Array.from({ length: PARALLEL }, async () => {
  while (next < count) {
    const now = Date.now();
    const op = kv.atomic();
    addDeliveryOps(op, delivery(next++, now), { queue: true, now });
    const res = await op.commit();
    if (!res.ok) throw new Error("seeding a delivery failed");
  }
}));
kv.close();
console.log(JSON.stringify({ seeded: count, ms: Math.round(performance.now() - started) }));
