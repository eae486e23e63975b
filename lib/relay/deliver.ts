import type { AppContext } from "../context.ts";
import {
  claimDeliveryEntry,
  getDeliveryEntry,
  listDeliveriesByPayment,
  recordDeliveryAttempt,
  supersedeDelivery,
} from "../db/deliveries.ts";
import { PAYMENT_POSTBACK_TYPES, STATUS_RULES, supersedesPostback } from "../payments/status.ts";
import { supersededDelivery, supersederOf } from "./delivery.ts";
import { getShopShared } from "../db/shops.ts";
import { signingSecrets } from "../shops.ts";
import { describeError, log } from "../log.ts";
import { type AttemptOutcome, nextDeliveryState, parseRetryAfter } from "./schedule.ts";
import { webhookHeaders } from "./signing.ts";
import { isTimeout, withTimeout } from "../timeout.ts";
import type { Delivery, DeliveryAttempt } from "./types.ts";
import { DELIVERY_LEASE_MS, leaseKeeper, leaseLeavesTimeToStart } from "./lease.ts";
import { checkPostbackDestination, checkShopUrl, DnsTimeoutError } from "./url_guard.ts";
import { pinnedClient, pinnedProxyOf } from "./pinned_proxy.ts";

const RESPONSE_KEEP_BYTES = 1024;

/**
 * Makes one attempt at a due postback, if it is still due and nobody else holds
 * it, and records the result. Safe to call any number of times for the same id:
 * the lease and the versionstamp check make extra calls no-ops.
 */
export async function runDelivery(ctx: AppContext, id: string): Promise<void> {
  const entry = await getDeliveryEntry(ctx.kv, id);
  if (entry.value) await attemptDelivery(ctx, entry as Deno.KvEntry<Delivery>);
}

/**
 * Makes one attempt at a delivery as read in `entry`, if it is still due and
 * nobody else holds it (the claim is checked against the version read), and
 * records the result. Answers the attempt's outcome, or false when there was
 * nothing to do.
 */
export async function attemptDelivery(
  ctx: AppContext,
  entry: Deno.KvEntry<Delivery>,
): Promise<AttemptOutcome | false> {
  let claimed = await claimDeliveryEntry(ctx.kv, entry, ctx.now(), DELIVERY_LEASE_MS);
  // A claim whose commit stalled comes back with too little of its lease left for the keeper to renew it, maybe
  // none: another worker may take it meanwhile. It is claimed again (checked against the version this claim stored,
  // as a handed-over one is), and given up after a few stalls: its lease runs out and a sweep sends it.
  for (let stalls = 0; claimed && !leaseLeavesTimeToStart(claimed.value, ctx.now()); stalls++) {
    if (stalls === MAX_CLAIM_STALLS) return false;
    claimed = await claimDeliveryEntry(ctx.kv, unleased(claimed), ctx.now(), DELIVERY_LEASE_MS);
  }
  if (!claimed) return false;
  if (await supersededMeanwhile(ctx, claimed)) return false;
  return await attemptClaimed(ctx, claimed);
}

/**
 * Supersedes, instead of sending, a payment.expired or payment.cancelled that a late payment.succeeded made old news
 * while a lease held it: the move that made the newer one supersedes only the older ones no lease holds, and this one
 * was held then (its first attempt waiting in the pool, or an attempt that failed since), or was put back by a resend
 * or a replay. Sent, it would reach the shop after the newer one. Only such postbacks read the payment's others: a
 * payment.succeeded, a refund's or an invoice's goes as it is. True when it must not be sent.
 */
async function supersededMeanwhile(ctx: AppContext, claimed: Deno.KvEntry<Delivery>): Promise<boolean> {
  const d = claimed.value;
  if (!supersedable(d.eventType)) return false;
  const newer = supersederOf(d, await listDeliveriesByPayment(ctx.kv, d.paymentId));
  if (!newer) return false;
  const superseded = await supersedeDelivery(ctx.kv, claimed, supersededDelivery(d, newer, ctx.now()));
  if (superseded) log.info("postback superseded before its retry", { deliveryId: d.id, by: newer.id });
  // Not stored: the record changed since our claim, so the claim is no longer ours to send on. Either way, no send.
  return true;
}

