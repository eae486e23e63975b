import { UpstreamError } from "../errors.ts";
import { insertOperation, newOperation, type Operation, type OperationEntry } from "../db/operations.ts";
import { describeError, log } from "../log.ts";
import type { ProviderAccount } from "../accounts/types.ts";
import type { RefundStatus } from "../refunds/status.ts";
import type {
  CancelResult,
  InitiateRequest,
  InitiateResult,
  PaymentProvider,
  ProviderStatus,
  RefundOptions,
  RefundResult,
  WebhookNotice,
} from "./types.ts";
import type { PaymentScope } from "./registry.ts";
import type { Metrics } from "../metrics.ts";

/**
 * An adapter bound to one payment: every provider call (create, status,
 * refund, refund status, cancel) writes an operation entry with the shop, the
 * account and its orgId, the amount, the outcome and how long it took. The
 * entry is written beside the call, not in its atomic operation: a crash at
 * that moment can lose an entry, never a payment.
 */
export class LoggedProvider implements PaymentProvider {
  readonly name: string;
  readonly refundsCanReverse: boolean;

  constructor(
    private readonly kv: Deno.Kv,
    private readonly account: ProviderAccount,
    private readonly inner: PaymentProvider,
    private readonly scope: PaymentScope,
    private readonly opts: { now: () => number; metrics?: Metrics },
  ) {
    this.name = inner.name;
    this.refundsCanReverse = inner.refundsCanReverse;
  }

  initiate(req: InitiateRequest): Promise<InitiateResult> {
    return this.logged("create", () => this.inner.initiate(req), (r) => ({ providerRef: r.ref, status: "pending" }));
  }

  getStatus(ref: string): Promise<ProviderStatus> {
    return this.logged("status", () => this.inner.getStatus(ref), (s) => ({ providerRef: ref, status: s }), { ref });
  }

  cancel(ref: string): Promise<CancelResult> {
    return this.logged("cancel", () => this.inner.cancel(ref), (r) => ({
      providerRef: ref,
      status: r.cancelled ? "cancelled" : r.status,
    }), { ref });
  }

  refund(ref: string, amount: number, refundId: string, currency: string, opts?: RefundOptions): Promise<RefundResult> {
    return this.logged(
      "refund",
      () => this.inner.refund(ref, amount, refundId, currency, opts),
      (r) => ({ providerRef: r.ref, status: r.status }),
      { ref, refundId, amount },
    );
  }

  getRefundStatus(refundRef: string): Promise<RefundStatus> {
    return this.logged("refund_status", () => this.inner.getRefundStatus(refundRef), (s) => ({
      providerRef: refundRef,
      status: s,
    }), { ref: refundRef });
  }

  verifyWebhook(headers: Headers, rawBody: string, now: number): WebhookNotice | Promise<WebhookNotice> {
    return this.inner.verifyWebhook(headers, rawBody, now);
  }

  private async logged<T>(
    operation: Operation,
    call: () => Promise<T>,
    describe: (result: T) => { providerRef: string | null; status: string },
    known: { ref?: string; refundId?: string; amount?: number } = {},
  ): Promise<T> {
    const started = performance.now();
    const base = {
      at: this.opts.now(),
      shopId: this.scope.shopId,
      accountId: this.account.id,
      orgId: this.account.orgId,
      provider: this.account.provider,
      operation,
      paymentId: this.scope.id,
      refundId: known.refundId ?? this.scope.refundId ?? null,
      amount: known.amount ?? this.scope.amount,
      currency: this.scope.currency,
    };
    let entry: Omit<OperationEntry, "id">;
    try {
      const result = await call();
      entry = { ...base, ...describe(result), outcome: "ok", error: null, durationMs: elapsed(started) };
      this.write(entry);
      return result;
    } catch (err) {
      const upstream = err instanceof UpstreamError ? err : null;
      entry = {
        ...base,
        providerRef: known.ref ?? null,
        status: null,
        outcome: upstream?.timedOut ? "timeout" : "error",
        // The adapter's detail names the call and the status code, never a token or the provider's body.
        error: upstream ? upstream.detail : "internal error",
        durationMs: elapsed(started),
      };
      this.write(entry);
      throw err;
    }
  }

  /** Entries of successful calls held for the caller's own atomic write (see holdEntries); null: written at once. */
  private held: OperationEntry[] | null = null;

  /**
   * From now on, entries of successful calls wait in `takeHeld()` for the
   * caller to write with its own commit (init-payment stores them with the
   * payment: one commit instead of two). Failed calls are still written at
   * once, since no write of the caller follows them.
   */
  holdEntries(): this {
    this.held = [];
    return this;
  }

  /** The held entries, once; the caller writes them (or hands them to insertOperation if its write fails). */
  takeHeld(): OperationEntry[] {
    const held = this.held ?? [];
    this.held = null;
    return held;
  }

  private write(entry: Omit<OperationEntry, "id">) {
    this.opts.metrics?.observeProviderCall(entry.provider, entry.operation, entry.outcome, entry.durationMs / 1000);
    if (this.held && entry.outcome === "ok") {
      this.held.push(newOperation(entry));
      return;
    }
    insertOperation(this.kv, entry).catch((err) =>
      log.warn("operation log entry not written", { paymentId: entry.paymentId, error: describeError(err) })
    );
  }
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}
