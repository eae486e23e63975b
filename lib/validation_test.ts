import assert from "node:assert/strict";
import { parseOrThrow, text } from "./validation.ts";
import { AppError } from "./errors.ts";
import { initPaymentSchema } from "./payments/schema.ts";
import { createInvoiceSchema } from "./invoices/schema.ts";
import { checkoutSessionSchema } from "./checkout/schema.ts";
import { refundRequestSchema } from "./refunds/schema.ts";
import { checkFormRequest, formRequestSchema } from "./forms/schema.ts";

/** The field messages a body is refused with. */
function refused(schema: Parameters<typeof parseOrThrow>[0], body: unknown): Record<string, string> {
  try {
    parseOrThrow(schema, body);
  } catch (err) {
    // A plain object, so deepEqual compares fields only (they are kept without a prototype).
    if (err instanceof AppError && err.fields) return { ...err.fields };
    throw err;
  }
  throw new Error("accepted");
}

const payment = {
  email: "a@example.com",
  currency: "EUR",
  successUrl: "https://s.example",
  errorUrl: "https://e.example",
};

Deno.test("[validation] a number past the safe integers is told the bound it breaks, not that it is not whole", () => {
  const init = initPaymentSchema(1_000_000);
  assert.equal(refused(init, { ...payment, amount: 1e20 }).amount, "must be at most 1000000 minor units");
  assert.equal(refused(init, { ...payment, amount: 10.5 }).amount.startsWith("must be a whole number"), true);
  assert.equal(
    refused(init, { ...payment, amount: 100, expiresIn: 1e20 }).expiresIn,
    "must be at most 2592000 seconds (30 days)",
  );
  assert.equal(refused(init, { ...payment, amount: 100, expiresIn: -1e20 }).expiresIn, "must be at least 60 seconds");
  const line = { name: "Tea", unitAmount: 5, quantity: 1e20 };
  const session = checkoutSessionSchema(1_000_000);
  assert.equal(
    refused(session, { currency: "EUR", customerEmail: "a@example.com", lineItems: [line] })["lineItems.0.quantity"],
    "must be at most 10000",
  );
});

Deno.test("[validation] an invoice amount with spaces or too long says so; an empty list of lines is not added up", () => {
  const invoice = { coin: "USDT", network: "tron" };
  assert.equal(refused(createInvoiceSchema, { ...invoice, amount: " 12.5 " }).amount, "must not have spaces around it");
  assert.equal(
    refused(createInvoiceSchema, { ...invoice, amount: "1".repeat(71) }).amount,
    "is too long: at most 64 characters",
  );
  const fields = refused(checkoutSessionSchema(1_000_000), {
    currency: "EUR",
    customerEmail: "a@example.com",
    amount: 100,
    lineItems: [],
  });
  assert.equal(fields.lineItems, "must not be empty");
  assert.equal(fields.amount, undefined, "an empty list adds up to nothing it could disagree with");
});

Deno.test("[validation] an unknown field is named where it is", () => {
  const line = { name: "Tea", unitAmount: 5, quantity: 1, colour: "green" };
  const fields = refused(checkoutSessionSchema(1_000_000), {
    currency: "EUR",
    customerEmail: "a@example.com",
    lineItems: [line],
    extra: 1,
  });
  assert.equal(fields["lineItems.0.colour"], "unknown field");
  assert.equal(fields.extra, "unknown field");
});

Deno.test("[validation] a number sent as a string is told it must be a number, not that it is not whole", () => {
  const minor = "must be a number (a JSON number of the currency's minor units, such as 1000), not a string";
  const seconds = "must be a number (a JSON number of seconds, such as 3600), not a string";
  const init = initPaymentSchema(1_000_000);
  assert.deepEqual(refused(init, { ...payment, amount: "1000", expiresIn: "600" }), {
    amount: minor,
    expiresIn: seconds,
  });
  assert.equal(
    refused(init, { ...payment, amount: null }).amount,
    "must be a number (a JSON number of the currency's minor units, such as 1000), not null",
  );
  assert.equal(refused(refundRequestSchema, { amount: "500" }).amount, minor);
  assert.equal(refused(refundRequestSchema, { amount: 5.5 }).amount.startsWith("must be a whole number"), true);
  const session = { currency: "EUR", customerEmail: "a@example.com" };
  assert.deepEqual(refused(checkoutSessionSchema(1_000_000), { ...session, amount: "1000", expiresIn: "600" }), {
    amount: minor,
    expiresIn: seconds,
  });
  const lines = refused(checkoutSessionSchema(1_000_000), {
    ...session,
    lineItems: [{ name: "Tea", unitAmount: "500", quantity: "2" }],
  });
  assert.deepEqual(lines, {
    "lineItems.0.unitAmount": minor,
    "lineItems.0.quantity": "must be a number (a JSON number, without quotes), not a string",
  });
  const invoice = { coin: "USDT", network: "tron", amount: "12.5" };
  assert.equal(refused(createInvoiceSchema, { ...invoice, expiresIn: "600" }).expiresIn, seconds);
  const form = parseOrThrow(formRequestSchema(1_000_000), {
    kind: "fiat",
    title: "Gift",
    amount: "1000",
    currency: "EUR",
  });
  assert.throws(() => checkFormRequest(form), (err) => {
    assert.ok(err instanceof AppError);
    assert.match(
      err.fields!.amount,
      /^must be a number for a fiat form \(a JSON number of minor units .*\), not a string$/,
    );
    return true;
  });
});

Deno.test("[validation] unknown fields are named up to twenty, each cut to 64 characters, the rest counted", () => {
  const junk = Object.fromEntries(Array.from({ length: 25 }, (_, i) => [`k${i}`, i]));
  const session = checkoutSessionSchema(1_000_000);
  const line = { name: "Tea", unitAmount: 5, quantity: 1, ["c".repeat(100)]: 1 };
  const fields = refused(session, { currency: "EUR", customerEmail: "not an email", lineItems: [line], ...junk });
  const unknown = Object.keys(fields).filter((k) => fields[k] === "unknown field");
  assert.equal(unknown.length, 20);
  assert.ok(unknown.includes(`lineItems.0.${"c".repeat(63)}…`), "a nested name is cut, its place kept");
  assert.equal(fields.customerEmail, "must be an email address, such as name@example.com", "the other fields still");
  assert.equal(fields.body, "has 6 more unknown fields besides those named");
  assert.equal(
    refused(session, { ...Object.fromEntries(Object.entries(junk).slice(1)), currency: "EUR" }).body,
    "has 4 more unknown fields besides those named",
  );
  const few = refused(initPaymentSchema(1_000_000), { ...payment, amount: 5, a: 1, b: 2 });
  assert.deepEqual(few, { a: "unknown field", b: "unknown field" }, "twenty or fewer: no count");
});

Deno.test("[validation] text refuses direction overrides, isolates, C1 controls and line separators, and keeps the marks right-to-left text uses", () => {
  const schema = text(1, 100);
  for (const bad of ["order\u202E1gpj", "a\u2066b\u2069", "a\u0085b", "a\u009bb", "a\u2028b", "a\u202Ab", "a\u2067b"]) {
    const r = schema.safeParse(bad);
    assert.equal(r.success, false, JSON.stringify(bad));
    assert.equal(r.error!.issues[0].message, "must not contain control characters");
  }
  for (const good of ["שלום\u200F עולם", "Ελένη", "Zoë O'Brien", "مرحبا\u200E 42", "a\u00A0b"]) {
    assert.equal(schema.safeParse(good).success, true, JSON.stringify(good));
  }
});
