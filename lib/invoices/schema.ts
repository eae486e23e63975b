import { z } from "zod";
import { text } from "../validation.ts";
import { parseDecimalAmount } from "./amounts.ts";
import { COIN_IDS, COIN_OPTIONS, findCoinOption, NETWORK_IDS } from "./coins.ts";

const pairs = COIN_OPTIONS.map((o) => `${o.coin} on ${o.network}`).join(", ");

/** The body of `POST /api/v1/invoices`. Unknown fields are rejected; coins and networks come from coins.ts. */
export const createInvoiceSchema = z.strictObject({
  coin: z.string().max(16).describe(`One of ${COIN_IDS.join(", ")}.`),
  network: z.string().max(32).describe(`One of ${NETWORK_IDS.join(", ")}; the pair must be one we take: ${pairs}.`),
  amount: z.string().max(64).describe(
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
  expiresIn: z.int().min(60).max(2_592_000).optional().describe(
    "Seconds the invoice waits for a deposit (60 s to 30 days); defaults to INVOICE_TTL_S (1 hour).",
  ),
  postbackUrl: z.string().max(2048).optional().describe(
    "Where `invoice.<status>` postbacks go; defaults to the shop's postback URL.",
  ),
}).superRefine((b, ctx) => {
  const option = findCoinOption(b.coin, b.network);
  if (!option) {
    ctx.addIssue({ code: "custom", path: ["network"], message: `must be one we take for the coin: ${pairs}` });
    return;
  }
  const units = parseDecimalAmount(b.amount, option.decimals);
  if (units === null) {
    ctx.addIssue({
      code: "custom",
      path: ["amount"],
      message: `must be a decimal string with at most ${option.decimals} decimals`,
    });
  } else if (units <= 0n) {
    ctx.addIssue({ code: "custom", path: ["amount"], message: "must be more than zero" });
  }
});

export type CreateInvoiceInput = z.output<typeof createInvoiceSchema>;
