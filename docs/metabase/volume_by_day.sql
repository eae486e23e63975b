-- Succeeded volume and count per UTC day and currency (amounts in minor units and in major units).
SELECT
  DATE(finalized_at) AS day,
  currency,
  COUNT(*) AS payments,
  SUM(amount) AS volume_minor
FROM `project.dataset.payments_latest`
WHERE status = 'succeeded'
  [[AND shop_id = {{shop_id}}]]
  [[AND DATE(finalized_at) >= {{from}}]]
  [[AND DATE(finalized_at) <= {{to}}]]
GROUP BY day, currency
ORDER BY day, currency
