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
const repeats = new Map<string, { until: number; left: number }>();

/**
 * A warning anyone on the internet can cause (a refused webhook or notice): the first of its kind (`key`) in a minute
 * is written, the rest counted, and the next one written says how many were left out (`repeatsLeftOut`). A sender
 * repeating a refused request then costs one line a minute, not one per request.
 */
export function warnRepeatable(key: string, msg: string, fields: Fields = {}, now = Date.now()) {
  if (!repeats.has(key) && repeats.size >= REPEAT_KEYS_MAX) {
    for (const [k, r] of repeats) if (r.until <= now) repeats.delete(k);
    if (repeats.size >= REPEAT_KEYS_MAX) key = "(too many kinds)";
  }
  const seen = repeats.get(key);
  if (seen && seen.until > now) {
    seen.left++;
    return;
  }
  repeats.set(key, { until: now + REPEAT_WINDOW_MS, left: 0 });
  write("warn", msg, seen?.left ? { ...fields, repeatsLeftOut: seen.left } : fields);
}
