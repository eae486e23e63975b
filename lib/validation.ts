import { z } from "zod";
import { ValidationError } from "./errors.ts";
import { currencyRefusal, isCurrency, isStoredCurrency } from "./money.ts";

/**
 * Control characters text never needs: C0 and C1 controls, line and paragraph separators, and the direction
 * embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069). A name or order id holding U+202E shows its
 * characters in reverse on the operators' and shops' pages, and can run into what follows it, so "order 1" can be
 * made to read as another. The marks U+200E and U+200F, which right-to-left text does use, are kept.
 */
// deno-lint-ignore no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/**
 * Text a person typed: bounded, well-formed UTF-16 (no lone surrogates, which
 * break JSON encoders downstream) and free of control characters.
 */
export function text(min: number, max: number) {
  return z.string().min(min).max(max)
    .refine((s) => s.isWellFormed(), "must not contain lone surrogates")
    .refine((s) => !CONTROL_CHARACTERS.test(s), "must not contain control characters");
}

/** What a currency field that names no currency we take is told: a fund code is told it is one. */
export const CURRENCY_REFUSED = { error: (issue: { input?: unknown }) => currencyRefusal(String(issue.input)) };

/** Which codes a currency field takes: those we take now, or also those only records stored before may hold. */
export type CurrencyCodes = "taken" | "stored";

/**
 * A currency a request names: three letters in any case, answered upper case, and one we take (isCurrency). Every
 * request that takes a currency parses it with this, so a code refused in one is refused in all. "stored" also takes
 * the codes records stored before may hold (isStoredCurrency), to read a request as it was read when they were made:
 * see parseAllowingStoredCurrencies.
 */
export function currencyCode(codes: CurrencyCodes = "taken") {
  return z.string().regex(/^[A-Za-z]{3}$/, "must be a three-letter ISO 4217 code")
    .transform((c) => c.toUpperCase())
    .refine(codes === "stored" ? isStoredCurrency : isCurrency, CURRENCY_REFUSED);
}

/**
 * The checks of a request beyond its schema that need nothing but the body as sent and what the caller already holds
 * (a URL against the shop's allowed hosts, a rule between fields): their problems by field. Asked only when the schema
 * refuses the body, so that one answer names these too (a field the schema names keeps the schema's message); they
 * cost nothing on a valid request. The body may be anything: each judges only values of the type it takes, and
 * `named` (the schema's refusals by field) says which values are not to be relied on.
 */
export type OtherProblems = (input: unknown, named: Readonly<Record<string, string>>) => Record<string, string>;

/** A body's fields when it is a JSON object (for OtherProblems, which see it before the schema has); else null. */
export function bodyFields(input: unknown): Record<string, unknown> | null {
  return typeof input === "object" && input !== null && !Array.isArray(input) ? input as Record<string, unknown> : null;
}

/** How a request is parsed: `what` its refusal names ("The shop is invalid."), and its other problems. */
export interface ParseOptions {
  what?: string;
  others?: OtherProblems;
}

/**
 * Parses a request that may name a record stored in a code refused since (a fund code): `schemas.stored` (its
 * currencies read with currencyCode("stored")) reads it as it was read when the record was made, with the same
 * fingerprint, so the caller finds the record and answers as it always did (a retry gets it, another body is refused).
 * A request wrong in any other way is refused at once as `schemas.taken` refuses it, its currency named with the
 * rest (and `others`). What the request adds anew in such a code is the caller's to refuse once it knows nothing
 * stored is named (refuseUntakenCurrency), with the message currencyCode() gives.
 */
export function parseAllowingStoredCurrencies<T extends z.ZodType>(
  schemas: { taken: T; stored: T },
  input: unknown,
  opts: ParseOptions = {},
): z.output<T> {
  const asStored = schemas.stored.safeParse(input);
  return asStored.success ? asStored.data : parseOrThrow(schemas.taken, input, opts);
}

/**
 * Refuses a new request whose currency (read with currencyCode("stored")) is not one we take, as currencyCode() does,
 * with the problems `others` finds in the rest of the request.
 */
export function refuseUntakenCurrency(currency: string, others?: () => Record<string, string>): void {
  if (!isCurrency(currency)) {
    throw new ValidationError("The request is invalid.", { currency: currencyRefusal(currency), ...others?.() });
  }
}

/** A heading people read (a form's title): text that is more than spaces, which would show as nothing. */
export function heading(max: number) {
  return text(1, max).refine((s) => s.trim().length > 0, "must not be blank");
}

