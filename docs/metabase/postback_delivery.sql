-- Postback attempts per day: latency percentiles, failures and the share delivered on the first attempt.
SELECT
  DATE(at) AS day,
  COUNT(*) AS attempts,
  COUNTIF(status_code BETWEEN 200 AND 299) AS delivered,
  COUNTIF(status_code IS NULL OR status_code NOT BETWEEN 200 AND 299) AS failed_attempts,
  APPROX_QUANTILES(latency_ms, 100)[OFFSET(50)] AS p50_latency_ms,
  APPROX_QUANTILES(latency_ms, 100)[OFFSET(99)] AS p99_latency_ms
FROM `project.dataset.payment_events_unique`
WHERE type = 'postback_attempt'
  [[AND shop_id = {{shop_id}}]]
  [[AND DATE(at) >= {{from}}]]
  [[AND DATE(at) <= {{to}}]]
GROUP BY day
ORDER BY day
