import { type Context, Hono, type Next } from "hono";
import { Page, renderPage } from "../components/html.tsx";
import { randomId } from "../lib/ids.ts";
import { formatAmount } from "../lib/money.ts";
import { log } from "../lib/log.ts";
import {
  type BanskyRefundStatus,
  type BanskyStatus,
  type RefundWebhookBody,
  signBanskyWebhook,
  type WebhookBody,
} from "../lib/providers/bansky_wire.ts";

/**
 * A real HTTP imitation of Bansky for development, tests and benchmarks: it
 * creates payments, hosts a pay page with Pay and Decline, redirects the buyer
 * and sends signed webhooks (retried until answered 2xx). Fault knobs make it
 * slow, flaky, repetitive or out of order on purpose.
 */
export interface SandboxKnobs {
  /** Added to every API answer. */
  latencyMs: number;
  /** Share (0..1) of API calls answered 503. */
  failureRate: number;
  /** Send every webhook twice. */
  duplicateWebhooks: boolean;
  /** After the final webhook, send a stale "pending" one. */
  outOfOrderWebhooks: boolean;
  /** Wait this long before sending a webhook. */
  webhookDelayMs: number;
  /** Send no webhooks at all (lost in transit): only a status check finds out. */
  dropWebhooks: boolean;
  /** Answer every cancel 409 "still pending", as for money already on its way: the payment can still be paid. */
  refuseCancels: boolean;
  /** Share (0..1) of refunds that fail (at once, or when an async refund settles). */
  refundFailureRate: number;
  /** Answer refunds "pending" and settle them later (after webhookDelayMs, at least 100 ms) with a webhook. */
  asyncRefunds: boolean;
}

export const DEFAULT_KNOBS: SandboxKnobs = {
  latencyMs: 0,
  failureRate: 0,
  duplicateWebhooks: false,
  outOfOrderWebhooks: false,
  webhookDelayMs: 0,
  dropWebhooks: false,
  refuseCancels: false,
  refundFailureRate: 0,
  asyncRefunds: false,
};

interface SandboxRefund {
  ref: string;
  /** Our refund id, on which the sandbox is idempotent. */
  merchantId: string;
  paymentRef: string;
  amount: number;
  status: BanskyRefundStatus;
}

interface SandboxPayment {
  ref: string;
  /** The merchant account that created it: only that account's token sees it. */
  merchant: string;
  merchantId: string;
  email: string;
  amount: number;
  currency: string;
  status: BanskyStatus;
  successUrl: string;
  errorUrl: string;
  webhookUrl: string;
  /** Origins that may frame its pay page (an embedded checkout); empty = nobody, as for every other page. */
  frameAncestors: string[];
}

/**
 * The sandbox's own page headers, the same whether it runs on its own port or inside the app (where it is
 * mounted ahead of the app's page headers): a pay page may be framed only by the sites named when its
 * payment was created, as a provider that supports embedding lets merchants register their domains.
 */
function pageHeaders(frameAncestors: string[] = []): Record<string, string> {
  const ancestors = frameAncestors.length ? frameAncestors.join(" ") : "'none'";
  return {
    "content-security-policy": `default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors ${ancestors}`,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
  };
}

/** Only bare origins go into frame-ancestors: anything else would let the creator add CSP source lists. */
function originsOnly(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  return value.slice(0, 25).filter((o): o is string =>
    typeof o === "string" && /^https?:\/\/[a-z0-9.:[\]-]+$/i.test(o)
  );
}

export interface SandboxOptions {
  apiToken: string;
  webhookSecret: string;
  /** Where buyers reach the sandbox, e.g. http://localhost:8000/sandbox/bansky. */
  publicUrl: string;
  knobs?: Partial<SandboxKnobs>;
  /**
   * More merchant accounts by name, each with its own token and webhook
   * secret (the one above is the merchant "default"), so routing to several
   * accounts is tested end to end.
   */
  merchants?: Record<string, { apiToken: string; webhookSecret: string }>;
}

const WEBHOOK_RETRY_MS = [200, 500, 1000, 2000, 5000, 10_000, 20_000, 30_000, 60_000, 60_000, 60_000];

export class Sandbox {
  readonly knobs: SandboxKnobs;
  readonly app = new Hono();
  private readonly payments = new Map<string, SandboxPayment>();
  private readonly byMerchantId = new Map<string, string>();
  private readonly refunds = new Map<string, SandboxRefund>();
  private readonly refundsByMerchantId = new Map<string, string>();
  /** Per payment ref: the amount its pending and refunded refunds hold. */
  private readonly refundedByPayment = new Map<string, number>();
  private closed = false;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  /** Webhooks answered 2xx, for tests that count deliveries. */
  webhooksAccepted = 0;
  /** API calls received, for tests that count provider round trips. */
  readonly calls = { create: 0, status: 0, cancel: 0, refund: 0, refundStatus: 0 };

