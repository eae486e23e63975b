/**
 * The BullMQ peer's worker, as a Node team would write the relay: BullMQ's
 * documented defaults apart from concurrency 64; each job's postback signed
 * with the `standardwebhooks` package and POSTed with Node's own fetch
 * (keep-alive as it comes); a non-2xx answer or a network error fails the
 * attempt, so BullMQ retries it on the job's schedule. Runs until SIGTERM.
 *
 * Env: REDIS_PORT, WEBHOOK_SECRET (whsec_…), POSTBACK_TIMEOUT_MS.
 * Prints "ready" once connected to Redis.
 */
import { Worker } from "bullmq";
import { Webhook } from "standardwebhooks";
import { QUEUE_NAME } from "./postback.mjs";

const CONCURRENCY = 64;
const webhook = new Webhook(process.env.WEBHOOK_SECRET);
const timeoutMs = Number(process.env.POSTBACK_TIMEOUT_MS);

async function deliver(job) {
  const { msgId, url, body } = job.data;
  const now = new Date();
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "webhook-id": msgId,
      "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
      "webhook-signature": webhook.sign(msgId, now, body),
    },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const answer = await res.text();
  if (!res.ok) throw new Error(`shop answered ${res.status}: ${answer.slice(0, 200)}`);
}

const worker = new Worker(QUEUE_NAME, deliver, {
  connection: { host: "127.0.0.1", port: Number(process.env.REDIS_PORT) },
  concurrency: CONCURRENCY,
});
worker.on("failed", (job, err) => console.error(`job ${job?.id} attempt failed: ${err.message}`));
worker.on("error", (err) => console.error(`worker error: ${err.message}`));

process.on("SIGTERM", async () => {
  await worker.close();
  process.exit(0);
});
await worker.waitUntilReady();
console.log("ready");
