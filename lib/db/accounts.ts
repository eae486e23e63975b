import { ConflictError } from "../errors.ts";
import type { AccountCredentials, ProviderAccount } from "../accounts/types.ts";
import { collectValues } from "./kv.ts";
import { addAuditOps, type NewAuditEntry } from "./audit.ts";

/**
 * Provider accounts. The credentials live under their own key, so a listing
 * or a page never reads them: only the registry does, to build an adapter.
 */
const accountKey = (id: string) => ["provider_accounts", id] as const;
const credentialsKey = (id: string) => ["provider_account_credentials", id] as const;

/** Stores a new account with its credentials and audit entry in one atomic operation. */
export async function insertAccount(
  kv: Deno.Kv,
  account: ProviderAccount,
  credentials: AccountCredentials,
  audit: NewAuditEntry,
): Promise<void> {
  const op = kv.atomic()
    .check({ key: accountKey(account.id), versionstamp: null })
    .set(accountKey(account.id), account)
    .set(credentialsKey(account.id), credentials);
  if (!(await addAuditOps(op, audit).commit()).ok) throw new ConflictError("The account exists already.");
}

export function getAccountEntry(kv: Deno.Kv, id: string): Promise<Deno.KvEntryMaybe<ProviderAccount>> {
  return kv.get<ProviderAccount>(accountKey(id));
}

/** An account and its credentials, read together (the registry builds its adapter from them). */
export async function getAccountWithCredentials(
  kv: Deno.Kv,
  id: string,
): Promise<{ account: ProviderAccount; credentials: AccountCredentials } | null> {
  const [account, credentials] = await kv.getMany<[ProviderAccount, AccountCredentials]>([
    accountKey(id),
    credentialsKey(id),
  ]);
  return account.value && credentials.value ? { account: account.value, credentials: credentials.value } : null;
}

export function listAccounts(kv: Deno.Kv): Promise<ProviderAccount[]> {
  return collectValues(kv.list<ProviderAccount>({ prefix: ["provider_accounts"] }));
}

/**
 * Replaces an account read as `entry` (and its credentials when given) with
 * its audit entry in one atomic operation; false if it changed meanwhile.
 */
export async function replaceAccount(
  kv: Deno.Kv,
  entry: Deno.KvEntry<ProviderAccount>,
  next: ProviderAccount,
  opts: { credentials?: AccountCredentials; audit: NewAuditEntry },
): Promise<boolean> {
  const op = kv.atomic().check(entry).set(accountKey(next.id), next);
  if (opts.credentials) op.set(credentialsKey(next.id), opts.credentials);
  return (await addAuditOps(op, opts.audit).commit()).ok;
}
