import type { AppContext } from "../context.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import { commitPaymentMove, getPaymentEntry } from "../db/payments.ts";
import { listSupersedableDeliveries } from "../db/deliveries.ts";
import { firstAttemptLease, sendCommitted } from "../relay/pool.ts";
import type { StatEvent } from "../db/stats.ts";
import { type AuditAction, statusMoveAudit } from "../db/audit.ts";
import { log } from "../log.ts";
import { newDelivery, supersededDelivery } from "../relay/delivery.ts";
import type { Delivery } from "../relay/types.ts";
import {
  canProviderMove,
  canTransition,
  isCounted,
  isLateSuccess,
  isOpen,
  isPaid,
  type PaymentStatus,
  postbackEventType,
  supersedesPostback,
} from "./status.ts";
import type { Payment, PaymentEvent } from "./types.ts";
import { postbackBody } from "./view.ts";

/** A request to move one payment: "move X to Y because Z". */
export interface MoveRequest {
  paymentId: string;
  /** The payment as the caller just read it, to save the first read (a stale one only costs a retry). */
  read?: Deno.KvEntry<Payment>;
  to: PaymentStatus;
  /** Why, as the payment's timeline records it (webhook_received, status_checked, ...). */
  because: PaymentEvent;
  /** The timeline shows `because` from the caller's own record (a refund's): only its activity entry is written. */
  becauseIsDerived?: boolean;
  /** A provider webhook being handled: marked seen in the same operation, so a duplicate is ignored. */
  webhookEventId?: string;
  /** An operator's action: audited in the same operation. */
  audit?: { actor: string; action: AuditAction };
  /**
   * A refund's move or its reversal: the only moves within the paid statuses. Any other move is news of the payment
   * itself and takes only the moves canProviderMove allows.
   */
  byRefund?: boolean;
  /** Fields the move sets besides its status (a refunded amount, a late success). */
  patch?: (p: Payment) => Partial<Payment>;
  /**
   * How long after a move out of `pending` the payment's next status check comes (none when absent). A payment we
   * give up on (expiry, the shop's cancel) without the provider's word that it stopped taking money keeps a few, so
   * money the provider confirms later is found even when its webhook is lost (janitor.ts, LATE_CHECK_MS, counted
   * from the move's time, which is its finalizedAt).
   */
  checkAfterMs?: number;
  /**
   * More writes for the same atomic operation (a refund's own new state), given
   * the payment's next version; called again on every retry. Throwing stops
   * the move and reaches the caller.
   */
  extraOps?: (op: Deno.AtomicOperation, next: Payment) => void;
}

export type MoveResult =
  /** The payment moved; `payment` is the new version, committed at `versionstamp`. */
  | { outcome: "applied"; payment: Payment; versionstamp: string }
  /** The status table does not allow the move from where the payment is; nothing was written. */
  | { outcome: "refused"; payment: Payment };

const MAX_CONFLICT_RETRIES = 5;

/**
 * The one way a payment changes status, whoever asks (a webhook, an
 * operator's re-check, the janitor, a refund, a cancel). The move, its
 * events, the stats counters, the shop's postback job, the analytics activity
 * and the audit entry commit in one atomic operation, checked against the
 * version read; a concurrent writer makes it read again and decide again. A
 * move the status table does not allow changes nothing.
 */