  constructor(private readonly opts: SandboxOptions) {
    this.knobs = { ...DEFAULT_KNOBS, ...opts.knobs };
    const merchants = { default: { apiToken: opts.apiToken, webhookSecret: opts.webhookSecret }, ...opts.merchants };
    for (const [name, m] of Object.entries(merchants)) {
      this.merchantByToken.set(m.apiToken, name);
      this.secretOfMerchant.set(name, m.webhookSecret);
    }
    this.routes();
  }

  /** Stops pending webhook retries (tests and shutdown). */
  close() {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
  }

  /** Merchant names by API token. */
  private readonly merchantByToken = new Map<string, string>();
  /** Webhook secrets by merchant name. */
  private readonly secretOfMerchant = new Map<string, string>();

  /** The merchant account a payment or refund reference belongs to (tests check where calls went). */
  merchantOf(ref: string): string | undefined {
    const refund = this.refunds.get(ref);
    return this.payments.get(refund ? refund.paymentRef : ref)?.merchant;
  }

  /** The calling merchant's payment by reference; another merchant's is not found. */
  private ownPayment(c: Context, ref: string): SandboxPayment | undefined {
    const p = this.payments.get(ref);
    return p && p.merchant === this.caller(c) ? p : undefined;
  }

  private caller(c: Context): string | undefined {
    return this.merchantByToken.get(c.req.header("authorization")?.replace(/^Bearer /, "") ?? "");
  }

  /** The secret a webhook is signed with: its payment's merchant's. */
  private secretFor(body: WebhookBody | RefundWebhookBody): string {
    const merchant = this.merchantOf(body.ref);
    return (merchant && this.secretOfMerchant.get(merchant)) ?? this.opts.webhookSecret;
  }

  private routes() {
    const app = this.app;
    const api = new Hono();
    api.use("/payments", this.apiGate);
    api.use("/payments/*", this.apiGate);
    // The knobs take the token but not the faults they set: a failure rate of 1 must still be turned off.
    api.use("/knobs", this.tokenGate);
    api.post("/payments", async (c) => {
      this.calls.create++;
      const b = await c.req.json().catch(() => null);
      if (!b || typeof b.id !== "string" || !Number.isInteger(b.amount) || typeof b.postbackUrl !== "string") {
        return c.json({ error: "bad request" }, 400);
      }
      // Bansky is idempotent on the merchant's id: a retry gets the same payment.
      const known = this.byMerchantId.get(b.id);
      const p = known ? this.payments.get(known)! : this.create(b, this.caller(c)!);
      return c.json({ id: p.ref, url: `${this.opts.publicUrl}/pay/${p.ref}` }, known ? 200 : 201);
    });
    api.get("/payments/:ref", (c) => {
      this.calls.status++;
      const p = this.ownPayment(c, c.req.param("ref"));
      return p
        ? c.json({ id: p.ref, merchantId: p.merchantId, status: p.status })
        : c.json({ error: "not found" }, 404);
    });
    // A cancelled payment takes no more money: its pay page and complete refuse it.
    api.post("/payments/:ref/cancel", (c) => {
      this.calls.cancel++;
      const p = this.ownPayment(c, c.req.param("ref"));
      if (!p) return c.json({ error: "not found" }, 404);
      if (p.status === "pending" && !this.knobs.refuseCancels) p.status = "cancelled";
      const body = { id: p.ref, merchantId: p.merchantId, status: p.status };
      return p.status === "cancelled" ? c.json(body) : c.json({ ...body, error: "not cancellable" }, 409);
    });
    api.use("/refunds/*", this.apiGate);
    api.post("/payments/:ref/refunds", async (c) => {
      this.calls.refund++;
      const b = await c.req.json().catch(() => null);
      if (!b || typeof b.id !== "string" || !Number.isInteger(b.amount) || b.amount <= 0) {
        return c.json({ error: "bad request" }, 400);
      }
      const p = this.ownPayment(c, c.req.param("ref"));
      if (!p) return c.json({ error: "not found" }, 404);
      // Idempotent on the merchant's refund id: a retry gets the same refund as it is now.
      const known = this.refundsByMerchantId.get(b.id);
      const r = known ? this.refunds.get(known)! : this.refund(p, b.id, b.amount);
      return c.json({ id: r.ref, status: r.status }, known ? 200 : 201);
    });
    api.get("/refunds/:ref", (c) => {
      this.calls.refundStatus++;
      const r = this.refunds.get(c.req.param("ref"));
      return r && this.merchantOf(r.ref) === this.caller(c)
        ? c.json({ id: r.ref, status: r.status })
        : c.json({ error: "not found" }, 404);
    });
    // For tests and benchmarks: what the buyer's click does, without a browser.
    api.post("/payments/:ref/complete", async (c) => {
      const { outcome } = await c.req.json().catch(() => ({}));
      const redirect = this.complete(c.req.param("ref"), outcome);
      return redirect ? c.json({ redirect }) : c.json({ error: "not found or not pending" }, 404);
    });
    api.get("/knobs", (c) => c.json(this.knobs));
    api.post("/knobs", async (c) => {
      Object.assign(this.knobs, pickKnobs(await c.req.json().catch(() => ({}))));
      return c.json(this.knobs);
    });
    app.route("/", api);

    app.get("/pay/:ref", (c) => {
      const p = this.payments.get(c.req.param("ref"));
      if (!p) {
        return c.html(renderPage(<SandboxMessage text="This sandbox payment does not exist." />), 404, pageHeaders());
      }
      return c.html(renderPage(<PayPage payment={p} />), 200, pageHeaders(p.frameAncestors));
    });
    app.post("/pay/:ref/:outcome", (c) => {
      const redirect = this.complete(c.req.param("ref"), c.req.param("outcome"));
      if (!redirect) {
        // A second press after the payment closed (another tab paid it, it expired): the page as it stands now.
        const p = this.payments.get(c.req.param("ref"));
        const page = p ? <PayPage payment={p} /> : <SandboxMessage text="This payment is no longer open." />;
        return c.html(renderPage(page), 409, pageHeaders(p?.frameAncestors));
      }
      return c.redirect(redirect, 303);
    });
  }