/** The postback types that may be made old news (a payment.expired, a payment.cancelled): worked out once. */
const SUPERSEDABLE: ReadonlySet<string> = new Set(
  PAYMENT_POSTBACK_TYPES.filter((t) => supersedesPostback(STATUS_RULES.succeeded.postback, t)),
);

/** Whether a postback of this type may be made old news; checked before every send, so a set lookup. */
function supersedable(type: string): boolean {
  return SUPERSEDABLE.has(type);
}

/** Claims in a row whose commit stalled before attemptDelivery gives the delivery up to a later sweep. */
const MAX_CLAIM_STALLS = 3;

/** A delivery this process leased, as a claim checked against its version sees it: its own lease set aside. */
function unleased(entry: Deno.KvEntry<Delivery>): Deno.KvEntry<Delivery> {
  return { ...entry, value: { ...entry.value, leaseUntil: 0 } };
}

/**
 * The first attempt at a delivery this process committed with its first lease (see RelayPool.handOver). While
 * that lease still leaves time for the keeper to renew it, the attempt goes as it is; otherwise (it waited in the
 * pool) the lease is renewed first by a claim checked against the version this process stored, so a delivery
 * another worker took after the lease ran out is never sent twice from here.
 */
export async function attemptHandedOver(
  ctx: AppContext,
  stored: Deno.KvEntry<Delivery>,
): Promise<AttemptOutcome | false> {
  if (leaseLeavesTimeToStart(stored.value, ctx.now())) {
    if (await supersededMeanwhile(ctx, stored)) return false;
    return await attemptClaimed(ctx, stored);
  }
  return await attemptDelivery(ctx, unleased(stored));
}

/** Makes one attempt at a delivery this process holds the lease of, records the result and answers its outcome. */
export async function attemptClaimed(ctx: AppContext, claimed: Deno.KvEntry<Delivery>): Promise<AttemptOutcome> {
  const d = claimed.value;
  const started = ctx.now();
  // The lease is renewed while the attempt runs; the outcome is checked against the version last renewed.
  const keeper = leaseKeeper(ctx);
  const held = keeper.hold(claimed);
  let tried: { outcome: AttemptOutcome; responseStart: string };
  let leased: Deno.KvEntry<Delivery>;
  try {
    tried = await attempt(ctx, d);
  } finally {
    leased = await keeper.release(held);
  }
  const { outcome, responseStart } = tried;
  const finished = ctx.now();
  const record: DeliveryAttempt = {
    n: d.attempts + 1,
    at: started,
    latencyMs: finished - started,
    statusCode: outcome.statusCode,
    error: outcome.kind === "retry" ? outcome.error : null,
    responseStart,
  };
  const next = nextDeliveryState(d, outcome, ctx.config.postbackScheduleMs, finished);
  ctx.metrics?.countPostbackAttempt(next.status === "pending" ? "retrying" : next.status);
  const saved = await recordOutcome(ctx, leased, record, next);
  if (!saved) log.warn("postback lease lost; another worker owns it now", { deliveryId: d.id });
  else if (next.status === "pending" && !ctx.config.jobsQueue) {
    // A timer, at least: this attempt's pool still holds the id until it returns, and a kick due now (a schedule
    // step of 0 s) ran before that, joined this attempt and was dropped, leaving the retry to the cron's next run.
    ctx.kick({ kind: "postback", id: d.id }, Math.max(1, next.nextAttemptAt - finished));
  }
  log.info("postback attempt", {
    deliveryId: d.id,
    paymentId: d.paymentId,
    attempt: record.n,
    statusCode: record.statusCode,
    outcome: next.status,
    latencyMs: record.latencyMs,
  });
  return outcome;
}

/**
 * Pauses before each further try of an attempt's outcome commit that failed with a store error; past the last, the
 * error goes up. Tried again at once, a store away for a moment failed all three tries within a millisecond. They end
 * well within what the lease has left when the attempt ends (at least 5 s, see lease.ts).
 */
const OUTCOME_RETRY_PAUSES_MS = [200, 1_000];

/**
 * Commits an attempt's outcome, checked against the lease's version: true when it is stored. A store error is
 * tried again (an outcome not stored is sent again once the lease runs out, so a shop's 2xx would cost it a
 * duplicate), and a refusal is read back: the commit that reported an error (here, or in a group) may have landed.
 */
