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
