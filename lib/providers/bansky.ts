import { isRefusalStatus, providerReason, ProviderRefusedError, UpstreamError } from "../errors.ts";
import { isTimeout, withTimeout } from "../timeout.ts";
import {
  banskyRefundStatusToOurs,
  banskyStatusToOurs,
  CancelResponse,
  checkBanskySignature,
  InitResponse,
  RefundResponse,
  RefundWebhookBody,
  SIGNATURE_HEADER,
  StatusResponse,
  WebhookBody,
} from "./bansky_wire.ts";
import type { z } from "zod";
import { type HttpAnswer, type HttpTransport, HttpTransportError } from "./http1_client.ts";
import { paymentIdOfRequestId } from "./request_id.ts";
import type { RefundStatus } from "../refunds/status.ts";
import {
  type CancelResult,
  type InitiateRequest,
  type InitiateResult,
  type PaymentProvider,
  type ProviderStatus,
  type RefundResult,
  type WebhookNotice,
  WebhookRejectedError,
} from "./types.ts";

export interface BanskyOptions {
  apiUrl: string;
  apiToken: string;
  webhookSecret: string;
  timeoutMs: number;
  /** How calls reach Bansky (kept-alive connections, or fetch behind an operator's proxy): shared by the adapters. */
  http: HttpTransport;
}

/**
 * Bansky over HTTP with our credentials. The token goes only into the
 * Authorization header; errors carry the status code, never the token or the
 * provider's body, except a refusal's own reason (its `error` field, see
 * ProviderRefusedError) for the operators' log.
 */
export class BanskyProvider implements PaymentProvider {
  readonly name = "bansky";
  /**
   * Bansky settles a refund once: `refunded` is final in its API as the sandbox imitates it, and nothing of a later
   * reversal is documented (bansky_wire.ts, docs/internal/bansky.md). Its refunds are not asked about again.
   */
  readonly refundsCanReverse = false;
  constructor(private readonly opts: BanskyOptions) {}

  async initiate(req: InitiateRequest): Promise<InitiateResult> {
    const body = {
      // Bansky deduplicates on it and echoes it in its webhooks (paymentIdOfRequestId reads our id back).
      id: req.requestId,
      email: req.email,
      name: req.name ?? undefined,
      amount: req.amount,
      currency: req.currency,
      type: req.type,
      // Bansky kept the original spelling of this field.
      sussessUrl: req.successUrl,
      errorUrl: req.errorUrl,
      postbackUrl: req.webhookUrl,
      // Bansky frames its pay page only for the sites named here (embedded checkouts).
      ...(req.embedded ? { frameAncestors: req.embedded.frameAncestors } : {}),
    };
    const res = await this.call("POST", "/payments", InitResponse, body);
    return { ref: res.id, url: res.url };
  }

  async getStatus(ref: string): Promise<ProviderStatus> {
    const res = await this.call("GET", `/payments/${encodeURIComponent(ref)}`, StatusResponse);
    return banskyStatusToOurs[res.status];
  }

  async cancel(ref: string): Promise<CancelResult> {
    // 409 is an answer, not a failure: Bansky could not cancel and says what the payment is instead.
    const res = await this.call("POST", `/payments/${encodeURIComponent(ref)}/cancel`, CancelResponse, {}, [409]);
    return res.status === "cancelled"
      ? { cancelled: true }
      : { cancelled: false, status: banskyStatusToOurs[res.status] };
  }

  // A retry needs nothing more: Bansky is idempotent on our refund id for good, not for a window.
  async refund(ref: string, amount: number, refundId: string): Promise<RefundResult> {
    // A refusal of a retry is not taken as proof that no earlier call made the refund (ProviderRefusedError's
    // madeNothing): whether Bansky answers a refund made under our id before it checks the amount left is not
    // confirmed, and taken wrongly, the refund would fail while its money went back, and could be made again.
    const res = await this.call("POST", `/payments/${encodeURIComponent(ref)}/refunds`, RefundResponse, {
      id: refundId,
      amount,
    });
    return { ref: res.id, status: banskyRefundStatusToOurs[res.status] };
  }