async function recordOutcome(
  ctx: AppContext,
  leased: Deno.KvEntry<Delivery>,
  record: DeliveryAttempt,
  next: Delivery,
): Promise<boolean> {
  for (let tries = 1;; tries++) {
    try {
      if (
        await recordDeliveryAttempt(ctx.kv, leased, record, next, { queue: ctx.config.jobsQueue, now: next.updatedAt })
      ) {
        return true;
      }
    } catch (err) {
      if (tries > OUTCOME_RETRY_PAUSES_MS.length) throw err;
      log.warn("postback outcome not stored; trying again", { deliveryId: next.id, error: describeError(err) });
      await new Promise((r) => setTimeout(r, OUTCOME_RETRY_PAUSES_MS[tries - 1]));
      continue;
    }
    // Refused: read back, on a first try too, since the group committer hides an error of its own: a group that
    // failed is retried write by write (group_commit.ts), and a write of ours that landed with it fails its check.
    const stored = (await getDeliveryEntry(ctx.kv, next.id)).value;
    return stored !== null && stored.attempts === next.attempts && stored.updatedAt === next.updatedAt &&
      stored.status === next.status;
  }
}

async function attempt(ctx: AppContext, d: Delivery): Promise<{ outcome: AttemptOutcome; responseStart: string }> {
  const shop = await getShopShared(ctx.kv, d.shopId);
  if (!shop) return blocked("the shop no longer exists");
  // The shop's allowed hosts as they are now: a host it has taken off its list (say, one it lost) gets nothing more,
  // and its postbacks go on when it is put back, within their schedule.
  const urlProblem = checkShopUrl(d.url, { allowLocal: ctx.config.allowLocalUrls, allowedHosts: shop.allowedHosts });
  if (urlProblem) return blocked(`postbackUrl ${urlProblem}`);
  const url = new URL(d.url);

  const timestamp = Math.floor(ctx.now() / 1000);
  const headers = {
    ...await webhookHeaders(signingSecrets(shop, ctx.now()), d.id, timestamp, d.body),
    "user-agent": "AimbrellaPay-Postback/1",
  };
  try {
    // One deadline for the host's lookup and the POST: an attempt ends within the timeout whatever hangs.
    return await withTimeout(ctx.config.postbackTimeoutMs, async (signal) => {
      // The URL was checked at creation; the address is checked again now because DNS can change.
      const rules = { allowLocal: ctx.config.allowLocalUrls, resolve: ctx.resolve, signal };
      const addressProblem = await checkPostbackDestination(url, rules);
      if (addressProblem) return blocked(`postbackUrl ${addressProblem}`);
      // https goes through the pinned proxy, which connects only to an address it checked itself (DNS rebinding).
      const client = url.protocol === "https:"
        ? await pinnedClient(ctx, { allowLocal: ctx.config.allowLocalUrls, resolve: ctx.resolve }, {
          caCerts: ctx.postbackCaCerts,
        })
        : null;
      return await send(url, { headers, body: d.body, signal, ...(client ? { client } : {}) }, ctx.now());
    });
  } catch (err) {
    if (err instanceof DnsTimeoutError) return blocked(`postbackUrl ${err.problem}`);
    const timedOut = isTimeout(err);
    // The pinned proxy's refusal reaches fetch only as "unsuccessful tunnel": it keeps the reason.
    const refused = !timedOut && /unsuccessful tunnel/i.test(`${err} ${(err as Error)?.cause ?? ""}`)
      ? pinnedProxyOf(ctx)?.refusal(url.hostname)
      : null;
    // Refused by our address check, the attempt reached no shop, as one refused before the send (blocked).
    if (refused?.checked) return blocked(refused.problem);
    const error = timedOut
      ? `no answer within ${ctx.config.postbackTimeoutMs} ms`
      : refused?.problem ?? plainNetworkError(err);
    const noAnswer = timedOut ? "timeout" as const : "connection" as const;
    return { outcome: { kind: "retry", statusCode: null, retryAfterMs: null, error, noAnswer }, responseStart: "" };
  }
}