  /** Our bearer token, or 401. */
  private tokenGate = async (c: Context, next: Next) => {
    if (this.caller(c) === undefined) return c.json({ error: "unauthorized" }, 401);
    await next();
  };

  /** The API checks our bearer token and applies the latency and failure knobs; the buyer's pages do not. */
  private apiGate = async (c: Context, next: Next) => {
    if (this.caller(c) === undefined) return c.json({ error: "unauthorized" }, 401);
    if (this.knobs.latencyMs) await sleep(this.knobs.latencyMs);
    if (Math.random() < this.knobs.failureRate) return c.json({ error: "sandbox fault" }, 503);
    await next();
  };

  private create(b: Record<string, unknown>, merchant: string): SandboxPayment {
    const p: SandboxPayment = {
      ref: randomId("bsk"),
      merchant,
      merchantId: String(b.id),
      email: String(b.email ?? ""),
      amount: Number(b.amount),
      currency: String(b.currency ?? ""),
      status: "pending",
      successUrl: String(b.sussessUrl ?? b.successUrl ?? ""),
      errorUrl: String(b.errorUrl ?? ""),
      webhookUrl: String(b.postbackUrl),
      frameAncestors: originsOnly(b.frameAncestors),
    };
    this.payments.set(p.ref, p);
    this.byMerchantId.set(p.merchantId, p.ref);
    return p;
  }

  /** Settles a pending payment, schedules its webhooks and returns where the buyer goes next. */
  private complete(ref: string, outcome: unknown): string | null {
    const p = this.payments.get(ref);
    if (!p || p.status !== "pending" || (outcome !== "paid" && outcome !== "declined")) return null;
    p.status = outcome;
    const redirect = outcome === "paid" ? p.successUrl : p.errorUrl;
    if (this.knobs.dropWebhooks) return redirect;
    const final = this.webhookBody(p, p.status);
    const delay = this.knobs.webhookDelayMs;
    this.sendWebhook(p.webhookUrl, final, delay);
    if (this.knobs.duplicateWebhooks) this.sendWebhook(p.webhookUrl, final, delay);
    if (this.knobs.outOfOrderWebhooks) this.sendWebhook(p.webhookUrl, this.webhookBody(p, "pending"), delay + 50);
    return redirect;
  }

