import type { Payment, PaymentEvent } from "../payments/types.ts";
import type { Delivery } from "../relay/types.ts";
import { sortableId } from "../ids.ts";
import { collectValues } from "./kv.ts";
import { addDeliveryOps } from "./deliveries.ts";
import type { ScheduleOptions } from "./jobs.ts";
import { addStatsOps, type StatStatus } from "./stats.ts";
import { addActivityOps } from "./activity.ts";
import { isTerminal } from "../payments/status.ts";

const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const WEBHOOK_DEDUP_TTL_MS = 30 * 24 * 60 * 60 * 1000;

const paymentKey = (id: string) => ["payments", id] as const;
const byShopKey = (shopId: string, seq: string) => ["payments_by_shop", shopId, seq] as const;
const byTimeKey = (seq: string) => ["payments_by_time", seq] as const;
const byShopRefKey = (shopId: string, ref: string) => ["payments_by_shop_ref", shopId, ref] as const;
const byIdempotencyKey = (shopId: string, key: string) => ["payments_by_idempotency_key", shopId, key] as const;
const byProviderRefKey = (provider: string, ref: string) => ["payments_by_provider_ref", provider, ref] as const;
const eventKey = (paymentId: string, seq: string) => ["payment_events", paymentId, seq] as const;
/** The key of one payment event, for bulk readers such as the analytics export. */
export const paymentEventKey = eventKey;
/** Writes a payment event and its activity-log entry into an atomic operation. */
function addEventOps(op: Deno.AtomicOperation, paymentId: string, shopId: string, event: PaymentEvent) {
  const eventSeq = sortableId();
  op.set(eventKey(paymentId, eventSeq), event);
  addActivityOps(op, { kind: "event", paymentId, shopId, eventSeq, event });
}

const webhookSeenKey = (provider: string, eventId: string) => ["webhook_events_seen", provider, eventId] as const;

/** How a request claims its payment: the shop's transaction id, an Idempotency-Key, or nothing. */
export type Reservation =
  | { kind: "shop_ref"; value: string }
  | { kind: "idempotency_key"; value: string }
  | { kind: "none" };

function reservationKey(shopId: string, r: Reservation) {
  switch (r.kind) {
    case "shop_ref":
      return byShopRefKey(shopId, r.value);
    case "idempotency_key":
      return byIdempotencyKey(shopId, r.value);
    case "none":
      return null;
  }
}

/**
 * Stores a new payment (already known to the provider) with its indexes,
 * "created" event and counters, claiming its reservation in the same atomic
 * operation. When another request holds the reservation, nothing is written
 * and that request's payment id is returned.
 */
export async function createPayment(
  kv: Deno.Kv,
  payment: Payment,
  reservation: Reservation,
): Promise<{ created: true; entry: Deno.KvEntry<Payment> } | { created: false; existingId: string }> {
  const resKey = reservationKey(payment.shopId, reservation);
  const op = kv.atomic()
    .check({ key: paymentKey(payment.id), versionstamp: null })
    .set(paymentKey(payment.id), payment)
    .set(byShopKey(payment.shopId, payment.seq), payment.id)
    .set(byTimeKey(payment.seq), payment.id);
  if (payment.providerRef) op.set(byProviderRefKey(payment.provider, payment.providerRef), payment.id);
  addEventOps(op, payment.id, payment.shopId, {
    type: "created",
    at: payment.createdAt,
    data: { amount: payment.amount, currency: payment.currency, ref: payment.providerRef },
  });
  addStatsOps(op, { ...payment, at: payment.createdAt, status: "created" });
  if (resKey) {
    const ttl = reservation.kind === "idempotency_key" ? { expireIn: IDEMPOTENCY_TTL_MS } : undefined;
    op.check({ key: resKey, versionstamp: null }).set(resKey, payment.id, ttl);
  }
  const res = await op.commit();
  if (res.ok) {
    return { created: true, entry: { key: paymentKey(payment.id), value: payment, versionstamp: res.versionstamp } };
  }
  const existing = resKey ? (await kv.get<string>(resKey)).value : null;
  if (existing) return { created: false, existingId: existing };
  // A derived id outlives its Idempotency-Key entry (kept 24 h): the same key later still names the same payment.
  if ((await kv.get(paymentKey(payment.id))).versionstamp) return { created: false, existingId: payment.id };
  throw new Error("payment id collision"); // 128 random bits: a bug, not bad luck
}

export async function getPayment(kv: Deno.Kv, id: string): Promise<Payment | null> {
  return (await kv.get<Payment>(paymentKey(id))).value;
}

export function getPaymentEntry(kv: Deno.Kv, id: string): Promise<Deno.KvEntryMaybe<Payment>> {
  return kv.get<Payment>(paymentKey(id));
}

