import { z } from "zod";

/** GET /api/v1/options: what the shop's routes accept (tests/docs_test.ts and the options test check real answers). */
export const OptionsResponse = z.object({
  status: z.literal("success"),
  fiat: z.object({
    currencies: z.array(z.string().length(3)).describe(
      "ISO 4217 codes (upper case) of the fiat payments init-payment would route for this shop.",
    ),
  }),
  crypto: z.object({
    coins: z.array(z.object({
      id: z.string(),
      networks: z.array(z.object({ id: z.string(), confirmations: z.int(), decimals: z.int() })),
    })).describe("Coins and their networks; always empty until crypto payments arrive."),
  }),
});
