import type { AppContext } from "../context.ts";
import { constantTimeEqual, hmacSha256 } from "../crypto.ts";
import { base64url, randomBytes } from "../ids.ts";

/**
 * The form token: the buyer's page carries it, the submit must echo it. It
 * replaces a CSRF cookie (a form framed on a shop's site gets no cookies of
 * ours) and names the submit for idempotency: a double click sends the same
 * token, so both clicks name the same payment.
 *
 * `<expiry s>.<nonce>.<mac>`, the MAC an HMAC over the form id, the expiry and
 * the nonce with a key derived from the session secret, so nobody can make
 * one for a form, extend one, or move one to another form.
 */

/** How long a buyer may keep the form open before sending it. */
export const FORM_TOKEN_TTL_MS = 2 * 60 * 60 * 1000;

const keys = new WeakMap<AppContext, Uint8Array>();

/** A key of its own, derived from the session secret, so a form token can never pass for anything else. */
function tokenKey(ctx: AppContext): Uint8Array {
  let key = keys.get(ctx);
  if (!key) keys.set(ctx, key = hmacSha256(ctx.sessionKey, "aimbrellapay form token key v1"));
  return key;
}

function mac(ctx: AppContext, formId: string, expiresAtS: string, nonce: string): string {
  return base64url(hmacSha256(tokenKey(ctx), `form-token\0${formId}\0${expiresAtS}\0${nonce}`));
}

/** A fresh token for one rendering of the form page. */
export function issueFormToken(ctx: AppContext, formId: string, now = ctx.now()): string {
  const expiresAtS = String(Math.floor((now + FORM_TOKEN_TTL_MS) / 1000));
  const nonce = base64url(randomBytes(16));
  return `${expiresAtS}.${nonce}.${mac(ctx, formId, expiresAtS, nonce)}`;
}

export type TokenCheck = { ok: true; nonce: string } | { ok: false; reason: "invalid" | "expired" };

/** Checks a submitted token against the form it was posted to; the nonce names the submit. */
export function checkFormToken(ctx: AppContext, formId: string, token: string, now = ctx.now()): TokenCheck {
  const m = /^(\d{1,12})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m || !constantTimeEqual(m[3], mac(ctx, formId, m[1], m[2]))) return { ok: false, reason: "invalid" };
  // Checked after the MAC, so an expiry only ever tells the truth about a token we made.
  if (Number(m[1]) * 1000 <= now) return { ok: false, reason: "expired" };
  return { ok: true, nonce: m[2] };
}
