import assert from "node:assert/strict";
import { parseOrThrow } from "./validation.ts";
import { AppError } from "./errors.ts";
import { initPaymentSchema } from "./payments/schema.ts";
import { createInvoiceSchema } from "./invoices/schema.ts";
import { checkoutSessionSchema } from "./checkout/schema.ts";

/** The field messages a body is refused with. */
function refused(schema: Parameters<typeof parseOrThrow>[0], body: unknown): Record<string, string> {
  try {
    parseOrThrow(schema, body);
  } catch (err) {
    if (err instanceof AppError && err.fields) return err.fields;
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
