/**
 * The one family of domain errors. Routes never build error bodies by hand:
 * `app.onError` maps these to a status and `{status:"error",error:{...}}`.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields?: Record<string, string>,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * 422: the provider a payment goes to cannot take its amount exactly in its currency (Stripe takes MGA in whole
 * ariary): it takes multiples of `step` minor units. `problem` is the shop's message for `fields.amount`.
 */
export class AmountNotAcceptedError extends AppError {
  constructor(readonly currency: string, readonly step: number, problem: string) {
    super(422, "amount_not_accepted", "The amount is invalid.", { amount: problem });
  }
}

export class ValidationError extends AppError {
  constructor(message: string, fields?: Record<string, string>) {
    super(400, "invalid_request", message, fields);
  }
}

export class UnauthorizedError extends AppError {
  constructor(message = "Missing, unknown or revoked API key.") {
    super(401, "unauthorized", message);
  }
}

export class NotFoundError extends AppError {
  constructor(message = "Not found.") {
    super(404, "not_found", message);
  }
}

/** A KV check failed: someone else wrote first. Callers re-read and retry, or surface 409. */
export class ConflictError extends AppError {
  constructor(message = "The resource changed concurrently; retry.", code = "conflict") {
    super(409, code, message, undefined, { "retry-after": "1" });
  }
}

export class IdempotencyMismatchError extends AppError {
  constructor(message: string) {
    super(422, "idempotency_mismatch", message);
  }
}

/**
 * A request named like an earlier one with another body: the message says which name matched, the shop's own id or
 * its Idempotency-Key, since a shop that sends both (or a key reused by mistake) cannot tell otherwise.
 */
export function idempotencyMismatch(
  by: "shop_ref" | "idempotency_key",
  what: "a payment" | "an invoice" | "a refund" | "a checkout session",
): IdempotencyMismatchError {
  const name = by === "shop_ref" ? "id" : "Idempotency-Key";
  return new IdempotencyMismatchError(`This ${name} was already used for ${what} with different details.`);
}

/**
 * The provider answered badly (502) or not in time (504). The message never carries provider internals; `answered`
 * is the HTTP status it answered, if it did (no secret), for callers that tell "it does not know this" from an outage.
 */
export class UpstreamError extends AppError {
  constructor(readonly timedOut: boolean, readonly detail: string, readonly answered: number | null = null) {
    super(
      timedOut ? 504 : 502,
      timedOut ? "provider_timeout" : "provider_error",
      timedOut ? "The payment provider did not answer in time." : "The payment provider failed.",
    );
  }
}

/**
 * The provider answered and said no to the request itself (400, 402, 404, 422): asking again the same way gets the
 * same no, unlike no answer (a timeout, a connection error, a 5xx, a 429), which may pass. A refund it refuses when
 * first asked fails (lib/refunds/settle.ts). `detail` may quote the provider's reason, for operators only (the
 * operation log); the shop sees the same message as for any provider failure.
 *
 * `madeNothing`: the adapter knows the refusal also means no earlier call for the same thing was made (Stripe's retry
 * looked for one first and found none). Without it, a refusal of a retry says nothing of what a call whose answer was
 * lost did.
 */
export class ProviderRefusedError extends UpstreamError {
  constructor(detail: string, answered: number, readonly madeNothing = false) {
    super(false, detail, answered);
  }
}

/**
 * The HTTP answers that refuse the request itself (see ProviderRefusedError); an adapter may narrow them. Not 409: a
 * conflict is as often another request for the same thing still under way (Stripe's idempotency conflicts are), and
 * failing a refund on it could fail one that request is making.
 */
export function isRefusalStatus(status: number): boolean {
  return status === 400 || status === 402 || status === 404 || status === 422;
}

/**
 * A provider's reason for a refusal, fit for the operation log: one line, at most 200 characters, without anything
 * shaped like a key or a token (a provider may echo a credential in its message).
 */
export function providerReason(text: string): string {
  return text
    .replace(/\p{Cc}+/gu, " ")
    .replace(/\b(sk|rk|pk)_(live|test)_[\w*]+/g, "[key]")
    .replace(/\bwhsec_[\w*]+/g, "[secret]")
    .replace(/\bBearer\s+\S+/gi, "Bearer [token]")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 200);
}