  async getRefundStatus(refundRef: string): Promise<RefundStatus> {
    const res = await this.call("GET", `/refunds/${encodeURIComponent(refundRef)}`, RefundResponse);
    return banskyRefundStatusToOurs[res.status];
  }

  verifyWebhook(headers: Headers, rawBody: string, now: number): WebhookNotice {
    const problem = checkBanskySignature(
      this.opts.webhookSecret,
      headers.get(SIGNATURE_HEADER),
      rawBody,
      Math.floor(now / 1000),
    );
    if (problem) throw new WebhookRejectedError(problem);
    let parsed;
    try {
      const json = JSON.parse(rawBody);
      // Refund news carries `type: "refund"`; payment news has no type (its original shape).
      if (json?.type === "refund") {
        const r = RefundWebhookBody.parse(json);
        return {
          kind: "refund",
          eventId: r.eventId,
          refundId: r.id,
          ref: r.ref,
          claimedStatus: banskyRefundStatusToOurs[r.status],
        };
      }
      parsed = WebhookBody.parse(json);
    } catch {
      throw new WebhookRejectedError("malformed body");
    }
    // Every payment we create carries our id, which Bansky echoes. Without it there is nothing to look up (we keep
    // no index of Bansky's references: it cost init-payment a random write); the status check settles the payment.
    if (!parsed.id) {
      return { kind: "ignored", eventId: parsed.eventId, warning: "payment webhook without our payment id" };
    }
    return {
      kind: "payment",
      eventId: parsed.eventId,
      paymentId: paymentIdOfRequestId(parsed.id),
      ref: parsed.ref,
      claimedStatus: banskyStatusToOurs[parsed.status],
      // Bansky's pending is a payment still open: only paid took money.
      claimsMoney: parsed.status === "paid",
    };
  }

  /** One API call, the body read included, within the timeout. */
  private call<T>(
    method: string,
    path: string,
    schema: z.ZodType<T>,
    body?: unknown,
    answers: number[] = [],
  ): Promise<T> {
    return withTimeout(this.opts.timeoutMs, async (signal) => {
      let res: HttpAnswer;
      try {
        res = await this.opts.http.send(this.opts.apiUrl + path, {
          method,
          headers: {
            authorization: `Bearer ${this.opts.apiToken}`,
            ...(body ? { "content-type": "application/json" } : {}),
          },
          body: body ? JSON.stringify(body) : undefined,
          signal,
        });
      } catch (err) {
        const timedOut = isTimeout(err);
        // The transport's words say what went wrong (no connection, one closed before its answer, an answer over
        // 1 MiB); they hold no header of ours, so never the token.
        const why = timedOut ? "timed out" : err instanceof HttpTransportError ? err.message : "unreachable";
        throw new UpstreamError(timedOut, `${method} ${path} ${why}`);
      }
      const ok = res.status >= 200 && res.status < 300;
      if (!ok && !answers.includes(res.status)) {
        if (isRefusalStatus(res.status)) {
          // Bansky said no to the request itself: its reason is for the operators, who need it to act.
          const said = parseJson(res.body);
          const reason = providerReason(typeof said?.error === "string" ? said.error : "");
          throw new ProviderRefusedError(
            `${method} ${path} answered ${res.status}${reason ? `: ${reason}` : ""}`,
            res.status,
          );
        }
        throw new UpstreamError(false, `${method} ${path} answered ${res.status}`, res.status);
      }
      const json = parseJson(res.body);
      const parsed = schema.safeParse(json);
      if (!parsed.success) throw new UpstreamError(false, `${method} ${path} answered an unexpected body`);
      return parsed.data;
    });
  }
}

const decoder = new TextDecoder();

/** An answer's body as JSON, or undefined when it is not JSON. */
function parseJson(body: Uint8Array): Record<string, unknown> | undefined {
  try {
    return JSON.parse(decoder.decode(body));
  } catch {
    return undefined;
  }
}
