/**
 * One-line JSON logs. Values under keys that look secret are redacted here, so
 * a careless `log.info("x", { token })` still never prints a credential.
 */
const SECRET_KEY = /token|secret|password|authorization|api_?key|signature/i;

type Fields = Record<string, unknown>;

function redact(fields: Fields): Fields {
  const out: Fields = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = SECRET_KEY.test(key) ? "[redacted]" : value;
  }
  return out;
}

const LEVELS = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 } as const;
type Level = Exclude<keyof typeof LEVELS, "silent">;
let threshold: number | undefined;

/** LOG_LEVEL (debug|info|warn|error|silent, default info), read on first use rather than at import. */
function minLevel(): number {
  threshold ??= LEVELS[(Deno.env.get("LOG_LEVEL") ?? "info") as keyof typeof LEVELS] ?? LEVELS.info;
  return threshold;
}

function write(level: Level, msg: string, fields: Fields = {}) {
  if (LEVELS[level] < minLevel()) return;
  const line = JSON.stringify({ t: new Date().toISOString(), level, msg, ...redact(fields) });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}

export const log = {
  debug: (msg: string, fields?: Fields) => write("debug", msg, fields),
  info: (msg: string, fields?: Fields) => write("info", msg, fields),
  warn: (msg: string, fields?: Fields) => write("warn", msg, fields),
  error: (msg: string, fields?: Fields) => write("error", msg, fields),
};

/** A short description of an unknown thrown value, for logs (never for responses). */
export function describeError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

const REPEAT_WINDOW_MS = 60_000;
/** Distinct repeated lines tracked at once; past it, new kinds share one entry (their count still shows). */
const REPEAT_KEYS_MAX = 1_000;
/** How often ended windows are looked for, to report what they left out. */
const REPEAT_SWEEP_MS = 10_000;

interface Repeat {
  until: number;
  left: number;
  /** The latest left out, for the line that reports them. */
  msg: string;
  fields: Fields;
}
const repeats = new Map<string, Repeat>();
let sweptAt = 0;

/**
 * A warning anyone on the internet can cause (a refused webhook or notice): the first of its kind (`key`, from a
 * bounded set) in a minute is written and the rest counted. What a minute left out is written once it has ended, as
 * the latest one left out with `repeatsLeftOut`: on the next line of that kind, or, at the latest, with the first
 * warning of any kind 10 s after. A sender repeating a refused request then costs a line or two a minute.
 */
export function warnRepeatable(key: string, msg: string, fields: Fields = {}, now = Date.now()) {
  if (now - sweptAt >= REPEAT_SWEEP_MS) {
    sweptAt = now;
    for (const [k, r] of repeats) {
      if (r.until > now || k === key) continue; // the caller's own kind says its count on its line below
      if (r.left) write("warn", r.msg, { ...r.fields, repeatsLeftOut: r.left });
      repeats.delete(k);
    }
  }
  if (!repeats.has(key) && repeats.size >= REPEAT_KEYS_MAX) key = "(too many kinds)";
  const seen = repeats.get(key);
  if (seen && seen.until > now) {
    seen.left++;
    seen.msg = msg;
    seen.fields = fields;
    return;
  }
  repeats.set(key, { until: now + REPEAT_WINDOW_MS, left: 0, msg, fields });
  write("warn", msg, seen?.left ? { ...fields, repeatsLeftOut: seen.left } : fields);
}
