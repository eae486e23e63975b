import type { AppContext } from "../context.ts";
import { idempotencyMismatch, NotFoundError, UpstreamError } from "../errors.ts";
import { base64url, randomId } from "../ids.ts";
import { constantTimeEqual, hmacSha256, sha256Hex } from "../crypto.ts";
import {
  bodyFields,
  idempotencyKeyOf,
  idempotencyKeyProblems,
  parseAllowingStoredCurrencies,
  refuseUntakenCurrency,
} from "../validation.ts";
import type { Shop } from "../db/shops.ts";
import { getShop } from "../db/shops.ts";
import { getPayment } from "../db/payments.ts";
import { addCheckoutSessionOps, getCheckoutSession } from "../db/checkout.ts";
import { initPayment, judgeShopUrls } from "../payments/init.ts";
import { movePayment } from "../payments/transition.ts";
import type { Payment } from "../payments/types.ts";
import { log } from "../log.ts";
import { type RateLimiter, sharedLimiter } from "../auth/rate_limit.ts";
import { checkoutSessionSchema, sessionAmount } from "./schema.ts";
import type { CheckoutSession, SessionStatus } from "./types.ts";

const SESSION_ID = /^cs_[A-Za-z0-9_-]{22}$/;
/** `cs_…_secret_…`: the session id, then 256 bits of MAC. Seed 003 shows Stripe's `pi_…_secret_…` shape. */
const CLIENT_SECRET = /^(cs_[A-Za-z0-9_-]{22})_secret_[A-Za-z0-9_-]{43}$/;

/** True when `id` has the shape of a session id (checked before it goes into a KV key). */
export function isSessionId(id: string): boolean {
  return SESSION_ID.test(id);
}

/** Where the buyer comes back to, inside the shop's frame (or our popup), after the provider's pay page. */
export function checkoutReturnUrl(publicBaseUrl: string, sessionId: string): string {
  return `${publicBaseUrl}/checkout/return/${sessionId}`;
}

/**
 * The session's client secret. A MAC of the session id under our id key: unguessable, bound to this one
 * session, and the same on every retry, so an idempotent replay can answer it again although we store only
 * its hash. It opens the buyer's checkout page for the session and nothing else.
 */
function clientSecretOf(ctx: AppContext, sessionId: string): string {
  return `${sessionId}_secret_${base64url(hmacSha256(ctx.paymentIdKey, `checkout-secret\0${sessionId}`))}`;
}

export interface CreatedSession {
  session: CheckoutSession;
  clientSecret: string;
  replay: boolean;
}

/**
 * Creates a checkout session and, through init-payment's own code (routing, provider call, idempotency,
 * group commit), its payment; the session is stored in the payment's atomic operation. A request named by
 * the shop's `id` or an Idempotency-Key gets a derived session id, so a retry is answered with the same
 * session and secret; the same name with another body is refused.
 */
