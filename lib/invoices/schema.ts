import { z } from "zod";
import { EVEN_AFTER_OTHER_FAILURES, text, wholeSeconds } from "../validation.ts";
import { MAX_EXPIRES_IN_S, MIN_EXPIRES_IN_S } from "../payments/schema.ts";
import { MAX_WHOLE_DIGITS, parseDecimalAmount } from "./amounts.ts";
import { COIN_IDS, COIN_OPTIONS, findCoinOption, NETWORK_IDS } from "./coins.ts";

const pairs = COIN_OPTIONS.map((o) => `${o.coin} on ${o.network}`).join(", ");

/** The most decimals any coin has: an amount with more is wrong whatever the coin. */
const MOST_DECIMALS = Math.max(...COIN_OPTIONS.map((o) => o.decimals));

/**
 * The body of `POST /api/v1/invoices`. Unknown fields are rejected; coins and networks come from coins.ts. Each field
 * is judged on its own, and the rules between them (the pair, the coin's decimals) also when another field is bad, so
 * one answer names every bad field.
 */
export const createInvoiceSchema = z.strictObject({
  // Case does not matter: "usdt" is USDT, "Tron" is tron, as forms already read them.
  coin: z.string().max(16).transform((c) => c.toUpperCase())
    .refine((c) => (COIN_IDS as string[]).includes(c), `must be one of ${COIN_IDS.join(", ")}`)
    .describe(`One of ${COIN_IDS.join(", ")}.`),
  network: z.string().max(32).transform((n) => n.toLowerCase())
    .refine((n) => (NETWORK_IDS as string[]).includes(n), `must be one of ${NETWORK_IDS.join(", ")}; we take ${pairs}`)
    .describe(`One of ${NETWORK_IDS.join(", ")}; the pair must be one we take: ${pairs}.`),
  amount: z.string({
    error: (issue) =>
      issue.input === undefined ? "is required" : 'must be a decimal string such as "12.50", never a JSON number',
  }).max(64, "is too long: at most 64 characters").superRefine((amount, ctx) => {
    // What is wrong whatever the coin; the coin's own decimals are judged with the pair below.
    const problem = cryptoAmountProblem(amount, null);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }).describe(
    'A decimal string with at most the coin\'s decimals (e.g. "12.50" USDT); never a JSON number, so no digit is lost.',
  ),
  id: text(1, 64).optional().describe(
    "Your own invoice reference; unique per shop. Retrying with it (and the same body) answers the same invoice.",
  ),
  title: text(0, 200).optional().describe("Shown to the buyer."),
  description: text(0, 1000).optional().describe("Shown to the buyer."),
  email: z.email().max(254).optional().describe(
    "The buyer's email, if you have it: kept on the invoice for you (answers, postbacks, portal), never shown to others.",
  ),
  expiresIn: wholeSeconds(MIN_EXPIRES_IN_S, MAX_EXPIRES_IN_S).optional().describe(
    "Seconds the invoice waits for a deposit (60 s to 30 days); defaults to INVOICE_TTL_S (1 hour).",
  ),
  postbackUrl: z.string().max(2048).optional().describe(
    "Where `invoice.<status>` postbacks go; defaults to the shop's postback URL.",
  ),
  returnUrl: z.string().max(2048).optional().describe(
    "Your page the buyer goes back to from the invoice's page (a link named after your shop); https, on your " +
      "allowed hosts. Without it the page has no way back.",
  ),
}).superRefine((b, ctx) => {
  // Judged also when another field failed (EVEN_AFTER_OTHER_FAILURES): each value is checked before use.
  const { coin, network, amount } = b as Partial<Record<"coin" | "network" | "amount", unknown>>;
  if (typeof coin !== "string" || typeof network !== "string") return;
  if (!(COIN_IDS as string[]).includes(coin) || !(NETWORK_IDS as string[]).includes(network)) return;
  const option = findCoinOption(coin, network);
  if (!option) {
    ctx.addIssue({ code: "custom", path: ["network"], message: `must be one we take for the coin: ${pairs}` });
    return;
  }
  if (typeof amount !== "string" || cryptoAmountProblem(amount, null)) return;
  const problem = cryptoAmountProblem(amount, option.decimals);
  if (problem) ctx.addIssue({ code: "custom", path: ["amount"], message: problem });
}, EVEN_AFTER_OTHER_FAILURES);

/**
 * Why a crypto amount as sent is not one we take, in the shop's or buyer's terms; null when it is fine. `decimals`
 * null (the coin is not known): only what is wrong whatever the coin.
 */
export function cryptoAmountProblem(amount: string, decimals: number | null): string | null {
  const units = parseDecimalAmount(amount, decimals ?? MOST_DECIMALS);
  if (units !== null) return units > 0n ? null : "must be more than zero";
  // Judged as sent: trimmed, "12.5 " would read as a number with too many decimals.
  if (amount !== amount.trim()) return "must not have spaces around it";
  const text = amount;
  if (/^-/.test(text)) return "must be more than zero";
  if (/^0\d/.test(text)) return "must not start with a 0 before its other digits (12, not 012)";
  if (/^\d{31,}(\.\d*)?$/.test(text)) return `is too large: at most ${MAX_WHOLE_DIGITS} digits before the point`;
  if (decimals !== null) return `must be a decimal string with at most ${decimals} decimals, such as "12.50"`;
  if (/^\d+\.\d+$/.test(text)) return `must have at most ${MOST_DECIMALS} decimals (no coin takes more)`;
  return 'must be a decimal string such as "12.50"';
}

export type CreateInvoiceInput = z.output<typeof createInvoiceSchema>;
