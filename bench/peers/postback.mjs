/**
 * The postback every drain sends, written once for both sides: the app's
 * backlog (bench/seed_postbacks.ts) and the BullMQ peer's (producer.mjs), so
 * both carry the same body shape and size. It is the shape of a real postback
 * body (see postbackBody in lib/payments/view.ts); the shop reads
 * `data.paymentId` to count arrivals.
 *
 * @param {number} i index in the backlog, 0-based
 * @param {number} now epoch ms
 * @returns {{ paymentId: string, body: string }}
 */
export function benchPostback(i, now) {
  const paymentId = `pay_seed_${i}`;
  const at = new Date(now).toISOString();
  const body = JSON.stringify({
    type: "payment.succeeded",
    timestamp: at,
    data: {
      id: `order-seed-${i}`,
      paymentId,
      status: "succeeded",
      amount: 1999,
      currency: "EUR",
      type: "fiat",
      email: "buyer@example.com",
      createdAt: at,
      finalizedAt: at,
    },
  });
  return { paymentId, body };
}

/** The BullMQ queue the peer's producer fills and its worker drains. */
export const QUEUE_NAME = "postbacks";
