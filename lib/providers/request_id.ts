/**
 * What names a payment request at a provider, which deduplicates on it (Bansky's `id`, Stripe's idempotency key): our
 * payment id and the request's fingerprint. A retry of the same request gets the same provider payment (an attempt
 * that stored nothing keeps its payment id under the request's name for it, lib/payments/init.ts), so a buyer can only
 * be charged once. Another body under the same payment id (the shop changed its order after a failed
 * attempt, which stored nothing here) is another payment there: named by the id alone, the provider answered the
 * failed attempt's payment, and the buyer paid the old amount while the shop was told of the new one. The failed
 * attempt's payment at the provider is never shown to a buyer (its URL never reached the shop).
 */
export function providerRequestId(paymentId: string, requestHash: string): string {
  return `${paymentId}.${requestHash.slice(0, REQUEST_HASH_CHARS)}`;
}

/** Enough of the fingerprint (48 bits) that two bodies a shop sends under one id do not share it. */
const REQUEST_HASH_CHARS = 12;

/**
 * The payment id in what a provider echoes back (Bansky's webhooks carry the `id` we sent): the part before the
 * fingerprint. Our ids have no ".", and payments made before requests were named so were sent by their id alone.
 */
export function paymentIdOfRequestId(requestId: string): string {
  const dot = requestId.indexOf(".");
  return dot < 0 ? requestId : requestId.slice(0, dot);
}