export async function getPaymentIdByShopRef(kv: Deno.Kv, shopId: string, ref: string): Promise<string | null> {
  return (await kv.get<string>(byShopRefKey(shopId, ref))).value;
}

/** The payment that holds a reservation (the shop's id or an Idempotency-Key), if any. */
export async function getPaymentIdByReservation(kv: Deno.Kv, shopId: string, r: Reservation): Promise<string | null> {
  const key = reservationKey(shopId, r);
  return key ? (await kv.get<string>(key)).value : null;
}

export interface PaymentUpdate {
  events?: PaymentEvent[];
  /** A postback to schedule in the same atomic operation as the change that causes it. */
  delivery?: Delivery;
  /** Marks a provider webhook as handled, so a duplicate is ignored. */
  webhookEventId?: string;
  jobs: ScheduleOptions;
}

/**
 * Writes a new version of a payment read as `entry`, with its events and
 * consequences, in one atomic operation. Returns false when someone else wrote
 * the payment first: the caller re-reads and decides again.
 */
export async function updatePayment(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Payment>,
  next: Payment,
  update: PaymentUpdate,
): Promise<boolean> {
  const op = kv.atomic().check(entry).set(paymentKey(next.id), next);
  if (next.providerRef && next.providerRef !== entry.value.providerRef) {
    op.set(byProviderRefKey(next.provider, next.providerRef), next.id);
  }
  for (const event of update.events ?? []) addEventOps(op, next.id, next.shopId, event);
  if (next.status !== entry.value.status && isTerminal(next.status)) {
    const at = next.finalizedAt ?? next.updatedAt;
    addStatsOps(op, {
      ...next,
      at,
      status: next.status as StatStatus,
      payMs: next.status === "succeeded" ? at - next.createdAt : undefined,
    });
  }
  if (update.delivery) addDeliveryOps(op, update.delivery, update.jobs);
  if (update.webhookEventId) {
    op.check({ key: webhookSeenKey(next.provider, update.webhookEventId), versionstamp: null })
      .set(webhookSeenKey(next.provider, update.webhookEventId), true, { expireIn: WEBHOOK_DEDUP_TTL_MS });
  }
  return (await op.commit()).ok;
}

export async function isWebhookEventSeen(kv: Deno.Kv, provider: string, eventId: string): Promise<boolean> {
  return (await kv.get(webhookSeenKey(provider, eventId))).versionstamp !== null;
}

/** Records that a webhook was handled without changing the payment (duplicates, stale news). */
export async function markWebhookEventSeen(
  kv: Deno.Kv,
  provider: string,
  eventId: string,
  payment: Payment,
  event: PaymentEvent,
) {
  const op = kv.atomic().set(webhookSeenKey(provider, eventId), true, { expireIn: WEBHOOK_DEDUP_TTL_MS });
  addEventOps(op, payment.id, payment.shopId, event);
  await op.commit();
}

export async function addPaymentEvent(kv: Deno.Kv, payment: Payment, event: PaymentEvent) {
  const op = kv.atomic();
  addEventOps(op, payment.id, payment.shopId, event);
  await op.commit();
}

export function listPaymentEvents(kv: Deno.Kv, paymentId: string): Promise<PaymentEvent[]> {
  return collectValues(kv.list<PaymentEvent>({ prefix: ["payment_events", paymentId] }));
}

/**
 * Records the buyer's first pass through our pay wrapper. Later passes write
 * nothing, which keeps the redirect hot path to a single read.
 */
export async function markBuyerRedirected(kv: Deno.Kv, entry: Deno.KvEntry<Payment>, now: number) {
  const op = kv.atomic().check(entry).set(paymentKey(entry.value.id), { ...entry.value, firstRedirectAt: now });
  addEventOps(op, entry.value.id, entry.value.shopId, { type: "buyer_redirected", at: now, data: {} });
  await op.commit();
}

/** Payment ids newest first: one shop's, or everyone's; `start`/`end` bound the ULIDs (creation time). */
export function iteratePaymentIds(
  kv: Deno.Kv,
  opts: { shopId?: string; startSeq?: string; endSeq?: string },
): Deno.KvListIterator<string> {
  const prefix = opts.shopId ? ["payments_by_shop", opts.shopId] : ["payments_by_time"];
  return kv.list<string>({
    start: [...prefix, opts.startSeq ?? ""],
    end: [...prefix, opts.endSeq ?? "\uffff"],
  }, { reverse: true, batchSize: 200 });
}

/** Reads payments by id, 10 at a time (KV's getMany limit). */
export async function getPayments(kv: Deno.Kv, ids: string[]): Promise<Payment[]> {
  const out: Payment[] = [];
  for (let i = 0; i < ids.length; i += 10) {
    const entries = await kv.getMany<Payment[]>(ids.slice(i, i + 10).map(paymentKey));
    for (const e of entries) if (e.value) out.push(e.value);
  }
  return out;
}