export async function movePayment(ctx: AppContext, req: MoveRequest): Promise<MoveResult> {
  for (let i = 0; i < MAX_CONFLICT_RETRIES; i++) {
    const entry = i === 0 && req.read ? req.read : await getPaymentEntry(ctx.kv, req.paymentId);
    if (!entry.value) throw new NotFoundError("Unknown payment.");
    const p: Payment = entry.value;
    const allowed = req.byRefund ? canTransition(p.status, req.to) : canProviderMove(p.status, req.to);
    if (!allowed) return { outcome: "refused", payment: p };
    const now = ctx.now();
    const next: Payment = {
      ...p,
      ...req.patch?.(p),
      status: req.to,
      updatedAt: now,
      finalizedAt: isOpen(p.status) ? now : p.finalizedAt,
      // A settled payment needs no more status checks unless the caller keeps some (late money): its check job moves
      // or goes in the same operation.
      checkAt: isOpen(req.to) ? p.checkAt : req.checkAfterMs !== undefined ? now + req.checkAfterMs : null,
    };
    // Money the provider confirms after we gave up (expired, cancelled): the shop is told it is late.
    if (isLateSuccess(p.status, req.to)) next.late = true;
    // A refund or its reversal moves the payment within its paid statuses: its money came long ago, so a reversal
    // back to succeeded is no new success to tell or count. The refund's own postback and counters say it.
    const refundMove = isPaid(p.status) && isPaid(req.to);
    // The postback's timestamp orders a payment's postbacks for the shop (postbacks.md): a late success's comes after
    // the expiry or cancel it follows, also when this server's clock is behind the one that made that (finalizedAt).
    const postbackAt = isOpen(p.status) ? now : Math.max(now, (p.finalizedAt ?? 0) + 1);
    const delivery = refundMove
      ? null
      : postbackFor(next, now, { at: postbackAt, leaseUntil: firstAttemptLease(ctx, now) });
    // A payment that had settled before (a late success after payment.expired or payment.cancelled) may have an older
    // postback still retrying, or failed (a replay would send it). The new one says where the payment stands: the
    // older ones are superseded in the same operation, so none reaches the shop after it. A first settlement has no
    // older postback, so the hot path reads nothing more.
    const superseded = delivery && !isOpen(p.status) ? await supersededBy(ctx, delivery, now) : [];
    const stored = await commitPaymentMove(ctx.kv, entry as Deno.KvEntry<Payment>, next, {
      events: [
        ...(req.becauseIsDerived ? [] : [req.because]),
        // A move to the status it is in (another partial refund) changes no status: nothing to say so.
        ...(p.status === req.to ? [] : [statusChanged(p.status, req.to, now)]),
      ],
      derivedEvents: req.becauseIsDerived ? [req.because] : undefined,
      stats: refundMove ? [] : statsFor(p, next, now),
      delivery: delivery ?? undefined,
      superseded,
      webhookEventId: req.webhookEventId,
      audit: req.audit && statusMoveAudit(req.audit, { at: now, target: p.id, from: p.status, to: req.to }),
      jobs: { queue: ctx.config.jobsQueue, now },
      extraOps: req.extraOps && ((op) => req.extraOps!(op, next)),
    });
    if (stored) {
      log.info("payment status changed", { paymentId: p.id, from: p.status, to: req.to });
      if (delivery) sendCommitted(ctx, delivery, stored);
      return { outcome: "applied", payment: next, versionstamp: stored };
    }
  }
  throw new ConflictError("The payment is busy; retry.");
}

function statusChanged(from: PaymentStatus, to: PaymentStatus, at: number): PaymentEvent {
  return { type: "status_changed", at, data: { from, to } };
}

/**
 * The counters a move changes: entering a status the table counts adds to it; a late success also takes the payment
 * out of the status it gave up in (expired or cancelled), on the day that was counted, so it counts once, as what it
 * became.
 */
function statsFor(before: Payment, next: Payment, at: number): StatEvent[] {
  if (!isCounted(next.status)) return [];
  const entered: StatEvent = {
    ...next,
    at,
    status: next.status,
    payMs: next.status === "succeeded" ? at - next.createdAt : undefined,
  };
  if (!isLateSuccess(before.status, next.status) || !isCounted(before.status) || before.finalizedAt === null) {
    return [entered];
  }
  return [{ ...before, at: before.finalizedAt, status: before.status, withdrawn: true }, entered];
}

/**
 * The payment's own postbacks (not its refunds', which each speak of their refund) that `newer` supersedes: those not
 * delivered, retrying or failed, that no attempt holds right now. One being sent at this moment may still arrive after
 * the newer one; postbacks.md tells shops to keep the newest `timestamp` for that.
 */
async function supersededBy(ctx: AppContext, newer: Delivery, now: number) {
  const older = await listSupersedableDeliveries(ctx.kv, newer.paymentId, now);
  return older
    .filter((e) => supersedesPostback(newer.eventType, e.value.eventType))
    .map((entry) => ({ entry, next: supersededDelivery(entry.value, newer, now) }));
}

/**
 * The postback entering this status sends, when the shop asked for postbacks (it gave its own id); its body says it
 * happened `at`.
 */
function postbackFor(p: Payment, now: number, { at, leaseUntil }: { at: number; leaseUntil: number }): Delivery | null {
  const type = postbackEventType(p.status);
  if (!type || !p.shopTxId || !p.postbackUrl) return null;
  return newDelivery({
    paymentId: p.id,
    shopId: p.shopId,
    url: p.postbackUrl,
    eventType: type,
    body: postbackBody(p, type, at),
    now,
    leaseUntil,
  });
}
