import { ConfigError, loadConfig } from "./lib/config.ts";
import { openKv } from "./lib/db/kv.ts";
import { log } from "./lib/log.ts";
import { createServer } from "./server.ts";

let config;
try {
  config = loadConfig(Deno.env.toObject());
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  Deno.exit(1);
}

const kv = await openKv(config.kvPath);
const server = await createServer(config, kv);

// Deno Deploy has no KV queues (JOBS_QUEUE=off there): the cron sweep alone delivers.
if (config.jobsQueue) kv.listenQueue(server.runner.onQueueMessage);
Deno.cron("run due background jobs", "* * * * *", () => server.runner.sweep().then(() => {}));
if (config.sweepIntervalMs) setInterval(() => server.runner.sweep(), config.sweepIntervalMs);

Deno.serve({
  port: config.port,
  hostname: config.hostname,
  onListen() {
    log.info("AimbrellaPay listening", { url: config.publicBaseUrl, ...server.integrations });
    // Catch up on anything that fell due while we were down.
    server.runner.sweep();
  },
}, server.app.fetch);
