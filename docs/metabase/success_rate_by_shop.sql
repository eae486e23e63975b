-- Success rate of settled payments per shop.
SELECT
  shop_id,
  COUNT(*) AS settled,
  COUNTIF(status = 'succeeded') AS succeeded,
  SAFE_DIVIDE(COUNTIF(status = 'succeeded'), COUNT(*)) AS success_rate
FROM `project.dataset.payments_latest`
WHERE status IN ('succeeded', 'failed', 'expired')
  [[AND DATE(finalized_at) >= {{from}}]]
  [[AND DATE(finalized_at) <= {{to}}]]
GROUP BY shop_id
ORDER BY settled DESC
