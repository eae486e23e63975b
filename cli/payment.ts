/**
 * Operator commands for payments:
 *   deno task payment show PAYMENT_ID     the payment, its events and postback attempts
 *   deno task payment resend PAYMENT_ID [DELIVERY_ID]
 *                                         send a postback again now: the one named (msg_...), else its
 *                                         newest not delivered, else its newest
 *   deno task payment reindex             put payments stored before the email index into it, to the end
 */
import { backfillPaymentEmailIndex } from "../lib/db/payments.ts";
import { describePayment, resendPostback } from "../lib/payments/admin.ts";
import { fail, printJson, runCommand } from "./_context.ts";

const USAGE =
  "usage:\n  deno task payment show PAYMENT_ID\n  deno task payment resend PAYMENT_ID [DELIVERY_ID]\n  deno task payment reindex";
const [cmd, id, deliveryId] = Deno.args;
if (cmd !== "reindex" && (!id || (cmd !== "show" && cmd !== "resend"))) fail(USAGE);

await runCommand(async (server) => {
  if (cmd === "reindex") {
    // Start-up does the same in the background; this runs it to the end and says when it is.
    const { indexed, done } = await backfillPaymentEmailIndex(server.ctx.kv);
    printJson({ emailIndex: done ? "complete" : "incomplete", indexedNow: indexed });
  } else if (cmd === "show") {
    const { payment, events, deliveries } = await describePayment(server.ctx, id);
    // Delivery bodies are the shop's own data; operators see them, secrets are never stored there. A lease's token
    // is the relay's own bookkeeping, and a postback no longer pending has no next attempt, whatever it last held.
    const shown = deliveries.map(({ leaseToken: _, ...d }) =>
      d.status === "pending" ? d : { ...d, nextAttemptAt: null }
    );
    printJson({ payment, events, deliveries: shown });
  } else {
    const d = await resendPostback(server.ctx, id, { actor: "cli", deliveryId });
    printJson({
      deliveryId: d.id,
      status: d.status,
      attempts: d.attempts,
      lastStatusCode: d.lastStatusCode,
      lastError: d.lastError,
    });
  }
});
