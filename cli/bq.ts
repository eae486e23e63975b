/**
 * BigQuery commands (the export itself runs in the server's background jobs):
 *   deno task bq setup                           create the dataset, tables and views; add new columns
 *   deno task bq backfill --from DATE --to DATE  send the activity of those days again (UTC, both included)
 *   deno task bq status                          backlog, last success and last error of the export
 * DATE is YYYY-MM-DD or a full ISO timestamp (then --to is exclusive).
 */
import { analyticsStatus, backfillAnalytics } from "../lib/analytics/mod.ts";
import { describeBigQueryError } from "../lib/analytics/_errors.ts";
import { fail, openCliServer, parseCommandArgs, printJson, refuseOptionsNotTaken } from "./_context.ts";

const USAGE = `usage:
  deno task bq setup
  deno task bq backfill --from DATE --to DATE
  deno task bq status`;
const DAY_MS = 24 * 60 * 60 * 1000;

const { values, positionals, given } = parseCommandArgs({ from: { type: "string" }, to: { type: "string" } }, USAGE);
const [cmd] = positionals;
// An argument too many is refused, not ignored (see parseCommandArgs).
if ((cmd !== "setup" && cmd !== "backfill" && cmd !== "status") || positionals.length !== 1) fail(USAGE);
refuseOptionsNotTaken(given, cmd === "backfill" ? ["from", "to"] : [], `bq ${cmd}`, USAGE);
const range = cmd === "backfill" ? parseRange(values.from, values.to) : null;

const server = await openCliServer();
const { ctx } = server;
let code = 0;
try {
  if (cmd === "status") printJson(await analyticsStatus(ctx));
  else if (!ctx.analytics) {
    console.error(
      "BigQuery is off: set BIGQUERY_PROJECT, BIGQUERY_DATASET, BIGQUERY_LOCATION and BIGQUERY_CREDENTIALS.",
    );
    code = 2;
  } else if (cmd === "setup") {
    for (const line of await ctx.analytics.sink.setup()) console.log(line);
  } else if (range) {
    const total = await backfillAnalytics(ctx.kv, ctx.analytics, {
      ...range,
      onBatch: (p) => console.error(`sent ${p.entries} entries (${p.rows} rows)`),
    });
    printJson({ from: new Date(range.from).toISOString(), to: new Date(range.to).toISOString(), ...total });
  }
} catch (err) {
  console.error(`bq ${cmd} failed: ${describeBigQueryError(err)}`);
  code = 1;
} finally {
  await server.close();
  ctx.kv.close();
}
// The client keeps idle keep-alive sockets open; they must not hold the command open.
Deno.exit(code);

/** --from/--to as [from, to) in ms; a bare date covers that whole UTC day. */
function parseRange(from: string | undefined, to: string | undefined): { from: number; to: number } {
  const day = /^\d{4}-\d{2}-\d{2}$/;
  const start = from ? Date.parse(day.test(from) ? `${from}T00:00:00Z` : from) : NaN;
  const end = to ? Date.parse(day.test(to) ? `${to}T00:00:00Z` : to) + (day.test(to) ? DAY_MS : 0) : NaN;
  if (Number.isNaN(start) || Number.isNaN(end)) fail(`--from and --to must be dates (YYYY-MM-DD)\n${USAGE}`);
  if (end <= start) fail("--to must not be before --from");
  return { from: start, to: end };
}
