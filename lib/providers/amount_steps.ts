import type { ProviderName } from "../accounts/types.ts";
import { stripeAmountStep } from "./stripe_wire.ts";

/**
 * The step, in ISO 4217 minor units, of the amounts each provider takes in a currency: an amount that is not a
 * multiple of it is refused (Stripe takes MGA in whole ariary, three-decimal currencies in tens). Read by what shops
 * and buyers are offered and shown, from the same rule each adapter checks amounts with.
 */
const AMOUNT_STEPS = {
  bansky: () => 1,
  stripe: stripeAmountStep,
} as const satisfies Record<ProviderName, (currency: string) => number>;

/** The step of the amounts `provider` takes in `currency` (1: any amount in minor units). */
export function amountStep(provider: ProviderName, currency: string): number {
  return AMOUNT_STEPS[provider](currency);
}
