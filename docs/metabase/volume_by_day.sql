-- Paid volume and count per UTC day the money came, and currency (amounts in minor units): what buyers paid (gross),
-- what has been given back of it since (refunded, dated with the payment, not with the refund) and what is left (net).
-- Paid means the money came: succeeded, and refunded since (partially_refunded, refunded), which stay paid.
-- settled_at is when the money came: a late payment (succeeded after it expired or was cancelled) counts on that day,
-- not on the day of its expiry that finalized_at keeps. Rows exported before settled_at existed hold null there and
-- fall back to finalized_at: the same time for every success but a late one, which such a row still dates by its
-- expiry (better than leaving its money out; its exact time is on its status_changed row in payment_events, too costly
-- to join here). Rows exported before refunds hold a null refunded_amount: nothing was refunded then.
SELECT
  DATE(paid_at) AS day,
  currency,
  COUNT(*) AS payments,
  SUM(amount) AS volume_minor,
  SUM(refunded) AS refunded_minor,
  SUM(amount - refunded) AS net_minor
FROM (
  SELECT shop_id, currency, amount, COALESCE(refunded_amount, 0) AS refunded, COALESCE(settled_at, finalized_at) AS paid_at
  FROM `project.dataset.payments_latest`
  WHERE status IN ('succeeded', 'partially_refunded', 'refunded')
)
WHERE TRUE
  [[AND shop_id = {{shop_id}}]]
  [[AND DATE(paid_at) >= {{from}}]]
  [[AND DATE(paid_at) <= {{to}}]]
GROUP BY day, currency
ORDER BY day, currency
