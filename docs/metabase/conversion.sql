-- Conversion from created to succeeded, by day of creation.
SELECT
  DATE(created_at) AS day,
  COUNT(*) AS created,
  COUNTIF(status = 'succeeded') AS succeeded,
  SAFE_DIVIDE(COUNTIF(status = 'succeeded'), COUNT(*)) AS conversion
FROM `project.dataset.payments_latest`
WHERE TRUE
  [[AND shop_id = {{shop_id}}]]
  [[AND DATE(created_at) >= {{from}}]]
  [[AND DATE(created_at) <= {{to}}]]
GROUP BY day
ORDER BY day
