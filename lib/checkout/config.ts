import type { AppContext } from "../context.ts";
import { shopOptions, shopRouting } from "../accounts/routing.ts";
import { DEFAULT_ACCOUNT_ID, PROVIDER_DISPLAY_NAMES } from "../accounts/types.ts";
import { listApiKeys, type Shop } from "../db/shops.ts";
import { keyKind } from "../auth/api_keys.ts";

/**
 * What GET /api/v1/checkout/config answers: the provider that takes the shop's payments by default (its
 * default account), its display name, the shop's publishable key (the one the call was made with, else its
 * newest live one; null when it has none) and the currencies the shop can take; for a Stripe account also
 * Stripe's publishable key and the connected account, which Stripe.js needs.
 */
export async function checkoutConfig(ctx: AppContext, shop: Shop, callerPublishableKey: string | null) {
  const accountId = shopRouting(shop).defaultAccountId ?? DEFAULT_ACCOUNT_ID;
  const [found, options, keys] = await Promise.all([
    ctx.providers.find(accountId),
    shopOptions(ctx, shop),
    callerPublishableKey ? Promise.resolve([]) : listApiKeys(ctx.kv, shop.id),
  ]);
  const provider = found?.account.provider ?? "bansky";
  const newest = keys
    .filter((k) => keyKind(k) === "publishable" && k.revokedAt === null && k.publishableKey)
    .sort((a, b) => b.createdAt - a.createdAt)[0];
  const embed = found?.adapter.embedConfig?.();
  return {
    status: "success" as const,
    provider,
    providerName: PROVIDER_DISPLAY_NAMES[provider],
    publishableKey: callerPublishableKey ?? newest?.publishableKey ?? null,
    supportedCurrencies: options.fiatCurrencies,
    // A provider whose own embedded checkout the page mounts (Stripe.js) needs its public keys too.
    ...(embed ? { providerPublishableKey: embed.publishableKey, accountId: embed.accountId } : {}),
  };
}
