-- Seconds from creation to payment, median and 90th percentile per day the money came.
-- settled_at is when the money came: for a late payment (succeeded after it expired or was cancelled) that is after
-- finalized_at, which keeps its expiry. Rows exported before settled_at existed hold null there and fall back to
-- finalized_at: the same time for every success but a late one, which such a row still dates by its expiry (better
-- than leaving it out; its exact time is on its status_changed row in payment_events, too costly to join here).
-- Refunded payments (partially_refunded, refunded) were paid all the same, and count.
SELECT
  DATE(paid_at) AS day,
  APPROX_QUANTILES(TIMESTAMP_DIFF(paid_at, created_at, SECOND), 100)[OFFSET(50)] AS p50_seconds,
  APPROX_QUANTILES(TIMESTAMP_DIFF(paid_at, created_at, SECOND), 100)[OFFSET(90)] AS p90_seconds
FROM (
  SELECT shop_id, created_at, COALESCE(settled_at, finalized_at) AS paid_at
  FROM `project.dataset.payments_latest`
  WHERE status IN ('succeeded', 'partially_refunded', 'refunded')
)
WHERE TRUE
  [[AND shop_id = {{shop_id}}]]
  [[AND DATE(paid_at) >= {{from}}]]
  [[AND DATE(paid_at) <= {{to}}]]
GROUP BY day
ORDER BY day
