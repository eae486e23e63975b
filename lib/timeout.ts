/**
 * Runs `fn` with an AbortSignal that fires after `ms`, as a TimeoutError
 * (like AbortSignal.timeout), and clears the timer as soon as `fn` settles:
 * AbortSignal.timeout keeps its timer alive for the full delay after every
 * call, which under load is thousands of idle timers.
 */
export async function withTimeout<T>(ms: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException("timed out", "TimeoutError")), ms);
  try {
    return await fn(controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

/** True for the error a timed-out `withTimeout` or AbortSignal.timeout raises. */
export function isTimeout(err: unknown): boolean {
  return err instanceof DOMException && err.name === "TimeoutError";
}
