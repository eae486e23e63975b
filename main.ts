import { ConfigError, loadConfig } from "./lib/config.ts";
import { KvFileError, openKv } from "./lib/db/kv.ts";
import { log } from "./lib/log.ts";
import { createServer, type ServerParts } from "./server.ts";

// Set once the server exists; until then there is nothing to sweep.
let server: ServerParts | undefined;

// Deno Deploy finds cron jobs by running the module at deploy time: the call must come before any await or exit.
Deno.cron("run due background jobs", "* * * * *", async () => {
  await server?.runner.sweep();
});

let config;
try {
  config = loadConfig(Deno.env.toObject());
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  Deno.exit(1);
}

let kv;
try {
  kv = await openKv(config.kvPath);
} catch (err) {
  if (!(err instanceof KvFileError)) throw err;
  console.error(`${err.message}; set DENO_KV_PATH to a file in a writable folder.`);
  Deno.exit(1);
}
const parts = server = await createServer(config, kv);

// Deno Deploy has no KV queues (JOBS_QUEUE=off there): the cron sweep alone delivers.
if (config.jobsQueue) kv.listenQueue(parts.runner.onQueueMessage);
if (config.sweepIntervalMs) setInterval(() => parts.runner.sweep(), config.sweepIntervalMs);

Deno.serve({
  port: config.port,
  hostname: config.hostname,
  onListen() {
    log.info("AimbrellaPay listening", { url: config.publicBaseUrl, ...parts.integrations });
    // Catch up on anything that fell due while we were down.
    parts.runner.sweep();
  },
}, parts.app.fetch);
