import { base64url } from "../ids.ts";
import { hmacSha256 } from "../crypto.ts";

/** How a shop names a payment it may ask for again: its own transaction id, or an Idempotency-Key. */
export interface PaymentName {
  kind: "shop_ref" | "idempotency_key";
  value: string;
}

/**
 * The payment id for a named request: an HMAC of the shop and the name. Every
 * copy and retry of a request names the same payment, so the payment's own key
 * is the uniqueness check and the lookup (no index to write or read), while
 * nobody without our key can guess an id (128 bits of the MAC).
 *
 * The key is a setting of its own, never rotated: rotating it would orphan
 * every existing name.
 */
export function derivedPaymentId(key: Uint8Array, shopId: string, name: PaymentName): string {
  const mac = hmacSha256(key, `payment-id\0${shopId}\0${name.kind}\0${name.value}`);
  return `pay_${base64url(mac.subarray(0, 16))}`;
}
