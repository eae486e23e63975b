import { type Backfill, catchUpCheckAt } from "../backfills/run.ts";
import type { BackfillState } from "../db/backfills.ts";
import {
  addPaymentName,
  getPaymentEntries,
  iteratePaymentIds,
  type ListedPayment,
  listPaymentEvents,
  reschedulePaymentCheck,
} from "../db/payments.ts";
import { encodeTime } from "../ids.ts";
import type { AppContext } from "../context.ts";
import { LATE_CHECK_MS, nextLateCheckAt } from "./janitor.ts";
import { MAX_EXPIRES_IN_S } from "./schema.ts";
import { isLateSuccess } from "./status.ts";
import type { Payment } from "./types.ts";
import { legacyPaymentId, paymentNameOf } from "./names.ts";

/**
 * How far back a payment can have been created and still be within its late checks: given up at the latest at its
 * expiry (MAX_EXPIRES_IN_S after creation; a cancel comes before), checked up to the last step after that, and a day
 * for an expiry the sweep reached late (a process down). About 38 days: older payments are not read.
 */
const WINDOW_MS = MAX_EXPIRES_IN_S * 1000 + LATE_CHECK_MS.at(-1)! + 24 * 60 * 60_000;
/** Payments whose first late checks passed before the backfill found them get their catch-up within this. */
export const LATE_CHECK_CATCH_UP_MS = 60 * 60_000;

/**
 * Late checks for payments given up on before late checks existed (janitor.ts, LATE_CHECK_MS): an expiry or a cancel
 * the provider did not confirm, stored with no check left (`checkAt` null), so late money whose webhook is lost would
 * stay hidden. Read newest first through the time listing, only those created within WINDOW_MS of the cut; whether
 * the provider confirmed is what the payment's own expiry_reached or cancel_requested event says (providerCancelled,
 * recorded since expiry and cancel exist), as the move that gives up decides it now. Each gets the check a payment given
 * up now has: the next step of LATE_CHECK_MS from when it was given up (nextLateCheckAt), or, where steps passed
 * unchecked, one catch-up within LATE_CHECK_CATCH_UP_MS (catchUpCheckAt); the janitor then follows the schedule.
 */
export const lateCheckBackfill: Backfill = {
  name: "payment_late_checks",
  what: "late status checks for payments expired or cancelled without the provider's word before late checks existed",
  step: backfillLateChecks,
};

async function backfillLateChecks(ctx: AppContext, state: BackfillState, batchSize: number) {
  const listed: ListedPayment[] = [];
  const newestFirst = iteratePaymentIds(ctx.kv, {
    startSeq: encodeTime(state.cut - WINDOW_MS),
    endSeq: state.after ?? encodeTime(state.cut + 1),
  });
  for await (const p of newestFirst) {
    listed.push(p);
    if (listed.length >= batchSize) break;
  }
  const entries = await getPaymentEntries(ctx.kv, listed.map((p) => p.id));
  const written = await Promise.all(entries.map(async (entry) => {
    const p = entry.value;
    if (!p || !mayOweLateChecks(p, state.cut)) return false;
    const now = ctx.now();
    const next = nextLateCheckAt(p.finalizedAt!, now);
    if (next === null || !(await givenUpWithoutProviderWord(ctx.kv, p))) return false;
    const at = catchUpCheckAt(
      { from: p.finalizedAt!, firstStepMs: LATE_CHECK_MS[0], next, now },
      p.id,
      LATE_CHECK_CATCH_UP_MS,
    );
    // Checked against the version read: a payment that changed meanwhile (its webhook, a check) keeps what that wrote.
    return await reschedulePaymentCheck(ctx.kv, entry as Deno.KvEntry<Payment>, at);
  }));
  return {
    after: listed.at(-1)?.seq ?? state.after,
    done: listed.length < batchSize,
    written: written.filter(Boolean).length,
  };
}

/**
 * Expired or cancelled by us before the cut, and with no check left: what a payment given up on looked like before
 * late checks. One given up since is this version's own (it has its checks, or they ended).
 */
function mayOweLateChecks(p: Payment, cut: number): boolean {
  return p.providerRef !== null && isLateSuccess(p.status, "succeeded") && p.finalizedAt !== null &&
    p.finalizedAt < cut && !p.checkAt;
}

/** Whether the move that gave the payment up had no word from the provider that it stopped taking money. */
async function givenUpWithoutProviderWord(kv: Deno.Kv, p: Payment): Promise<boolean> {
  const events = await listPaymentEvents(kv, p);
  const gaveUp = events.findLast((e) =>
    (e.type === "expiry_reached" && p.status === "expired") ||
    (e.type === "cancel_requested" && p.status === "cancelled")
  );
  // None: the provider itself said so (a webhook or a check brought expired or cancelled), and nothing can come.
  return gaveUp?.data.providerCancelled === false;
}

/**
 * Names' keys for payments named before names were stored (names.ts: their ids were derived from the name). Until it
 * is done, a name is also looked for under that id (query.ts: findNamedPayment), a second read; so it reads every
 * payment stored before the cut, newest first through the time listing, and gives each named one with a derived id
 * its name's key, checked to be unused (a second run writes nothing).
 */
export const paymentNameBackfill: Backfill = {
  name: "payment_names",
  what: "name keys for payments named by a shop's id or Idempotency-Key before names were stored",
  step: backfillPaymentNames,
};

async function backfillPaymentNames(ctx: AppContext, state: BackfillState, batchSize: number) {
  const listed: ListedPayment[] = [];
  for await (const p of iteratePaymentIds(ctx.kv, { endSeq: state.after ?? encodeTime(state.cut + 1) })) {
    listed.push(p);
    if (listed.length >= batchSize) break;
  }
  const entries = await getPaymentEntries(ctx.kv, listed.map((p) => p.id));
  const written = await Promise.all(entries.map((entry) => {
    const p = entry.value;
    const name = p && paymentNameOf(p);
    return p && name && p.id === legacyPaymentId(ctx.paymentIdKey, p.shopId, name) ? addPaymentName(ctx.kv, p) : false;
  }));
  return {
    after: listed.at(-1)?.seq ?? state.after,
    done: listed.length < batchSize,
    written: written.filter(Boolean).length,
  };
}
