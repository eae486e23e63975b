import { z } from "zod";
import { COIN_IDS, NETWORK_IDS } from "./coins.ts";
import { MAX_OTHER_COIN_DEPOSITS } from "./deposits.ts";
import { INVOICE_POSTBACK_TYPES, INVOICE_STATUSES, type InvoicePostbackType } from "./status.ts";

/**
 * The shapes of the invoice API's answers and postbacks, for the OpenAPI
 * document (lib/docs/openapi.ts); tests/invoices_test.ts checks real answers
 * and postbacks against them. The request is `createInvoiceSchema` (schema.ts).
 */
const isoTime = z.iso.datetime().describe("ISO 8601 time in UTC.");
const decimal = z.string().regex(/^[0-9]+(\.[0-9]+)?$/).describe("A decimal string in the coin's units.");

export const InvoiceStatusSchema = z.enum(INVOICE_STATUSES).describe(
  "waiting_for_deposit: nothing seen yet, or what was seen was dropped from the chain before its confirmations " +
    "(the buyer is asked to pay again); payment_confirmation: a deposit is on its way, waiting for its " +
    "confirmations; partially_paid: confirmed deposits are short of the amount; payment_accepted: paid in full and " +
    "confirmed (overpayment recorded in overpaidAmount); finished: the deposits are final (twice the network's " +
    "confirmations), reached without payment_accepted when a read finds them final at once, so ship on " +
    "payment_accepted or finished, whichever comes first; expired: nothing, or only dust (under a hundredth of the " +
    "amount), arrived by expiresAt; cancelled: you cancelled it (refund paidAmount plus lateAmount). The last three " +
    "are final. Open statuses can step back (payment_confirmation to partially_paid or waiting_for_deposit, " +
    "partially_paid to payment_confirmation).",
);

export const InvoiceView = z.object({
  id: z.string().describe("Our invoice id (inv_...)."),
  shopInvoiceId: z.string().nullable().describe("Your `id` from the request, or null."),
  status: InvoiceStatusSchema,
  coin: z.enum(COIN_IDS),
  network: z.enum(NETWORK_IDS),
  amount: decimal.describe("What the buyer is asked for."),
  paidAmount: decimal.describe("Confirmed deposits made while the invoice was open."),
  pendingAmount: decimal.describe("Deposits seen but not confirmed yet (dropped ones not included)."),
  overpaidAmount: decimal.describe("How much paidAmount exceeds amount; 0 otherwise."),
  lateAmount: decimal.describe(
    "Deposits that arrived after the invoice closed (or after expiresAt, on an expired one), or were still " +
      "confirming when it closed: never counted, always shown.",
  ),
  address: z.string().describe("Where the buyer sends the coin, on `network` only."),
  checkoutUrl: z.url().describe("The buyer's page: amount, address, QR code and live status."),
  returnUrl: z.string().nullable().describe("Your page the buyer's page links back to, as you gave it, or null."),
  title: z.string(),
  description: z.string(),
  email: z.string().nullable().describe("The buyer's email, when you gave one (or the buyer did, on a form)."),
  confirmationsNeeded: z.int().positive().describe("Confirmations a deposit needs before it counts as paid."),
  deposits: z.array(z.object({
    txid: z.string(),
    amount: decimal,
    confirmations: z.int().nonnegative(),
    confirmed: z.boolean().describe("True once it has confirmationsNeeded."),
    late: z.boolean().describe(
      "True when it arrived after the invoice closed (or after expiresAt, on an expired one), or was still " +
        "confirming when it closed.",
    ),
    dropped: z.boolean().describe(
      "True when the chain stopped showing it before its confirmations (replaced, double-spent or evicted): kept " +
        "on record, counted in no amount. False again if the chain shows it again.",
    ),
    seenAt: isoTime,
  })).describe("Every deposit to the address while it was this invoice's, oldest first."),
  otherCoinDeposits: z.array(z.object({
    coin: z.string().describe("The coin sent, as the chain names it; possibly one we do not take."),
    txid: z.string(),
    amount: decimal.nullable().describe(
      "What was sent, in that coin's units (a coin we take, or the network's own: BTC, ETH, TRX); null for another token, whose decimals we do not know (read baseUnits then).",
    ),
    baseUnits: z.string().regex(/^[0-9]+$/).describe("What was sent, as an integer of that coin's smallest unit."),
    confirmations: z.int().nonnegative(),
    confirmed: z.boolean().describe("True once it has the network's confirmationsNeeded: only then return it."),
    dropped: z.boolean().describe(
      "True when the chain stopped showing it before its confirmations: nothing arrived, nothing to return.",
    ),
    seenAt: isoTime,
  })).describe(
    "Other coins sent to the address while it was this invoice's (ETH to a USDT invoice on ethereum, say), oldest " +
      `first, at most ${MAX_OTHER_COIN_DEPOSITS}: counted in no amount and no status. Return confirmed ones ` +
      "yourself, in the coin that was sent, to an address the buyer gives you.",
  ),
  createdAt: isoTime,
  updatedAt: isoTime.describe(
    "When anything this object shows last changed; a postback's data.updatedAt is its timestamp.",
  ),
  expiresAt: isoTime,
  closedAt: isoTime.nullable().describe("When it finished, expired or was cancelled; null while open."),
});

export const InvoiceResponse = z.object({ status: z.literal("success"), invoice: InvoiceView });

/** The body of an invoice postback (Standard Webhooks payload: type, timestamp, data). */
export const InvoicePostbackBody = z.object({
  type: z.enum(INVOICE_POSTBACK_TYPES as [InvoicePostbackType, ...InvoicePostbackType[]]),
  timestamp: isoTime.describe("When the postback was created; the same on every retry."),
  data: InvoiceView,
});
