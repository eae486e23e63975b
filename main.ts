import { ConfigError, loadConfig, startupWarnings } from "./lib/config.ts";
import { KvFileError, openKv } from "./lib/db/kv.ts";
import { log } from "./lib/log.ts";
import { createServer, type ServerParts } from "./server.ts";

// Set once the server exists; until then there is nothing to sweep.
let server: ServerParts | undefined;

// Deno Deploy finds cron jobs by running the module at deploy time: the call must come before any await or exit.
Deno.cron("run due background jobs", "* * * * *", async () => {
  await server?.runner.cronSweep();
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
if (config.sweepIntervalMs) setInterval(() => parts.runner.startSweep(), config.sweepIntervalMs);

const httpServer = Deno.serve({
  port: config.port,
  hostname: config.hostname,
  onListen(addr) {
    log.info("AimbrellaPay listening", {
      url: config.publicBaseUrl,
      on: `${addr.hostname}:${addr.port}`,
      ...parts.integrations,
    });
    for (const warning of startupWarnings(config)) log.warn(warning.msg, warning.fields);
    // Catch up on anything that fell due while we were down.
    parts.runner.startSweep();
  },
}, parts.app.fetch);

/**
 * How long a stop may take past the postback timeout before the process exits with work under way: a sweep's or a
 * webhook's attempt may start just before the stop, and its outcome still has to be stored.
 */
const STOP_MARGIN_MS = 5_000;
/** A second Ctrl-C this long after the first means "now"; a repeat sooner is the same stop delivered twice. */
const SECOND_ASK_AFTER_MS = 1_000;
let stopAskedAt: number | null = null;

/**
 * Asked to stop (a deploy, `docker stop`, Ctrl-C): answer the requests already in, let the jobs and postback attempts
 * under way end and store their outcomes, then exit. Cut off instead, an attempt the shop already got would be sent
 * again once its lease ran out, and a shop's call in the middle of its commit would see its connection drop. The stop
 * itself is bounded (`graceMs`): past it the process exits with 1, and what was under way goes out again after its
 * lease, as after a crash. A supervisor and `deno task` may both pass one SIGTERM on: only a second Ctrl-C, a second
 * or more after the first, cuts the stop short.
 */
async function stopGracefully(signal: Deno.Signal, store: Deno.Kv, graceMs: number) {
  if (stopAskedAt !== null) {
    if (signal !== "SIGINT" || Date.now() - stopAskedAt < SECOND_ASK_AFTER_MS) return;
    log.warn("stopping at once, with work under way", { signal });
    Deno.exit(1);
  }
  stopAskedAt = Date.now();
  log.info("stopping: finishing the requests, jobs and postback attempts under way", { signal });
  const deadline = setTimeout(() => {
    log.warn("still busy after the stop's grace time; exiting with work under way", { signal });
    Deno.exit(1);
  }, graceMs);
  // Together: the jobs stop starting new work at once, rather than once the last request in (a slow upload, a
  // provider call) is answered; an attempt started meanwhile could be cut off by the grace time and sent again.
  await Promise.all([httpServer.shutdown(), parts.runner.drain()]);
  await parts.close();
  store.close();
  clearTimeout(deadline);
  log.info("stopped");
  Deno.exit(0);
}
const stopGraceMs = config.postbackTimeoutMs + STOP_MARGIN_MS;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  try {
    Deno.addSignalListener(signal, () => void stopGracefully(signal, kv, stopGraceMs));
  } catch {
    // Windows takes listeners for SIGINT and SIGBREAK only: there SIGTERM ends the process as before.
  }
}
