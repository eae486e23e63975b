import type { AppContext } from "../context.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { hasIdShape } from "../ids.ts";
import { sha256Hex } from "../crypto.ts";
import { DEFAULT_ACCOUNT_ID } from "../accounts/types.ts";
import type { ProviderStatus } from "../providers/types.ts";
import { PAID_ORPHANS_CAP } from "../metrics.ts";
import {
  countUnhandledPaidOrphans,
  getPaidOrphan,
  listPaidOrphans,
  markPaidOrphanHandled,
  type OrphanSighting,
} from "../db/paid_orphans.ts";
import { getPayments } from "../db/payments.ts";

/** Who marked a paid orphan handled, when, and what they did about it. */
export interface PaidOrphanHandled {
  at: number;
  by: string;
  note: string;
}

/**
 * A payment at a provider that took money (or has it on its way) for an id of ours that no stored payment names, as
 * its refused webhooks told us: the provider retries the news until it is answered 2xx, which it is once an operator
 * has marked it handled. The provider's news carries no amount (Bansky's has none), so none is kept: the operator
 * reads it at the provider by `ref`.
 */
export interface PaidOrphan {
  provider: string;
  accountId: string;
  /** The provider's reference of the payment: with the account, what identifies it. */
  ref: string;
  /** Our payment id it was made for. */
  paymentId: string;
  /** Whether a payment with that id was stored when last seen (it then names another reference: storedRef). */
  paymentStored: boolean;
  storedRef: string | null;
  /**
   * What the news claimed (succeeded; pending for a Stripe bank debit on its way): succeeded once any said so, since
   * a late retry of the older news does not take the money back.
   */
  claimed: ProviderStatus;
  lastEventId: string;
  firstSeenAt: number;
  lastSeenAt: number;
  timesSeen: number;
  handled: PaidOrphanHandled | null;
  /**
   * A mark made while the money was on its way (claimed pending), undone when the provider said it arrived: the
   * operator answered news of money that might not come, and now it has. Absent on the others.
   */
  earlierMark?: PaidOrphanHandled;
}

/**
 * The longest provider reference and event id kept. The webhook is signed, but a provider (or whoever holds its
 * secret) decides these strings: what it can make us store stays small. Bansky's are at most 200 (its schema);
 * Stripe's session and event ids are under 100. A longer reference is kept cut (keptRef).
 */
export const ORPHAN_REF_MAX = 255;
const EVENT_ID_MAX = 200;
/** The longest note an operator's mark takes: a sentence or two, like a refund settled by hand. */
export const ORPHAN_NOTE_MAX = 500;

/**
 * A provider's reference as a record keeps it and keys it: as given when it fits, else cut with the SHA-256 of the
 * whole in place of its end. A plain cut would make two references that agree up to the cap one record, and an
 * operator's mark of one would acknowledge the other's news of money too.
 */
function keptRef(ref: string): string {
  if (ref.length <= ORPHAN_REF_MAX) return ref;
  const hash = sha256Hex(ref);
  return `${ref.slice(0, ORPHAN_REF_MAX - hash.length - 1)}#${hash}`;
}

/** What a refused webhook about a paid orphan says, capped to what the record keeps. */
export function orphanSighting(
  news: { provider: string; accountId: string; ref: string; paymentId: string; claimed: ProviderStatus },
  stored: { paymentStored: boolean; storedRef: string | null },
  eventId: string,
): OrphanSighting {
  return {
    provider: news.provider,
    accountId: news.accountId,
    ref: keptRef(news.ref),
    paymentId: news.paymentId,
    paymentStored: stored.paymentStored,
    storedRef: stored.storedRef?.slice(0, ORPHAN_REF_MAX) ?? null,
    claimed: news.claimed,
    lastEventId: eventId.slice(0, EVENT_ID_MAX),
  };
}

/**
 * A paid orphan as listed, with the payment stored under its id now (null: none). The record says what was stored when
 * its news was last seen; news that beat our commit of a new payment found none, and its payment is there now.
 */
