import type { AuditAction } from "../db/audit.ts";
import { z } from "zod";
import type { AppContext } from "../context.ts";
import { ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import {
  getAccountEntry,
  getAccountWithCredentials,
  insertAccount,
  listAccounts,
  replaceAccount,
} from "../db/accounts.ts";
import { hasIdShape, randomId } from "../ids.ts";
import { isCurrency } from "../money.ts";
import { CURRENCY_REFUSED, fieldErrors, parseOrThrow, productMessage, text } from "../validation.ts";
import {
  type AccountCredentials,
  DEFAULT_ACCOUNT_ID,
  PROVIDER_NAMES,
  type ProviderAccount,
  type ProviderName,
} from "./types.ts";

const Secret = z.string().trim().min(1).max(500);
// A base address only: credentials go in their own fields, never in the URL, which the console shows (rotation).
// A URL that is not one gets its own example: the general one (a shop's page, https://shop.example/path) reads as the
// wrong kind of address here. Anything else (missing, not text) is told as every field is.
const ApiUrl = z.url({
  protocol: /^https?$/,
  error: (issue) =>
    issue.code === "invalid_format"
      ? "must be the provider's API base URL, such as https://api.provider.example/v1"
      : undefined,
})
  .max(500)
  .refine((u) => {
    const url = URL.parse(u); // null when the URL check above failed: that issue is already reported
    // An empty "?" or "#" parses away, but the requests built on it would carry it.
    return !url || (!url.username && !url.password && !u.includes("?") && !u.includes("#"));
  }, "must be a base address without credentials, query or fragment")
  .transform((u) => u.replace(/\/+$/, ""));

/** The credentials each provider needs, checked when an account is created or its credentials rotated. */
const CREDENTIALS = {
  bansky: z.strictObject({ apiUrl: ApiUrl, apiToken: Secret, webhookSecret: Secret }),
  stripe: z.strictObject({
    secretKey: Secret,
    webhookSecret: Secret,
    connectedAccountId: z.string().regex(/^acct_[A-Za-z0-9]{1,64}$/, "must be a connected account id (acct_...)"),
    apiUrl: ApiUrl.optional(),
    publishableKey: z.string().trim().regex(/^pk_(test|live)_[A-Za-z0-9]{1,255}$/, "must be a publishable key (pk_...)")
      .optional(),
  }),
} satisfies Record<ProviderName, z.ZodType>;

/** A new account: POST /api/admin/v1/accounts and the console's form (tests/docs_test.ts shows it in OpenAPI). */
export const NewAccountSchema = z.strictObject({
  provider: z.enum(PROVIDER_NAMES),
  label: text(1, 100),
  orgId: text(1, 64).describe("The organisation's identifier, e.g. a 12-digit BIN."),
  currencies: z.array(
    z.string().transform((c) => c.trim().toUpperCase()).refine(isCurrency, CURRENCY_REFUSED),
  ).max(200).default([]),
  credentials: z.record(z.string(), z.unknown()),
});

function parseCredentials(provider: ProviderName, input: unknown): AccountCredentials {
  const parsed = CREDENTIALS[provider].safeParse(input, { error: productMessage });
  if (!parsed.success) {
    // In the API's words and bounds: unknown names are echoed only as far as fieldErrors echoes them.
    const fields = Object.fromEntries(
      Object.entries(fieldErrors(parsed.error)).map(([path, message]) => [`credentials.${path}`, message]),
    );
    throw new ValidationError("The credentials are invalid.", fields);
  }
  return { provider, ...parsed.data } as AccountCredentials;
}

/** Creates an account; its credentials are stored apart and never shown again. Audited as `account.create`. */
export async function createAccount(
  ctx: AppContext,
  input: unknown,
  opts: { actor: string },
): Promise<ProviderAccount> {
  const body = parseOrThrow(NewAccountSchema, input, { what: "account" });
  const credentials = parseCredentials(body.provider, body.credentials);
  const now = ctx.now();
  const account: ProviderAccount = {
    id: randomId("pa"),
    provider: body.provider,
    label: body.label,
    orgId: body.orgId,
    active: true,
    currencies: [...new Set(body.currencies)],
    createdAt: now,
    updatedAt: now,
    credentialsUpdatedAt: now,
  };
  await insertAccount(ctx.kv, account, credentials, {
    at: now,
    actor: opts.actor,
    action: "account.create",
    target: account.id,
    before: null,
    after: account,
  });
  return account;
}

/** Every account, the default one (from the environment) first. */
export async function listAllAccounts(ctx: AppContext): Promise<ProviderAccount[]> {
  const stored = await listAccounts(ctx.kv);
  return [ctx.providers.defaultAccount.account, ...stored.sort((a, b) => a.createdAt - b.createdAt)];
}

/** An account by id (the default one included), or NotFoundError. */
export async function getAccount(ctx: AppContext, id: string): Promise<ProviderAccount> {
  const account = await findAccount(ctx, id);
  if (!account) throw new NotFoundError("Unknown account.");
  return account;
}

/** An account by id (the default one included), or null when there is none by that id. */
export async function findAccount(ctx: AppContext, id: string): Promise<ProviderAccount | null> {
  if (id === DEFAULT_ACCOUNT_ID) return ctx.providers.defaultAccount.account;
  const entry = hasIdShape("account", id) ? await getAccountEntry(ctx.kv, id) : null;
  return entry?.value ?? null;
}

/**
 * The parts of an account's credentials that are no secret: where it calls (its origin and path), and for Stripe
 * the connected account and the publishable key (public by design: shops' pages carry it). A rotation offers them to
 * keep, so replacing the secrets does not lose them. Tokens, secret keys and webhook secrets never leave the store.
 */
export interface ShownCredentials {
  apiUrl?: string;
  connectedAccountId?: string;
  publishableKey?: string;
}

/**
 * What of some credentials, stored or typed into a form, may be shown on a page: a URL's origin and path only (its
 * user, password, query or fragment may hold a secret: stored before they were refused, or typed by mistake), and
 * ids and keys only when they have their own shape (a secret key pasted into the wrong box is not shown back).
 */
export function shownCredentials(input: Record<string, unknown>): ShownCredentials {
  const text = (v: unknown) => (typeof v === "string" ? v.trim() : "");
  const url = URL.parse(text(input.apiUrl));
  const shown: ShownCredentials = {};
  if (url && /^https?:$/.test(url.protocol)) shown.apiUrl = `${url.origin}${url.pathname}`.replace(/\/+$/, "");
  if (/^acct_[A-Za-z0-9]{1,64}$/.test(text(input.connectedAccountId))) {
    shown.connectedAccountId = text(input.connectedAccountId);
  }
  if (/^pk_(test|live)_[A-Za-z0-9]{1,255}$/.test(text(input.publishableKey))) {
    shown.publishableKey = text(input.publishableKey);
  }
  return shown;
}

/** An account with its shown credentials; the default account's settings live in the environment: none to show. */
export async function describeAccount(
  ctx: AppContext,
  id: string,
): Promise<{ account: ProviderAccount; shown: ShownCredentials }> {
  if (id === DEFAULT_ACCOUNT_ID) return { account: ctx.providers.defaultAccount.account, shown: {} };
  const found = hasIdShape("account", id) ? await getAccountWithCredentials(ctx.kv, id) : null;
  if (!found) throw new NotFoundError("Unknown account.");
  return { account: found.account, shown: shownCredentials({ ...found.credentials }) };
}

/**
 * Read-modify-write of a stored account with its audit entry; the default
 * account lives in the environment and is changed there.
 */
async function changeAccount(
  ctx: AppContext,
  id: string,
  action: AuditAction,
  actor: string,
  change: (a: ProviderAccount) => { next: ProviderAccount; credentials?: AccountCredentials },
): Promise<ProviderAccount> {
  if (id === DEFAULT_ACCOUNT_ID) {
    throw new ConflictError(
      "The default account comes from the BANSKY_* settings; change it there.",
      "account_default",
    );
  }
  for (;;) {
    const entry = hasIdShape("account", id) ? await getAccountEntry(ctx.kv, id) : null;
    if (!entry?.value) throw new NotFoundError("Unknown account.");
    const { next, credentials } = change(entry.value);
    const audit = { at: ctx.now(), actor, action, target: id, before: entry.value, after: next };
    if (await replaceAccount(ctx.kv, entry as Deno.KvEntry<ProviderAccount>, next, { credentials, audit })) {
      ctx.providers.forget(id);
      return next;
    }
  }
}

/** Turns new payments away from an account (its existing payments keep using it). Audited as `account.disable`. */
export function setAccountActive(
  ctx: AppContext,
  id: string,
  active: boolean,
  opts: { actor: string },
): Promise<ProviderAccount> {
  return changeAccount(ctx, id, active ? "account.enable" : "account.disable", opts.actor, (a) => ({
    next: { ...a, active, updatedAt: ctx.now() },
  }));
}

/** Replaces an account's credentials (the audit records when, never what). Audited as `account.rotate`. */
export function rotateAccountCredentials(
  ctx: AppContext,
  id: string,
  input: unknown,
  opts: { actor: string },
): Promise<ProviderAccount> {
  return changeAccount(ctx, id, "account.rotate", opts.actor, (a) => {
    const now = ctx.now();
    return {
      next: { ...a, updatedAt: now, credentialsUpdatedAt: now },
      credentials: parseCredentials(a.provider, input),
    };
  });
}
