-- Success rate of decided payments per shop, by the day each was decided. A payment is decided once its money came
-- (succeeded, and refunded since: partially_refunded, refunded) or it failed or expired; cancelled ones were the
-- shop's own choice and are left out. It is dated by when its money came (settled_at: a late payment succeeded after
-- its expiry, which finalized_at keeps), else when it ended (finalized_at); rows exported before settled_at existed
-- fall back to finalized_at.
SELECT
  shop_id,
  COUNT(*) AS decided,
  COUNTIF(status IN ('succeeded', 'partially_refunded', 'refunded')) AS paid,
  SAFE_DIVIDE(COUNTIF(status IN ('succeeded', 'partially_refunded', 'refunded')), COUNT(*)) AS success_rate
FROM (
  SELECT shop_id, status, COALESCE(settled_at, finalized_at) AS decided_at
  FROM `project.dataset.payments_latest`
  WHERE status IN ('succeeded', 'partially_refunded', 'refunded', 'failed', 'expired')
)
WHERE TRUE
  [[AND DATE(decided_at) >= {{from}}]]
  [[AND DATE(decided_at) <= {{to}}]]
GROUP BY shop_id
ORDER BY decided DESC