export async function createCheckoutSession(
  ctx: AppContext,
  shop: Shop,
  body: unknown,
  opts: { idempotencyKey?: string | null } = {},
): Promise<CreatedSession> {
  const maxAmount = ctx.config.maxAmount;
  // The postback URL's problems that need no DNS, named with the rest of a request refused anyway (its success and
  // error URLs are our own page).
  const postbackProblems = (b: { id?: unknown; postbackUrl?: unknown }) =>
    judgeShopUrls(ctx, shop, {
      postbackUrl: b.postbackUrl ?? shop.defaultPostbackUrl,
      shopTxId: b.id !== undefined && b.id !== null,
    }, { ownReturnUrls: true }).fields;
  const b = parseAllowingStoredCurrencies(
    {
      taken: checkoutSessionSchema(maxAmount),
      stored: checkoutSessionSchema(maxAmount, "stored"),
    },
    body,
    {
      others: (raw) => ({ ...idempotencyKeyProblems(opts.idempotencyKey), ...postbackProblems(bodyFields(raw) ?? {}) }),
    },
  );
  // The header is read before a retry is looked for: a new session in a fund code is refused with its problem too,
  // not once the header is right.
  const idempotencyKey = idempotencyKeyOf(
    opts.idempotencyKey,
    (keyProblems) => refuseUntakenCurrency(b.currency, () => ({ ...keyProblems, ...postbackProblems(b) })),
  );
  const name = b.id ? `shop_ref\0${b.id}` : idempotencyKey ? `idempotency_key\0${idempotencyKey}` : null;
  // Which name a refused retry matched, for its message.
  const by = b.id ? "shop_ref" : "idempotency_key";
  const sessionId = name
    ? `cs_${base64url(hmacSha256(ctx.paymentIdKey, `checkout-session\0${shop.id}\0${name}`).subarray(0, 16))}`
    : randomId("cs");
  const requestHash = sha256Hex(JSON.stringify(b));
  if (name) {
    const existing = await getCheckoutSession(ctx.kv, sessionId);
    if (existing) {
      if (existing.requestHash !== requestHash) {
        throw idempotencyMismatch(by, "a checkout session");
      }
      return {
        session: existing,
        clientSecret: existing.providerClientSecret ?? clientSecretOf(ctx, sessionId),
        replay: true,
      };
    }
  }
  // Only now: a retry of a session stored in a fund code (taken before) is answered above; a new one is refused.
  refuseUntakenCurrency(b.currency, () => postbackProblems(b));
  const clientSecret = clientSecretOf(ctx, sessionId);
  const amount = sessionAmount(b);
  const returnUrl = checkoutReturnUrl(ctx.config.publicBaseUrl, sessionId);
  // Filled in when the payment's commit is built (and again if the group commit retries it alone).
  const made: { session?: CheckoutSession } = {};
  const { payment, replay } = await initPayment(ctx, shop, {
    ...(b.id ? { id: b.id } : {}),
    email: b.customerEmail,
    ...(b.customerName ? { name: b.customerName } : {}),
    amount,
    currency: b.currency,
    successUrl: returnUrl,
    errorUrl: returnUrl,
    ...(b.postbackUrl ? { postbackUrl: b.postbackUrl } : {}),
    ...(b.expiresIn !== undefined ? { expiresIn: b.expiresIn } : {}),
  }, {
    idempotencyKey,
    checkout: {
      sessionId,
      extraOps: (op, p, providerClientSecret) => {
        made.session = {
          id: sessionId,
          shopId: shop.id,
          paymentId: p.id,
          provider: p.provider,
          secretHash: sha256Hex(providerClientSecret ?? clientSecret),
          requestHash,
          amount,
          currency: b.currency,
          lineItems: b.lineItems ?? null,
          description: b.description ?? null,
          createdAt: p.createdAt,
          expiresAt: p.expiresAt!,
          ...(providerClientSecret ? { providerClientSecret } : {}),
        };
        addCheckoutSessionOps(op, made.session);
      },
    },
  });
  if (payment.checkoutSessionId !== sessionId) {
    // The shop's id already names a redirect payment (or another session's): not the same request.
    throw idempotencyMismatch(by, "a payment");
  }
  // Our commit's session only when it was stored: a copy that raced us and won stored its own.
  const session = (!replay && made.session) || await getCheckoutSession(ctx.kv, sessionId);
  if (!session) throw new Error(`checkout session ${sessionId} missing beside its payment ${payment.id}`);
  // A copy of this request that raced us stored the session: it must have asked for the same (line items too).
  if (session.requestHash !== requestHash) {
    throw idempotencyMismatch(by, "a checkout session");
  }
  return { session, clientSecret: session.providerClientSecret ?? clientSecret, replay };
}

/** The session, its payment and its shop opened by a client secret; null for anything else. */
export async function openSessionBySecret(
  ctx: AppContext,
  secret: string,
): Promise<{ session: CheckoutSession; payment: Payment; shop: Shop } | null> {
  const match = CLIENT_SECRET.exec(secret);
  if (!match) return null;
  const session = await getCheckoutSession(ctx.kv, match[1]);
  if (!session || !constantTimeEqual(session.secretHash, sha256Hex(secret))) return null;
  return await withPaymentAndShop(ctx, session);
}

/** The session by id with its payment and shop (our return page, which the provider sends the buyer to). */
export async function openSessionById(ctx: AppContext, sessionId: string) {
  if (!isSessionId(sessionId)) return null;
  const session = await getCheckoutSession(ctx.kv, sessionId);
  return session && await withPaymentAndShop(ctx, session);
}

async function withPaymentAndShop(ctx: AppContext, session: CheckoutSession) {
  const [payment, shop] = await Promise.all([getPayment(ctx.kv, session.paymentId), getShop(ctx.kv, session.shopId)]);
  if (!payment || !shop) return null;
  return { session, payment, shop };
}

/**
 * A session's status follows its payment's: paid is complete; open while the payment is pending, past its expiresAt
 * too. Until the janitor's expiry has told the provider to stop taking money and moved the payment to expired (within
 * a sweep of expiresAt), a buyer already on the provider's page can still pay: "expired" then would tell the shop's
 * server to give up on an order whose money may yet come, and a new checkout for it could charge the buyer twice.
 *
 * Confirm does not run that expiry itself: it is called by the shop's server and, through the same status, our
 * buyer's pages, often at once, and the expiry is a provider cancel (for Stripe, a status read too when it refuses) on
 * top of the status read confirm already makes, by every caller past expiresAt. Reporting the payment as it stands
 * costs nothing and keeps confirm to one provider call; the janitor's own expiry is only a minute or so away.
 */
export function sessionStatus(p: Payment): SessionStatus {
  switch (p.status) {
    case "succeeded":
    case "partially_refunded":
    case "refunded":
      return "complete";
    case "pending":
      return "open";
    case "failed":
    case "expired":
    case "cancelled":
      return "expired";
  }
}

/**
 * Asks the provider about a pending payment and applies its answer through the transition engine, as the
 * operator's re-check and the janitor do; the browser's word is never taken. Returns the payment as it is
 * now. Throws UpstreamError when the provider cannot be asked.
 */
