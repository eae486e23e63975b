import { z } from "zod";
import { ValidationError } from "./errors.ts";

/**
 * Text a person typed: bounded, well-formed UTF-16 (no lone surrogates, which
 * break JSON encoders downstream) and free of control characters.
 */
export function text(min: number, max: number) {
  return z.string().min(min).max(max)
    .refine((s) => s.isWellFormed(), "must not contain lone surrogates")
    // deno-lint-ignore no-control-regex
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), "must not contain control characters");
}

/** A heading people read (a form's title): text that is more than spaces, which would show as nothing. */
export function heading(max: number) {
  return text(1, max).refine((s) => s.trim().length > 0, "must not be blank");
}

/** Parses with a zod schema or throws one ValidationError listing every bad field. */
export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, what = "request"): z.output<T> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new ValidationError(`The ${what} is invalid.`, fieldErrors(parsed.error));
}

const IdempotencyKey = text(1, 255);

/** The request's Idempotency-Key header, checked (1 to 255 characters); null when it has none. */
export function idempotencyKeyOf(header: string | null | undefined): string | null {
  if (!header) return null;
  const parsed = IdempotencyKey.safeParse(header);
  if (parsed.success) return parsed.data;
  throw new ValidationError("The Idempotency-Key is invalid.", { "Idempotency-Key": parsed.error.issues[0].message });
}

export function fieldErrors(error: z.ZodError): Record<string, string> {
  // No prototype: a field named "__proto__" must become a key, not a prototype.
  const fields: Record<string, string> = Object.create(null);
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) fields[key] ??= "unknown field";
      continue;
    }
    const path = issue.path.map(String).join(".") || "body";
    fields[path] ??= issue.message;
  }
  return fields;
}
