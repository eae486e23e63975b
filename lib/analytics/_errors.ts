/**
 * A short description of a failed BigQuery call for logs and the console:
 * status and BigQuery's own message, never request options, headers or rows
 * (the client's errors carry the whole response, which may echo our bearer token).
 */
export function describeBigQueryError(err: unknown): string {
  const e = err as {
    name?: string;
    code?: unknown;
    message?: string;
    errors?: unknown[];
    table?: string;
    firstRefused?: { index: number; insertId: string | null } | null;
  };
  let text: string;
  if (e?.name === "PartialFailureError" && Array.isArray(e.errors)) {
    const reasons = e.errors.flatMap((r) => (r as { errors?: { reason?: string; message?: string }[] }).errors ?? []);
    const first = reasons.find((r) => r.reason !== "stopped") ?? reasons[0];
    // Which row: the one to look up when a row of ours is refused for good and holds the export back.
    const row = e.firstRefused
      ? ` (first: row ${e.firstRefused.index}${e.firstRefused.insertId ? `, insertId ${e.firstRefused.insertId}` : ""})`
      : "";
    const table = e.table ? ` of ${e.table}` : "";
    text = `BigQuery rejected ${e.errors.length} row(s)${table}${row}: ${first?.reason ?? "unknown"}: ${
      first?.message ?? ""
    }`;
    // The table predates a column this version writes: the export waits (nothing is lost) until setup appends it.
    if (/no such field/i.test(first?.message ?? "")) text += " Run `deno task bq setup` to add the new column.";
  } else if (typeof e?.code === "number") {
    text = `BigQuery HTTP ${e.code}: ${e.message ?? ""}`;
  } else {
    text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  }
  return scrub(text).slice(0, 300);
}

/** Drops anything shaped like a JWT or a PEM block, whatever a server or library put in a message. */
function scrub(text: string): string {
  return text
    .replace(/eyJ[\w-]*\.[\w-]*\.[\w-]*/g, "[token]")
    .replace(/-----BEGIN [^-]+-----[\s\S]*?(-----END [^-]+-----|$)/g, "[key]");
}