/** A duration in whole seconds from `min` to `max`, refused in those words ("must be at least 60 seconds"). */
export function wholeSeconds(min: number, max: number) {
  const days = max % 86_400 === 0 ? ` (${max / 86_400} days)` : "";
  const most = `must be at most ${max} seconds${days}`;
  const least = `must be at least ${min} seconds`;
  // A number past the safe integers fails the whole-number check as too big (or small): it breaks a bound.
  return z.int({
    error: (issue) =>
      issue.code === "too_big"
        ? most
        : issue.code === "too_small"
        ? least
        : typeof issue.input !== "number"
        ? notANumber(issue.input, { of: "seconds", example: 3600 })
        : "must be a whole number of seconds",
  }).min(min, least).max(max, most);
}

/**
 * What a field that takes a JSON number is told when it got another type. "1000" in quotes looks right to whoever
 * sent it, so it is told it must be a number, not that it is not whole (which it would then try to fix). `unit` names
 * what the number counts, with an example, where the field has one.
 */
export function notANumber(input: unknown, unit?: { of: string; example: number }): string {
  if (input === undefined) return "is required";
  const what = unit ? `a number (a JSON number of ${unit.of}, such as ${unit.example})` : "a number";
  if (typeof input === "string") {
    return `must be ${what}${unit ? "" : " (a JSON number, without quotes)"}, not a string`;
  }
  return input === null ? `must be ${what}, not null` : `must be ${what}`;
}

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  array: "a list",
  object: "an object",
};

const FORMAT_MESSAGES: Record<string, string> = {
  email: "must be an email address, such as name@example.com",
  url: "must be a URL, such as https://shop.example/path",
  date: "must be a date, such as 2026-11-29",
  datetime: "must be a time, such as 2026-11-29T09:42:10Z",
  regex: "is not in the form this field takes",
};

/**
 * zod's own messages ("Too small: expected number to be >=60") in the product's words, for what a schema leaves to
 * zod: a message the schema gives always wins. Shops read these in `fields`, so each says what the value must be.
 */