export interface ListedOrphan extends PaidOrphan {
  paymentNow: { providerRef: string | null } | null;
}

/**
 * The paid orphans for the console's page and the CLI: every unhandled one (up to 500 an account), then the latest
 * handled, each with whether a payment with its id is stored now, read for the ids listed in one getMany.
 */
export async function listOrphans(ctx: AppContext): Promise<{ unhandled: ListedOrphan[]; handled: ListedOrphan[] }> {
  const { unhandled, handled } = await listPaidOrphans(ctx.kv, { unhandled: 500, handled: 50 });
  // A provider's news names the id: one not of our shape names no payment, and must not reach KV as a key.
  const ids = new Set([...unhandled, ...handled].map((o) => o.paymentId).filter((id) => hasIdShape("payment", id)));
  const stored = new Map((await getPayments(ctx.kv, [...ids])).map((p) => [p.id, p]));
  const listed = (o: PaidOrphan): ListedOrphan => {
    const payment = stored.get(o.paymentId);
    return { ...o, paymentNow: payment ? { providerRef: payment.providerRef } : null };
  };
  return { unhandled: unhandled.map(listed), handled: handled.map(listed) };
}

/**
 * How many paid orphans wait for an operator, for the console's overview: counted up to the gauge's cap an account
 * (then "at least"), so the page and the alert agree.
 */
export async function countOrphansWaiting(ctx: AppContext): Promise<{ count: number; more: boolean }> {
  const counts = await countUnhandledPaidOrphans(ctx.kv, PAID_ORPHANS_CAP);
  return { count: counts.reduce((n, c) => n + c.count, 0), more: counts.some((c) => c.count >= PAID_ORPHANS_CAP) };
}

/** An operator's mark as read from a form or the command line, for its confirmation: the orphan and the note. */
export async function previewOrphanHandling(
  ctx: AppContext,
  form: { accountId?: string; ref?: string; note?: string },
): Promise<{ orphan: PaidOrphan; note: string }> {
  const accountId = form.accountId ?? "";
  const ref = form.ref ?? "";
  // An id that cannot be one names none, and must not reach KV (which refuses over-long keys).
  const known = (accountId === DEFAULT_ACCOUNT_ID || hasIdShape("account", accountId)) && ref.length > 0 &&
    ref.length <= ORPHAN_REF_MAX;
  const orphan = known ? await getPaidOrphan(ctx.kv, accountId, ref) : null;
  if (!orphan) throw new NotFoundError("Unknown paid orphan.");
  const note = (form.note ?? "").trim();
  const problem = !note
    ? "is required"
    : note.length > ORPHAN_NOTE_MAX
    ? `is longer than ${ORPHAN_NOTE_MAX} characters`
    : null;
  if (problem) {
    throw new ValidationError(
      `Say in the note what was done about it (up to ${ORPHAN_NOTE_MAX} characters), e.g. "refunded in Stripe's ` +
        `Dashboard on 2026-11-30" or "the shop took the order by hand".`,
      { note: problem },
    );
  }
  return { orphan, note };
}

/**
 * An operator marks a paid orphan handled (refunded at the provider, or the shop took the order by hand): it leaves
 * the unhandled gauge (so the alert clears), its provider's further news about it is acknowledged (so the retries
 * stop), and the audit log keeps who and their note, all in one write.
 */
export async function markOrphanHandled(
  ctx: AppContext,
  form: { accountId?: string; ref?: string; note?: string },
  { actor }: { actor: string },
): Promise<PaidOrphan> {
  const { orphan, note } = await previewOrphanHandling(ctx, form);
  const handled = { at: ctx.now(), by: actor, note };
  return await markPaidOrphanHandled(ctx.kv, orphan, handled, (before, after) => ({
    at: handled.at,
    actor,
    action: "paid_orphan.handle",
    target: after.ref,
    before: { handled: null, timesSeen: before.timesSeen },
    after: { accountId: after.accountId, paymentId: after.paymentId, handled: true, note },
  }));
}
