/**
 * The BullMQ peer's producer: enqueues a backlog of postbacks while no worker
 * runs (as after an outage), the way a Node team would: one job per postback,
 * added in bulk, carrying its webhook-id (stable across retries), the shop's
 * URL and the body. BullMQ's default job options, except a retry schedule like
 * the app's in the bench (BullMQ's default is one attempt and no retry, which
 * would drop a postback the shop refused once).
 *
 * Usage: node bench/peers/producer.mjs REDIS_PORT COUNT POSTBACK_URL ATTEMPTS BACKOFF_MS
 * Prints {"enqueued": N, "ms": …}.
 */
import { randomBytes } from "node:crypto";
import { Queue } from "bullmq";
import { benchPostback, QUEUE_NAME } from "./postback.mjs";

const [port, countArg, url, attempts, backoffMs] = process.argv.slice(2);
const count = Number(countArg);
/** Jobs per addBulk call: one round trip (a MULTI) per batch instead of one per job. */
const BATCH = 500;

const queue = new Queue(QUEUE_NAME, {
  connection: { host: "127.0.0.1", port: Number(port) },
  defaultJobOptions: { attempts: Number(attempts), backoff: { type: "fixed", delay: Number(backoffMs) } },
});
const started = performance.now();
for (let first = 0; first < count; first += BATCH) {
  const jobs = [];
  for (let i = first; i < Math.min(count, first + BATCH); i++) {
    const { body } = benchPostback(i, Date.now());
    // The same id shape as the app's postbacks (msg_ + 16 random bytes, base64url).
    const msgId = `msg_${randomBytes(16).toString("base64url")}`;
    jobs.push({ name: "payment.succeeded", data: { msgId, url, body } });
  }
  await queue.addBulk(jobs);
}
const ms = Math.round(performance.now() - started);
await queue.close();
console.log(JSON.stringify({ enqueued: count, ms }));