export const productMessage: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case "invalid_type": {
      if (issue.input === undefined) return "is required";
      // A number of the wrong type, such as "2" in quotes; a number that is not whole is told so below.
      if ((issue.expected === "number" || issue.expected === "int") && typeof issue.input !== "number") {
        return notANumber(issue.input);
      }
      const name = TYPE_NAMES[issue.expected] ?? `of type ${issue.expected}`;
      if (!issue.path?.length && issue.expected === "object") return "must be a JSON object";
      return issue.input === null ? `must be ${name}, not null` : `must be ${name}`;
    }
    case "too_small":
      return sizeMessage("at least", "more", issue.origin, issue.minimum, issue.inclusive);
    case "too_big":
      return sizeMessage("at most", "less", issue.origin, issue.maximum, issue.inclusive);
    case "invalid_format":
      return FORMAT_MESSAGES[issue.format] ?? `must be a valid ${issue.format}`;
    case "invalid_value":
      return issue.values.length === 1
        ? `must be ${JSON.stringify(issue.values[0])}`
        : `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "not_multiple_of":
      return `must be a multiple of ${issue.divisor}`;
    case "invalid_union":
    case "invalid_key":
    case "invalid_element":
    case "custom":
      return "is not a value we take";
    case "unrecognized_keys":
      return "has unknown fields";
  }
};

/** A value too small or too large, by what it is (text, a list, a number). */
function sizeMessage(
  bound: "at least" | "at most",
  beyond: "more" | "less",
  origin: string,
  limit: number | bigint,
  inclusive: boolean | undefined,
): string {
  switch (origin) {
    case "string":
      return bound === "at least" && limit === 1 ? "must not be empty" : `must be ${bound} ${limit} characters long`;
    case "array":
    case "set":
      return bound === "at least" && limit === 1 ? "must not be empty" : `must have ${bound} ${limit} items`;
    case "number":
    case "int":
    case "bigint":
      return inclusive === false ? `must be ${beyond} than ${limit}` : `must be ${bound} ${limit}`;
    default:
      return `is too ${bound === "at least" ? "small" : "large"}`;
  }
}

/**
 * For a rule between fields that must be judged also when another field failed (zod skips a refinement then, by
 * default), so one answer names every problem: it runs whenever the body is an object, whose values may be anything.
 */
export const EVEN_AFTER_OTHER_FAILURES = {
  when: (payload: { value: unknown }) =>
    typeof payload.value === "object" && payload.value !== null && !Array.isArray(payload.value),
};

/**
 * Parses with a zod schema or throws one ValidationError listing every bad field, in the product's words, with what
 * `opts.others` finds besides.
 */
export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, opts: ParseOptions = {}): z.output<T> {
  const parsed = schema.safeParse(input, { error: productMessage });
  if (parsed.success) return parsed.data;
  const fields = fieldErrors(parsed.error);
  if (opts.others) {
    for (const [field, problem] of Object.entries(opts.others(input, fields))) fields[field] ??= problem;
  }
  throw new ValidationError(`The ${opts.what ?? "request"} is invalid.`, fields);
}

/**
 * The Idempotency-Key header: a token, not text anyone reads, so only C0 controls and DEL are refused (as text() did
 * before it refused more). A header's value arrives a byte a character: a key sent as UTF-8 ("€" is E2 82 AC) holds
 * "C1 controls" that are only its bytes, and a direction override cannot be in a header at all.
 */
/** The longest Idempotency-Key taken. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
const IdempotencyKey = z.string().min(1).max(MAX_IDEMPOTENCY_KEY_LENGTH)
  .refine((s) => s.isWellFormed(), "must not contain lone surrogates")
  // deno-lint-ignore no-control-regex
  .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), "must not contain control characters");

/**
 * The request's Idempotency-Key header, checked once (1 to 255 characters); null when it has none. A bad one is
 * refused, an empty one too: taken as no key, a shop whose key came out blank would get a second payment per retry.
 * `refuseFirst` may refuse it first with other problems found only now, named beside the header's.
 */
export function idempotencyKeyOf(
  header: string | null | undefined,
  refuseFirst?: (problems: Record<string, string>) => void,
): string | null {
  if (header == null) return null;
  const problems = idempotencyKeyProblems(header);
  if (!Object.keys(problems).length) return header;
  refuseFirst?.(problems);
  throw new ValidationError("The Idempotency-Key is invalid.", problems);
}

/**
 * The Idempotency-Key header's problem by name (`"Idempotency-Key"`), or none: for the `others` of a request's parse,
 * so a bad header is named in the same 400 as the body's bad fields rather than after they are fixed.
 */
export function idempotencyKeyProblems(header: string | null | undefined): Record<string, string> {
  if (header == null) return {};
  const parsed = IdempotencyKey.safeParse(header, { error: productMessage });
  return parsed.success ? {} : { "Idempotency-Key": parsed.error.issues[0].message };
}

/**
 * The most unknown fields one answer names, and the most characters of a name it echoes. Names are the sender's own
 * text: without a bound a body of junk keys (up to the body limit) would come back whole in `fields`.
 */
export const MAX_UNKNOWN_FIELDS_NAMED = 20;
export const MAX_FIELD_NAME_CHARS = 64;

/** A field name as an answer echoes it: at most MAX_FIELD_NAME_CHARS characters, a cut one ending in "…". */
export function echoedName(name: string): string {
  if (name.length <= MAX_FIELD_NAME_CHARS) return name;
  // By code points, so a cut never leaves half of a surrogate pair.
  const chars = Array.from(name);
  return chars.length <= MAX_FIELD_NAME_CHARS ? name : chars.slice(0, MAX_FIELD_NAME_CHARS - 1).join("") + "…";
}

/**
 * A zod error as the API's `fields`: each bad field's path and message. Unknown fields are named up to
 * MAX_UNKNOWN_FIELDS_NAMED (each name cut to MAX_FIELD_NAME_CHARS); `body` counts the rest.
 */
export function fieldErrors(error: z.ZodError): Record<string, string> {
  // No prototype: a field named "__proto__" must become a key, not a prototype.
  const fields: Record<string, string> = Object.create(null);
  let unknown = 0;
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      // Named where it is: an unknown field inside a line item is lineItems.0.x, not a top-level x.
      const at = issue.path.map(String).join(".");
      for (const key of issue.keys) {
        if (unknown++ >= MAX_UNKNOWN_FIELDS_NAMED) continue;
        fields[at ? `${at}.${echoedName(key)}` : echoedName(key)] ??= "unknown field";
      }
      continue;
    }
    const path = issue.path.map(String).join(".") || "body";
    fields[path] ??= issue.message;
  }
  const unnamed = unknown - MAX_UNKNOWN_FIELDS_NAMED;
  if (unnamed > 0) {
    const more = `has ${unnamed} more unknown field${unnamed === 1 ? "" : "s"} besides those named`;
    fields.body = fields.body ? `${fields.body}; ${more}` : more;
  }
  return fields;
}
