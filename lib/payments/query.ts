import type { AppContext } from "../context.ts";
import { NotFoundError } from "../errors.ts";
import {
  getPayment,
  getPaymentEntryShared,
  getPaymentNameEntry,
  markBuyerRedirected,
  type PaymentNameEntry,
} from "../db/payments.ts";
import { getBackfillState } from "../db/backfills.ts";
import type { Shop } from "../db/shops.ts";
import type { Payment } from "./types.ts";
import { legacyPaymentId, type PaymentName } from "./names.ts";
import { hasIdShape } from "../ids.ts";
import { describeError, log } from "../log.ts";
import { redirectSigningSecrets } from "../shops.ts";
import { appendRedirectParams, signRedirect } from "../relay/signing.ts";

/** A payment by an id from a request: an id of the wrong shape is simply not found. */
export function findPayment(kv: Deno.Kv, paymentId: string): Promise<Payment | null> {
  return hasIdShape("payment", paymentId) ? getPayment(kv, paymentId) : Promise.resolve(null);
}

/** A payment of this shop; another shop's payment is reported as not found, never as forbidden. */
export async function getShopPayment(ctx: AppContext, shop: Shop, paymentId: string): Promise<Payment> {
  const p = await findPayment(ctx.kv, paymentId);
  if (!p || p.shopId !== shop.id) throw new NotFoundError("Unknown payment.");
  return p;
}

export async function getShopPaymentByTxId(ctx: AppContext, shop: Shop, shopTxId: string): Promise<Payment> {
  const p = await findNamedPayment(ctx, shop.id, { kind: "shop_ref", value: shopTxId });
  if (!p) throw new NotFoundError("Unknown payment.");
  return p;
}

/** The payment a shop's name for it names, or null (see lookUpPaymentName). Read-only: reads are shared. */
export async function findNamedPayment(
  ctx: Pick<AppContext, "kv" | "paymentIdKey">,
  shopId: string,
  name: PaymentName,
): Promise<Payment | null> {
  return (await lookUpPaymentName(ctx, shopId, name)).payment;
}

/**
 * What a shop's name for a payment names: the payment stored under it (through the name's key, or, until the
 * payment_names backfill is done, under the id a payment named before names were stored was given: names.ts), and the
 * name's key as read. `known`: that key as already read (init-payment reads it with the API key). Shares its reads
 * with concurrent ones, so the payment is read-only.
 */
export async function lookUpPaymentName(
  ctx: Pick<AppContext, "kv" | "paymentIdKey">,
  shopId: string,
  name: PaymentName,
  known?: PaymentNameEntry,
): Promise<{ payment: Payment | null; key: PaymentNameEntry }> {
  const key = known ?? await getPaymentNameEntry(ctx.kv, shopId, name);
  if (key.id) return { payment: (await getPaymentEntryShared(ctx.kv, key.id)).value, key };
  if (await everyPaymentNamed(ctx.kv)) return { payment: null, key };
  const legacy = await getPaymentEntryShared(ctx.kv, legacyPaymentId(ctx.paymentIdKey, shopId, name));
  return { payment: legacy.value, key };
}

const namedStores = new WeakSet<Deno.Kv>();

/**
 * True once every payment stored before names has its name's key (the payment_names backfill is done): from then on a
 * name's key is the only place to look. Remembered per store once true, as it stays.
 */
async function everyPaymentNamed(kv: Deno.Kv): Promise<boolean> {
  if (namedStores.has(kv)) return true;
  const done = (await getBackfillState(kv, "payment_names")).value?.done === true;
  if (done) namedStores.add(kv);
  return done;
}

export type RedirectKind = "pay" | "success" | "error";

/** Where the buyer goes: a redirect, or our page saying the payment is over (with the way back to the shop). */
export type BuyerDestination =
  | { kind: "redirect"; url: string }
  | { kind: "closed"; status: "expired" | "cancelled"; errorUrl: string };

/**
 * Where our wrapper sends the buyer. Only URLs stored at creation are used,
 * never anything from the query string. `pay` goes to the provider while the
 * payment is open, to the shop's result page once it is settled, and to our
 * "expired" or "cancelled" page when we stopped waiting for the buyer (also
 * past `expiresAt` before the janitor has run).
 */
export async function buyerRedirect(
  kv: Deno.Kv,
  paymentId: string,
  kind: RedirectKind,
  now: number,
): Promise<BuyerDestination | null> {
  const url = (u: string | null): BuyerDestination | null => (u === null ? null : { kind: "redirect", url: u });
  const entry = await getPaymentEntryShared(kv, paymentId);
  const p = entry.value;
  if (!p) return null;
  const back = async (u: string | null, status: string = p.status): Promise<BuyerDestination | null> =>
    url(u === null ? null : await signedReturnUrl(kv, p, u, status, now));
  switch (kind) {
    case "success":
      return back(p.successUrl);
    case "error":
      return back(p.errorUrl);
    case "pay":
      switch (p.status) {
        case "pending":
          if (p.expiresAt !== undefined && p.expiresAt <= now) {
            return {
              kind: "closed",
              status: "expired",
              errorUrl: await signedReturnUrl(kv, p, p.errorUrl, "expired", now),
            };
          }
          // For the timeline: the first pass only, so repeat visits stay a single read.
          // A failed write (KV full or locked) costs the timeline an entry, never the buyer their redirect.
          if (!p.firstRedirectAt) {
            await markBuyerRedirected(kv, entry as Deno.KvEntry<Payment>, now).catch((err) =>
              log.warn("could not record the buyer's first visit", { paymentId, error: describeError(err) })
            );
          }
          return url(p.providerUrl);
        case "succeeded":
        case "partially_refunded":
        case "refunded":
          return back(p.successUrl);
        case "failed":
          return back(p.errorUrl);
        case "expired":
        case "cancelled":
          return {
            kind: "closed",
            status: p.status,
            errorUrl: await signedReturnUrl(kv, p, p.errorUrl, p.status, now),
          };
      }
  }
}

/**
 * The shop's URL with `apay_payment`, `apay_status`, `apay_ts` and `apay_sig` added (unless the shop
 * turned them off), so its page can show the outcome at once and trust it. The status is ours at this
 * moment: `pending` when the provider's word has not reached us yet.
 */
async function signedReturnUrl(kv: Deno.Kv, p: Payment, url: string, status: string, now: number) {
  let secrets: string[] | null;
  try {
    secrets = await redirectSigningSecrets(kv, p.shopId, now);
  } catch (err) {
    // The buyer still goes home; the shop's page falls back to the postback or the status API.
    log.warn("could not sign the redirect back to the shop", { paymentId: p.id, error: describeError(err) });
    return url;
  }
  if (!secrets) return url;
  return appendRedirectParams(url, signRedirect(secrets, p.id, status, Math.floor(now / 1000)));
}
