-- Conversion from created to paid, by day of creation. Paid means the money came: succeeded, and refunded since
-- (partially_refunded, refunded), which were paid all the same.
SELECT
  DATE(created_at) AS day,
  COUNT(*) AS created,
  COUNTIF(status IN ('succeeded', 'partially_refunded', 'refunded')) AS paid,
  SAFE_DIVIDE(COUNTIF(status IN ('succeeded', 'partially_refunded', 'refunded')), COUNT(*)) AS conversion
FROM `project.dataset.payments_latest`
WHERE TRUE
  [[AND shop_id = {{shop_id}}]]
  [[AND DATE(created_at) >= {{from}}]]
  [[AND DATE(created_at) <= {{to}}]]
GROUP BY day
ORDER BY day