export async function recheckWithProvider(ctx: AppContext, p: Payment, by: string): Promise<Payment> {
  if (p.status !== "pending" || !p.providerRef) return p;
  const confirmed = await (await ctx.providers.forPayment(p)).adapter.getStatus(p.providerRef);
  if (confirmed === "pending") return p;
  const moved = await movePayment(ctx, {
    paymentId: p.id,
    to: confirmed,
    because: { type: "status_checked", at: ctx.now(), data: { confirmed, by } },
  });
  return moved.payment;
}

/**
 * How often a buyer's page may ask the provider about one payment (per isolate). The pages are public (a session id
 * or client secret opens them, and every buyer has theirs): without a bound each load was a provider call and an
 * operation-log write, so anyone reloading one in a loop spent our provider account's rate limit and our store. The
 * waiting page reloads every 1.5 s, so it still asks about every other load; a webhook is the usual news anyway.
 */
export const BUYER_RECHECK_INTERVAL_MS = 2_000;
/** Payments whose buyer pages asked the provider lately, and when (bounded: when full it starts over). */
const buyerRechecks = new WeakMap<AppContext, Map<string, number>>();
const BUYER_RECHECKS_MAX = 10_000;

/** True (and counted) when a buyer's page may ask the provider about this payment now. */
function takeBuyerRecheck(ctx: AppContext, paymentId: string): boolean {
  let asked = buyerRechecks.get(ctx);
  if (!asked) buyerRechecks.set(ctx, asked = new Map());
  const now = ctx.now();
  const last = asked.get(paymentId);
  if (last !== undefined && now - last < BUYER_RECHECK_INTERVAL_MS) return false;
  if (asked.size >= BUYER_RECHECKS_MAX) asked.clear();
  asked.set(paymentId, now);
  return true;
}

/** Each client address's budget of provider questions from buyer pages, per app (see buyerRecheckBudget). */
const buyerRecheckBudgets = new WeakMap<AppContext, RateLimiter>();

/**
 * True (and counted) while the buyer's address has provider questions left this minute:
 * RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE of them. The interval bounds each payment, not whoever holds many: a form's
 * payments cost a stranger one submit each, and every pending one's page asked again each interval, so an address
 * with a few hundred had us call the provider a hundred times a second. A buyer's waiting page asks about 30 times a
 * minute; past the budget a page shows the payment as stored, and the provider's webhook still brings the news.
 */
function buyerRecheckBudget(ctx: AppContext, address: string): boolean {
  let budget = buyerRecheckBudgets.get(ctx);
  if (!budget) {
    buyerRecheckBudgets.set(ctx, budget = sharedLimiter(ctx, "buyer_rechecks", ctx.config.unauthenticatedPerMinute));
  }
  return budget.allows(address, ctx.now());
}

/**
 * The same, for a page the buyer sees (a checkout's, a form's result pages): a provider that cannot be asked leaves
 * the payment as we know it, and so does a page loaded again within BUYER_RECHECK_INTERVAL_MS of the last one that
 * asked (the payment as stored then), or by an address past its budget of such questions (`address`, as rate limits
 * count it).
 */
export async function recheckQuietly(
  ctx: AppContext,
  p: Payment,
  opts: { by: string; address: string },
): Promise<Payment> {
  if (p.status !== "pending" || !p.providerRef || !takeBuyerRecheck(ctx, p.id)) return p;
  if (!buyerRecheckBudget(ctx, opts.address)) return p;
  try {
    return await recheckWithProvider(ctx, p, opts.by);
  } catch (err) {
    if (!(err instanceof UpstreamError)) throw err;
    log.warn("provider unreachable on the buyer's return", { paymentId: p.id, by: opts.by, detail: err.detail });
    return p;
  }
}

/** What POST /api/v1/checkout/confirm answers: the session re-checked with the provider. */
export async function confirmCheckoutSession(ctx: AppContext, shop: Shop, sessionId: unknown) {
  if (typeof sessionId !== "string" || !isSessionId(sessionId)) throw new NotFoundError("Unknown checkout session.");
  const session = await getCheckoutSession(ctx.kv, sessionId);
  if (!session || session.shopId !== shop.id) throw new NotFoundError("Unknown checkout session.");
  const stored = await getPayment(ctx.kv, session.paymentId);
  if (!stored) throw new Error(`checkout session ${sessionId} has no payment ${session.paymentId}`);
  const payment = await recheckWithProvider(ctx, stored, "checkout.confirm");
  return sessionView(session, payment);
}

/** A session as the shop's API shows it. */
export function sessionView(s: CheckoutSession, p: Payment) {
  return {
    id: s.id,
    status: sessionStatus(p),
    paymentId: p.id,
    paymentStatus: p.status,
    amount: s.amount,
    currency: s.currency,
    lineItems: s.lineItems,
    expiresAt: new Date(s.expiresAt).toISOString(),
  };
}
