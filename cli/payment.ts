/**
 * Operator commands for payments:
 *   deno task payment show PAYMENT_ID     the payment, its events and postback attempts
 *   deno task payment resend PAYMENT_ID [DELIVERY_ID] --actor EMAIL
 *                                         send a postback again now: the one named (msg_...), else its
 *                                         newest not delivered, else its newest
 *   deno task payment settle-refund PAYMENT_ID REFUND_ID failed|succeeded --note NOTE --actor EMAIL
 *                                         settle a refund its provider leaves pending, with what you learnt at the
 *                                         provider (its dashboard, its support): failed (it made no refund) or
 *                                         succeeded (it made it); NOTE says how you know. The shop is told, as when
 *                                         the provider answers; audited with the note. The note may also come last
 *                                         without --note, as before it was an option, unless it begins with a dash
 *   deno task payment orphans             the paid orphans: money a provider took on a payment it made for one of our
 *                                         ids that no stored payment names; those waiting first, then the latest handled
 *   deno task payment handle-orphan ACCOUNT_ID REF --note NOTE --actor EMAIL
 *                                         mark one handled once it is refunded at the provider or taken by the shop by
 *                                         hand (NOTE says which): its provider's news about it is acknowledged from
 *                                         then on and the alert clears; audited with the note (which may also come
 *                                         last without --note)
 * The three that act are audited under the operator who runs them: --actor is their operator email (an active
 * operator's), recorded as `EMAIL (cli)`. It is required: a shell knows no sign-in to tell who it is.
 *   deno task payment reindex             put payments stored before the email index into it, to the end
 *   deno task payment backfill            give records stored before this version the checks and indexes new ones
 *                                         get (late checks, refunds' reversal checks, the late-invoice index), to the
 *                                         end; start-up runs the same in the background. Prints where each stands
 */
import { backfillPaymentEmailIndex } from "../lib/db/payments.ts";
import { BACKFILL_RUNS, describeBackfills } from "../lib/backfills/mod.ts";
import { runBackfill } from "../lib/backfills/run.ts";
import { describePayment, resendPostback } from "../lib/payments/admin.ts";
import { settleRefundByHand } from "../lib/refunds/admin.ts";
import { refundView } from "../lib/refunds/view.ts";
import { listOrphans, markOrphanHandled } from "../lib/payments/orphans.ts";
import {
  ACTOR_OPTION,
  ACTOR_USAGE,
  fail,
  parseCommandArgs,
  printJson,
  refuseOptionsNotTaken,
  requireActor,
  runCommand,
} from "./_context.ts";

const USAGE = `usage:
  deno task payment show PAYMENT_ID
  deno task payment resend PAYMENT_ID [DELIVERY_ID] --actor EMAIL
  deno task payment settle-refund PAYMENT_ID REFUND_ID failed|succeeded --note NOTE --actor EMAIL
  deno task payment orphans
  deno task payment handle-orphan ACCOUNT_ID REF --note NOTE --actor EMAIL
  deno task payment reindex
  deno task payment backfill
${ACTOR_USAGE}`;
const { values, positionals, given } = parseCommandArgs({ note: { type: "string" }, ...ACTOR_OPTION }, USAGE);
const [cmd, id, deliveryId] = positionals;
/**
 * Each command once: how many arguments it takes, its name included (a note given last, without --note, is one more),
 * whether it acts (audited under --actor) and whether it takes a note. An argument too many is refused, not ignored
 * (see parseCommandArgs).
 */
const COMMANDS = new Map<string, { args: [min: number, max: number]; audited?: true; note?: true }>([
  ["show", { args: [2, 2] }],
  ["resend", { args: [2, 3], audited: true }],
  ["settle-refund", { args: [4, 4], audited: true, note: true }],
  ["handle-orphan", { args: [3, 3], audited: true, note: true }],
  ["reindex", { args: [1, 1] }],
  ["backfill", { args: [1, 1] }],
  ["orphans", { args: [1, 1] }],
]);
const command = COMMANDS.get(cmd) ?? fail(USAGE);
// The note as --note, or as the last argument (as settle-refund took it before --note existed, and handle-orphan
// alike); one of the two.
const args = positionals.length - (command.note && values.note === undefined ? 1 : 0);
if (args < command.args[0] || args > command.args[1] || (command.args[0] > 1 && !id)) fail(USAGE);
refuseOptionsNotTaken(given, command.note ? ["note"] : [], `payment ${cmd}`, USAGE);
const actorEmail = command.audited ? requireActor(values.actor, cmd, USAGE) : undefined;

await runCommand(async (server, actor) => {
  if (cmd === "reindex") {
    // Start-up does the same in the background; this runs it to the end and says when it is.
    const { indexed, done } = await backfillPaymentEmailIndex(server.ctx.kv);
    printJson({ emailIndex: done ? "complete" : "incomplete", indexedNow: indexed });
  } else if (cmd === "backfill") {
    // Start-up runs these in the background; this runs each to the end (resuming where it stands) and says so.
    const ran = new Map<string, number>();
    for (const backfill of BACKFILL_RUNS) ran.set(backfill.name, (await runBackfill(server.ctx, backfill)).written);
    const backfills = (await describeBackfills(server.ctx)).map((b) => ({ ...b, writtenNow: ran.get(b.name) ?? 0 }));
    printJson({ backfills });
  } else if (cmd === "orphans") {
    printJson(await listOrphans(server.ctx));
  } else if (cmd === "handle-orphan") {
    const [, accountId, ref, note = values.note!] = positionals;
    printJson({ orphan: await markOrphanHandled(server.ctx, { accountId, ref, note }, { actor }) });
  } else if (cmd === "show") {
    const { payment, events, deliveries } = await describePayment(server.ctx, id);
    // Delivery bodies are the shop's own data; operators see them, secrets are never stored there. A lease's token
    // is the relay's own bookkeeping, and a postback no longer pending has no next attempt, whatever it last held.
    const shown = deliveries.map(({ leaseToken: _, ...d }) =>
      d.status === "pending" ? d : { ...d, nextAttemptAt: null }
    );
    printJson({ payment, events, deliveries: shown });
  } else if (cmd === "settle-refund") {
    const [, , refundId, outcome, note = values.note!] = positionals;
    const r = await settleRefundByHand(server.ctx, id, refundId, { outcome, note }, { actor });
    const { payment } = await describePayment(server.ctx, id);
    printJson({
      refund: refundView(r),
      settledBy: r.settledBy,
      payment: { id: payment.id, status: payment.status, refundedAmount: payment.refundedAmount ?? 0 },
    });
  } else {
    const d = await resendPostback(server.ctx, id, { actor, deliveryId });
    printJson({
      deliveryId: d.id,
      status: d.status,
      attempts: d.attempts,
      lastStatusCode: d.lastStatusCode,
      lastError: d.lastError,
    });
  }
}, { actor: actorEmail });