  /**
   * A new refund: it fails at once when the payment is not paid or the amount
   * is more than is left, otherwise it succeeds or fails by the knobs, now or
   * (asyncRefunds) later with a webhook.
   */
  private refund(p: SandboxPayment, merchantId: string, amount: number): SandboxRefund {
    const spent = this.refundedByPayment.get(p.ref) ?? 0;
    const r: SandboxRefund = { ref: randomId("bskr"), merchantId, paymentRef: p.ref, amount, status: "pending" };
    this.refunds.set(r.ref, r);
    this.refundsByMerchantId.set(merchantId, r.ref);
    const outcome = (): BanskyRefundStatus => (Math.random() < this.knobs.refundFailureRate ? "failed" : "refunded");
    if (p.status !== "paid" || spent + amount > p.amount) r.status = "failed";
    else if (!this.knobs.asyncRefunds) r.status = outcome();
    if (r.status !== "failed") this.refundedByPayment.set(p.ref, spent + amount);
    if (r.status === "pending") {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        r.status = outcome();
        if (r.status === "failed") this.refundedByPayment.set(p.ref, (this.refundedByPayment.get(p.ref) ?? 0) - amount);
        if (this.knobs.dropWebhooks) return;
        const body: RefundWebhookBody = {
          type: "refund",
          eventId: randomId("evt"),
          id: merchantId,
          ref: r.ref,
          status: r.status,
        };
        this.sendWebhook(p.webhookUrl, body, 0);
      }, Math.max(100, this.knobs.webhookDelayMs));
      this.timers.add(timer);
    }
    return r;
  }

  private webhookBody(p: SandboxPayment, status: BanskyStatus): WebhookBody {
    return { eventId: randomId("evt"), id: p.merchantId, ref: p.ref, status };
  }

  private sendWebhook(url: string, body: WebhookBody | RefundWebhookBody, delayMs: number, attempt = 0) {
    const timer = setTimeout(async () => {
      this.timers.delete(timer);
      if (this.closed) return;
      const text = JSON.stringify(body);
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "bansky-signature": signBanskyWebhook(this.secretFor(body), Math.floor(Date.now() / 1000), text),
          },
          body: text,
          signal: AbortSignal.timeout(10_000),
        });
        await res.body?.cancel();
        if (res.ok) {
          this.webhooksAccepted++;
          return;
        }
      } catch {
        // The receiver is down: retry below, as a real provider would.
      }
      if (attempt < WEBHOOK_RETRY_MS.length && !this.closed) {
        this.sendWebhook(url, body, WEBHOOK_RETRY_MS[attempt], attempt + 1);
      } else {
        log.warn("sandbox gave up on a webhook", { eventId: body.eventId });
      }
    }, delayMs);
    this.timers.add(timer);
  }
}

function pickKnobs(input: Record<string, unknown>): Partial<SandboxKnobs> {
  const out: Partial<SandboxKnobs> = {};
  if (typeof input.latencyMs === "number") out.latencyMs = Math.max(0, input.latencyMs);
  if (typeof input.failureRate === "number") out.failureRate = Math.min(1, Math.max(0, input.failureRate));
  if (typeof input.duplicateWebhooks === "boolean") out.duplicateWebhooks = input.duplicateWebhooks;
  if (typeof input.outOfOrderWebhooks === "boolean") out.outOfOrderWebhooks = input.outOfOrderWebhooks;
  if (typeof input.webhookDelayMs === "number") out.webhookDelayMs = Math.max(0, input.webhookDelayMs);
  if (typeof input.dropWebhooks === "boolean") out.dropWebhooks = input.dropWebhooks;
  if (typeof input.refuseCancels === "boolean") out.refuseCancels = input.refuseCancels;
  if (typeof input.refundFailureRate === "number") {
    out.refundFailureRate = Math.min(1, Math.max(0, input.refundFailureRate));
  }
  if (typeof input.asyncRefunds === "boolean") out.asyncRefunds = input.asyncRefunds;
  return out;
}

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function PayPage({ payment }: { payment: SandboxPayment }) {
  return (
    <Page title="Bansky sandbox: pay">
      <h1>Bansky sandbox</h1>
      <p class="muted">A test payment page. No money moves.</p>
      <div class="card">
        <p>
          Pay <strong>{formatAmount(payment.amount, payment.currency)}</strong> as {payment.email}
        </p>
        {payment.status === "pending"
          ? (
            <>
              <form class="inline" method="post" action={`${payment.ref}/paid`}>
                <button type="submit">Pay</button>
              </form>
              <form class="inline" method="post" action={`${payment.ref}/declined`}>
                <button type="submit" class="secondary">Decline</button>
              </form>
            </>
          )
          : (
            <>
              <p>This payment is {payment.status}.</p>
              {/* Not a dead end: back where the merchant sends a buyer after paying (or not). */}
              <p>
                <a href={payment.status === "paid" ? payment.successUrl : payment.errorUrl}>Back to the shop</a>
              </p>
            </>
          )}
      </div>
    </Page>
  );
}

function SandboxMessage({ text }: { text: string }) {
  return (
    <Page title="Bansky sandbox">
      <h1>Bansky sandbox</h1>
      <p>{text}</p>
    </Page>
  );
}
