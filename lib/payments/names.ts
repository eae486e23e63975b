import { base64url } from "../ids.ts";
import { hmacSha256 } from "../crypto.ts";
import type { Payment } from "./types.ts";

/** How a shop names a payment it may ask for again: its own transaction id, or an Idempotency-Key. */
export interface PaymentName {
  kind: "shop_ref" | "idempotency_key";
  value: string;
}

/**
 * The name a payment is made under (its shop's `id`, else its Idempotency-Key), or null for an unnamed one: of a
 * stored payment, or of a request.
 */
export function paymentNameOf(p: Pick<Payment, "shopTxId" | "idempotencyKey">): PaymentName | null {
  if (p.shopTxId) return { kind: "shop_ref", value: p.shopTxId };
  if (p.idempotencyKey) return { kind: "idempotency_key", value: p.idempotencyKey };
  return null;
}

/**
 * The id a named payment got before payment names were stored (`["payment_names", …]`, lib/db/payments.ts): an HMAC
 * of the shop and the name, so the payment's own key was the lookup. Such payments are found this way until the
 * `payment_names` backfill has given each its name's key; new payments get time-ordered ids like every other record.
 *
 * The key is a setting of its own, never rotated: rotating it would orphan every name stored this way.
 */
export function legacyPaymentId(key: Uint8Array, shopId: string, name: PaymentName): string {
  const mac = hmacSha256(key, `payment-id\0${shopId}\0${name.kind}\0${name.value}`);
  return `pay_${base64url(mac.subarray(0, 16))}`;
}