/** The POST itself: redirects are not followed and only the start of the answer is read. */
async function send(
  url: URL,
  init: { headers: Record<string, string>; body: string; signal: AbortSignal; client?: Deno.HttpClient },
  now: number,
): Promise<{ outcome: AttemptOutcome; responseStart: string }> {
  const res = await fetch(url, { method: "POST", ...init, redirect: "manual" });
  const responseStart = await readStart(res);
  if (res.status >= 200 && res.status < 300) {
    return { outcome: { kind: "delivered", statusCode: res.status }, responseStart };
  }
  if (res.status === 410) return { outcome: { kind: "gone", statusCode: 410 }, responseStart };
  const retryAfterMs = res.status === 429 || res.status === 503
    ? parseRetryAfter(res.headers.get("retry-after"), now)
    : null;
  const error = res.status >= 300 && res.status < 400 ? `redirect ${res.status} not followed` : `HTTP ${res.status}`;
  return { outcome: { kind: "retry", statusCode: res.status, retryAfterMs, error }, responseStart };
}

/**
 * What went wrong on the wire, in the words an operator or a shop reads on the
 * deliveries page: "connection refused", not "TypeError: fetch failed" (Deno
 * puts the real reason in the error's cause).
 */
export function plainNetworkError(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : "";
  const text = `${err instanceof Error ? err.message : String(err)} ${cause}`;
  for (const [pattern, words] of NETWORK_ERRORS) if (pattern.test(text)) return words;
  const inner = cause || (err instanceof Error ? err.message : String(err));
  return `network error: ${inner}`.slice(0, 200);
}

const NETWORK_ERRORS: [RegExp, string][] = [
  [/connection refused/i, "connection refused"],
  [/dns error|failed to lookup|name or service not known|no such host|nodename nor servname/i, "host name not found"],
  [/certificate|tls|ssl|handshake/i, "TLS handshake failed (certificate not trusted?)"],
  [/connection reset/i, "connection reset"],
  [/connection closed|unexpected eof|incomplete message/i, "connection closed before an answer"],
  [/timed out|timeout/i, "timed out"],
  [/unreachable/i, "network unreachable"],
  [/are blocked/i, "port not allowed"],
];

function blocked(error: string) {
  return { outcome: { kind: "retry" as const, statusCode: null, retryAfterMs: null, error }, responseStart: "" };
}

/**
 * Reads at most 1 KiB of the shop's answer and drops the rest unread.
 *
 * An answer that declares a length within that (most are a few bytes) is taken whole in one read, without the
 * stream machinery (the reader's two reads and its cancel, below, cost about 14 µs more per postback). Only when
 * the length is what the body is: the HTTP client ignores Content-Length beside Transfer-Encoding, and a
 * compressed body is longer once decoded.
 *
 * Other answers are read through one small buffer (a BYOB reader): a default reader hands out each chunk in a
 * fresh 64 KiB buffer, and two of those per postback (the answer, then the end) were most of the relay's memory
 * churn. Each chunk is copied out at once, because a read that fails takes the buffer it was given with it.
 */
async function readStart(res: Response): Promise<string> {
  const h = res.headers;
  if (
    Number(h.get("content-length") ?? NaN) <= RESPONSE_KEEP_BYTES && !h.has("transfer-encoding") &&
    !h.has("content-encoding")
  ) {
    try {
      return new TextDecoder().decode(await res.bytes());
    } catch {
      return "";
    }
  }
  const kept = new Uint8Array(RESPONSE_KEEP_BYTES);
  let size = 0;
  try {
    const reader = res.body?.getReader({ mode: "byob" });
    let into = new Uint8Array(RESPONSE_KEEP_BYTES);
    try {
      while (reader && size < RESPONSE_KEEP_BYTES) {
        const { done, value } = await reader.read(into.subarray(0, RESPONSE_KEEP_BYTES - size));
        if (value) {
          kept.set(value, size);
          size += value.length;
          // The read hands the buffer back in `value` (the one passed in is detached now).
          into = new Uint8Array(value.buffer);
        }
        if (done || !value) break;
      }
    } finally {
      reader?.cancel().catch(() => {});
    }
  } catch {
    // A broken body after the status line still counts by its status.
  }
  return new TextDecoder().decode(kept.subarray(0, size));
}
