import type { AccountCredentials, ProviderAccount } from "../accounts/types.ts";
import { DEFAULT_ACCOUNT_ID } from "../accounts/types.ts";
import { getAccountWithCredentials } from "../db/accounts.ts";
import { BanskyProvider } from "./bansky.ts";
import type { PaymentProvider } from "./types.ts";
import { LoggedProvider } from "./logged.ts";
import type { Metrics } from "../metrics.ts";
import type { HttpTransport } from "./http1_client.ts";

/** An account with the adapter that speaks to it. */
export interface AccountAdapter {
  account: ProviderAccount;
  adapter: PaymentProvider;
  /** The same adapter with its operation-log controls, when it is bound to a payment. */
  logged?: LoggedProvider;
}

/** What a provider call is made for, so the operation log can name the shop, payment and amount. */
export interface PaymentScope {
  id: string;
  shopId: string;
  amount: number;
  currency: string;
  /** Absent on payments stored before accounts existed: they belong to the default account. */
  accountId?: string;
  /** The refund the calls are for, when they are a refund's: its operation log entries name it. */
  refundId?: string;
}

/** Turns an account's credentials into the adapter for its provider. */
export async function adapterFor(
  credentials: AccountCredentials,
  opts: { timeoutMs: number; http: HttpTransport },
): Promise<PaymentProvider> {
  switch (credentials.provider) {
    case "bansky":
      return new BanskyProvider({ ...credentials, timeoutMs: opts.timeoutMs, http: opts.http });
    case "stripe": {
      // Stripe's SDK (about 10 MB of a process's memory) is loaded once an account needs it, not by every process.
      const { StripeProvider } = await import("./stripe.ts");
      return new StripeProvider({ ...credentials, timeoutMs: opts.timeoutMs });
    }
  }
}

/** How long an isolate trusts an account it read: a disable or a credentials rotation reaches every isolate within it. */
export const ACCOUNT_CACHE_TTL_MS = 5_000;
/** Accounts (and ids of none) an isolate remembers at most: a sender naming new ids cannot grow it without bound. */
const MAX_CACHED_ACCOUNTS = 1_000;

/**
 * The accounts this isolate knows, by id, each with its adapter. The default
 * account comes from the environment and is never read from KV; the others
 * are read once per ACCOUNT_CACHE_TTL_MS, so routing a payment costs no KV
 * read on the request path once warm.
 */
export class ProviderRegistry {
  private readonly cache = new Map<string, { value: Promise<AccountAdapter | null>; until: number }>();
  /** Ids of accounts found (see knows). */
  private readonly found = new Set<string>();

  constructor(
    private readonly kv: Deno.Kv,
    readonly defaultAccount: AccountAdapter,
    private readonly opts: { timeoutMs: number; http: HttpTransport; now: () => number; metrics?: Metrics },
  ) {}

  /** The account with this id, or null when there is none. */
  find(id: string): Promise<AccountAdapter | null> {
    if (id === DEFAULT_ACCOUNT_ID) return Promise.resolve(this.defaultAccount);
    const now = this.opts.now();
    const hit = this.cache.get(id);
    if (hit && hit.until > now) return hit.value;
    const value = getAccountWithCredentials(this.kv, id).then(async (found) =>
      found && { account: found.account, adapter: await adapterFor(found.credentials, this.opts) }
    );
    // Ids nobody has are remembered too (a webhook naming one is answered from here); bounded all the same.
    if (this.cache.size >= MAX_CACHED_ACCOUNTS) this.cache.clear();
    this.cache.set(id, { value, until: now + ACCOUNT_CACHE_TTL_MS });
    value.then((a) => {
      if (!a) return;
      if (this.found.size >= MAX_CACHED_ACCOUNTS) this.found.clear();
      this.found.add(id);
    }, () => this.cache.delete(id));
    return value;
  }

  /**
   * True for an account this isolate has found before: asking for it again costs at most one read per
   * ACCOUNT_CACHE_TTL_MS, whoever asks, whereas an id of none could be a new one each time.
   */
  knows(id: string): boolean {
    return id === DEFAULT_ACCOUNT_ID || this.found.has(id);
  }

  /**
   * The account a payment was created on (the default one for payments older
   * than accounts), with its adapter bound to the payment so that every call
   * writes an operation entry.
   */
  async forPayment(p: PaymentScope): Promise<AccountAdapter> {
    const found = await this.find(p.accountId ?? DEFAULT_ACCOUNT_ID);
    if (!found) throw new Error(`payment ${p.id} names unknown account ${p.accountId}`);
    return this.bind(found, p);
  }

  /** An account's adapter bound to one payment: its calls are written to the operation log. */
  bind(found: AccountAdapter, p: PaymentScope): AccountAdapter {
    const logged = new LoggedProvider(this.kv, found.account, found.adapter, p, this.opts);
    return { account: found.account, adapter: logged, logged };
  }

  /** Drops what this isolate knows of an account, after it changed here. */
  forget(id: string) {
    this.cache.delete(id);
  }
}
