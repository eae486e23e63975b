/**
 * Sparse checks at a provider on a fixed schedule counted from an event (a payment given up on, a refund that
 * succeeded): they find news whose webhook was lost. The late checks of payments (payments/janitor.ts) and the
 * reversal re-checks of refunds (refunds/recheck.ts) keep their own schedules and share these rules.
 */

/** The step of `schedule` (ms after `from`) next after `now`; null once the schedule is through. */
export function nextScheduledCheckAt(schedule: readonly number[], from: number, now: number): number | null {
  const step = schedule.find((ms) => from + ms > now);
  return step === undefined ? null : from + step;
}

/**
 * After a check the provider did not answer: in `retryMs`, or at the schedule's next step if that comes sooner; past
 * the last step, every `retryMs` for `windowMs` more, then null (the checks end).
 */
export function scheduledCheckRetryAt(
  schedule: readonly number[],
  from: number,
  now: number,
  { retryMs, windowMs }: { retryMs: number; windowMs: number },
): number | null {
  const next = nextScheduledCheckAt(schedule, from, now);
  if (next !== null) return Math.min(next, now + retryMs);
  return now < from + schedule.at(-1)! + windowMs ? now + retryMs : null;
}
