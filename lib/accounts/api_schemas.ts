import { z } from "zod";
import { type OperationEntry, OPERATIONS, OUTCOMES } from "../db/operations.ts";
import { PROVIDER_NAMES, type ProviderAccount } from "./types.ts";

/** GET /api/v1/options: what the shop's routes accept (tests/docs_test.ts and the options test check real answers). */
export const OptionsResponse = z.object({
  status: z.literal("success"),
  fiat: z.object({
    currencies: z.array(z.string().length(3)).describe(
      "ISO 4217 codes (upper case) of the fiat payments init-payment would route for this shop.",
    ),
    amountSteps: z.record(z.string().length(3), z.int().positive()).describe(
      "For each of `currencies`, the step in minor units an amount must be a multiple of at the provider the shop's " +
        "routes pick for it (1: any amount; 100 for MGA at Stripe, which takes whole ariary; 10 for a three-decimal " +
        "currency such as KWD at Stripe, whose last digit it wants 0); init-payment refuses " +
        "another with 422 amount_not_accepted. Added 2026-11-30.",
    ),
  }),
  crypto: z.object({
    coins: z.array(z.object({
      id: z.string(),
      networks: z.array(z.object({
        id: z.string(),
        label: z.string(),
        confirmations: z.int().describe("Confirmations a deposit needs before an invoice counts it as paid."),
        decimals: z.int().describe("The most decimals an invoice amount may have."),
      })),
    })).describe("Coins crypto invoices take, each with its networks (POST /api/v1/invoices)."),
  }),
});

// The admin JSON API (/api/admin/v1, operator tokens): accounts, routing and the operation log. Times are ISO 8601.

const Iso = z.string().describe("ISO 8601 time (UTC).");

/** A provider account as the admin API shows it: never its credentials. */
export const AccountView = z.object({
  id: z.string().describe("pa_... for stored accounts; `default` for the one from the BANSKY_* settings."),
  provider: z.enum(PROVIDER_NAMES),
  label: z.string(),
  orgId: z.string().describe("The organisation's identifier, e.g. a 12-digit BIN."),
  active: z.boolean().describe("A disabled account takes no new payments."),
  currencies: z.array(z.string()).describe("ISO 4217 codes the account takes; empty means any."),
  createdAt: Iso,
  updatedAt: Iso,
  credentialsUpdatedAt: Iso,
});

export const AccountResponse = z.object({ status: z.literal("success"), account: AccountView });
export const AccountListResponse = z.object({ status: z.literal("success"), accounts: z.array(AccountView) });

const RuleView = z.object({
  accountId: z.string(),
  currency: z.string().nullable().describe("Upper-case ISO 4217 code; null matches any."),
  type: z.enum(["fiat", "crypto"]).nullable().describe("null matches any."),
});

export const RoutingView = z.object({
  rules: z.array(RuleView).describe("In order: the first rule that matches a payment picks its account."),
  defaultAccountId: z.string().nullable().describe("When no rule matches; null = the platform's default account."),
});

export const RoutingResponse = z.object({ status: z.literal("success"), shopId: z.string(), routing: RoutingView });

export const OperationView = z.object({
  id: z.string(),
  at: Iso,
  shopId: z.string(),
  accountId: z.string(),
  orgId: z.string(),
  provider: z.string(),
  operation: z.enum(OPERATIONS),
  paymentId: z.string(),
  refundId: z.string().nullable(),
  providerRef: z.string().nullable(),
  amount: z.int().describe("Minor units."),
  currency: z.string(),
  outcome: z.enum(OUTCOMES),
  status: z.string().nullable().describe("The status the provider answered, in our words; null on error."),
  error: z.string().nullable().describe("What went wrong, without provider internals or credentials."),
  durationMs: z.int(),
});

export const OperationListResponse = z.object({
  status: z.literal("success"),
  operations: z.array(OperationView).describe("Newest first."),
});

/** GET /api/admin/v1/operations: filters and page size. */
export const OperationsQuery = z.strictObject({
  shopId: z.string().min(1).max(64).optional(),
  accountId: z.string().min(1).max(64).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});

const iso = (ms: number) => new Date(ms).toISOString();

export function accountView(a: ProviderAccount): z.infer<typeof AccountView> {
  return {
    id: a.id,
    provider: a.provider,
    label: a.label,
    orgId: a.orgId,
    active: a.active,
    currencies: a.currencies,
    createdAt: iso(a.createdAt),
    updatedAt: iso(a.updatedAt),
    credentialsUpdatedAt: iso(a.credentialsUpdatedAt),
  };
}

export function operationView(e: OperationEntry): z.infer<typeof OperationView> {
  return { ...e, at: iso(e.at) };
}
