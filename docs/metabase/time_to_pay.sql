-- Seconds from creation to payment, median and 90th percentile per day.
SELECT
  DATE(finalized_at) AS day,
  APPROX_QUANTILES(TIMESTAMP_DIFF(finalized_at, created_at, SECOND), 100)[OFFSET(50)] AS p50_seconds,
  APPROX_QUANTILES(TIMESTAMP_DIFF(finalized_at, created_at, SECOND), 100)[OFFSET(90)] AS p90_seconds
FROM `project.dataset.payments_latest`
WHERE status = 'succeeded'
  [[AND shop_id = {{shop_id}}]]
  [[AND DATE(finalized_at) >= {{from}}]]
  [[AND DATE(finalized_at) <= {{to}}]]
GROUP BY day
ORDER BY day
