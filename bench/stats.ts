/** Small statistics and formatting helpers shared by the load generator and the report. */

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile (p in 0..100) of an ascending array: a value that was actually observed. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function sortedCopy(xs: Iterable<number>): number[] {
  return Array.from(xs).sort((a, b) => a - b);
}

/** A wall-clock time in ms with sub-ms resolution, comparable between processes on one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a";
}

export function fmtMs(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  return n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0);
}

export function fmtRatio(n: number): string {
  return Number.isFinite(n) ? n.toFixed(2) : "n/a";
}
