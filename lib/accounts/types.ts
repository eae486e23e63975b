import type { PaymentType } from "../payments/types.ts";

/** The providers an account can be at; the registry (lib/providers/registry.ts) has an adapter for each. */
export const PROVIDER_NAMES = ["bansky", "stripe"] as const;
export type ProviderName = typeof PROVIDER_NAMES[number];

/** How each provider is named to buyers, shops and operators. */
export const PROVIDER_DISPLAY_NAMES = { bansky: "Bansky", stripe: "Stripe" } as const satisfies Record<
  ProviderName,
  string
>;

/** A provider's display name; a name we do not know (a record older than its provider's removal) as it is stored. */
export function providerDisplayName(provider: string): string {
  return (PROVIDER_DISPLAY_NAMES as Record<string, string>)[provider] ?? provider;
}

/** The account built from the environment's Bansky settings (or the built-in sandbox) at start-up. */
export const DEFAULT_ACCOUNT_ID = "default";

/**
 * Where an account's webhooks arrive, below the public base URL: what we give the provider with each payment, and
 * what onboarding points the provider's dashboard at. The default account keeps the path it always had.
 */
export function accountWebhookPath(accountId: string): string {
  return accountId === DEFAULT_ACCOUNT_ID
    ? "/api/payment-verify"
    : `/api/payment-verify/${encodeURIComponent(accountId)}`;
}

/**
 * A merchant account at a provider. What is safe to show: the credentials are
 * kept apart (AccountCredentials) and never shown back, logged or exported.
 */
export interface ProviderAccount {
  id: string;
  provider: ProviderName;
  label: string;
  /** The organisation's identifier (e.g. a 12-digit BIN); free text, shown in logs. */
  orgId: string;
  /** A disabled account takes no new payments; its payments keep using it for status checks, refunds and webhooks. */
  active: boolean;
  /** ISO 4217 codes the account takes; empty means any. */
  currencies: string[];
  createdAt: number;
  updatedAt: number;
  credentialsUpdatedAt: number;
}

export interface BanskyCredentials {
  provider: "bansky";
  apiUrl: string;
  apiToken: string;
  webhookSecret: string;
}

export interface StripeCredentials {
  provider: "stripe";
  /** The platform's secret key (sk_...). */
  secretKey: string;
  /** The webhook endpoint's signing secret (whsec_...). */
  webhookSecret: string;
  /** The organisation's connected account (acct_...), sent as Stripe-Account. */
  connectedAccountId: string;
  /** Another API host than Stripe's (tests). */
  apiUrl?: string;
  /** The platform's publishable key (pk_...), public: shops' pages mount Stripe's embedded checkout with it. */
  publishableKey?: string;
}

export type AccountCredentials = BanskyCredentials | StripeCredentials;

/** The payment types each provider can take. */
export const PROVIDER_TYPES = {
  bansky: ["fiat", "crypto"],
  stripe: ["fiat"],
} as const satisfies Record<ProviderName, readonly PaymentType[]>;

/** One routing rule of a shop: payments in `currency` and/or of `type` go to `accountId`. */
export interface RouteRule {
  accountId: string;
  /** Upper-case ISO 4217 code; null matches any. */
  currency: string | null;
  type: PaymentType | null;
}

/** A shop's routes: the first matching rule wins, else its default account, else the platform's. */
export interface ShopRouting {
  rules: RouteRule[];
  defaultAccountId: string | null;
}
