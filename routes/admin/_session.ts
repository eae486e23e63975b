import type { Context, MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import type { AppContext } from "../../lib/context.ts";
import { authenticateOperator, SESSION_TTL_MS } from "../../lib/auth/operators.ts";
import { constantTimeEqual } from "../../lib/crypto.ts";
import type { Operator, Session } from "../../lib/db/operators.ts";
import { AppError } from "../../lib/errors.ts";
import { randomId } from "../../lib/ids.ts";

export const SESSION_COOKIE = "__Host-apay_session";
export const CSRF_COOKIE = "__Host-apay_csrf";

/** What the CSRF middleware gives every form page: the token to embed and the parsed form fields. */
export type CsrfEnv = { Variables: { csrf: string; form: Record<string, string> } };
export type ConsoleEnv = { Variables: CsrfEnv["Variables"] & { operator: Operator; session: Session } };

/**
 * CSRF defence for every form: the request must come from our own pages
 * (Sec-Fetch-Site / Origin) and echo the random token from our `__Host-`
 * cookie (double submit). GETs get the cookie set so forms can carry it.
 */
export function csrfProtection(ctx: AppContext): MiddlewareHandler<CsrfEnv> {
  const ourOrigin = new URL(ctx.config.publicBaseUrl).origin;
  return async (c, next) => {
    let token = getCookie(c, CSRF_COOKIE);
    if (c.req.method === "GET" || c.req.method === "HEAD") {
      if (!token) {
        token = randomId("csrf");
        setCookie(c, CSRF_COOKIE, token, { path: "/", secure: true, httpOnly: true, sameSite: "Strict" });
      }
      c.set("csrf", token);
      return await next();
    }
    const site = c.req.header("sec-fetch-site");
    const origin = c.req.header("origin");
    const sameOrigin = (!site || site === "same-origin") &&
      (!origin || origin === ourOrigin || origin === new URL(c.req.url).origin);
    // Refuse what we can from the headers alone, so a cross-site or cookie-less post is never parsed.
    if (!sameOrigin || !token) throw csrfRejected();
    const form = await readForm(c);
    if (!form._csrf || !constantTimeEqual(form._csrf, token)) throw csrfRejected();
    c.set("csrf", token);
    c.set("form", form);
    await next();
  };
}

function csrfRejected() {
  return new AppError(
    403,
    "csrf_rejected",
    "This form is out of date or came from another site. Reload the page and try again.",
  );
}

/** Form fields as strings (files and repeated fields are not used by our forms). */
async function readForm(c: Context): Promise<Record<string, string>> {
  const type = c.req.header("content-type") ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded") && !type.startsWith("multipart/form-data")) return {};
  const body = await c.req.parseBody({ all: true });
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(body)) {
    const value = Array.isArray(v) ? v.filter((x) => typeof x === "string").join("\n") : v;
    if (typeof value === "string") out[k] = value;
  }
  return out;
}

const ALLOWED_BEFORE_PASSWORD_CHANGE = new Set(["/admin/password", "/admin/logout"]);

/** Requires a live operator session; pages redirect to sign-in, other requests get 401. */
export function requireOperator(ctx: AppContext): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    const auth = await authenticateOperator(ctx, getCookie(c, SESSION_COOKIE));
    if (!auth) {
      if (c.req.method === "GET") return c.redirect(`/admin/login?next=${encodeURIComponent(c.req.path)}`, 303);
      throw new AppError(401, "signin_required", "Please sign in.");
    }
    // A one-time password opens the password page and sign-out, nothing else, for reading or for writing.
    if (auth.operator.mustChangePassword && !ALLOWED_BEFORE_PASSWORD_CHANGE.has(c.req.path)) {
      if (c.req.method === "GET") return c.redirect("/admin/password", 303);
      throw new AppError(403, "password_change_required", "Choose your own password first.");
    }
    c.set("operator", auth.operator);
    c.set("session", auth.session);
    await next();
  };
}

export function setSessionCookie(c: Context, token: string) {
  setCookie(c, SESSION_COOKIE, token, {
    path: "/",
    secure: true,
    httpOnly: true,
    sameSite: "Strict",
    maxAge: SESSION_TTL_MS / 1000,
  });
}

export function clearSessionCookie(c: Context) {
  setCookie(c, SESSION_COOKIE, "", { path: "/", secure: true, httpOnly: true, sameSite: "Strict", maxAge: 0 });
}

/** A same-site path to return to after sign-in; anything else goes to the overview. */
export function safeNext(next: string | undefined): string {
  return next && /^\/(admin|internal)(\/[\w\-./?=&%]*)?$/.test(next) ? next : "/admin";
}

const REVEAL_COOKIE = "__Host-apay_reveal";

/** What a POST hands to the page it redirects to: a message and secrets shown once. */
export interface Reveal {
  path: string;
  flash?: string;
  secrets?: [string, string][];
}

/**
 * Post/redirect/get for actions that make a secret: the secret rides to the
 * next page in a short-lived, HTTP-only cookie, so reloading that page shows
 * it no more and never repeats the action.
 */
export function redirectWithReveal(c: Context, reveal: Reveal) {
  setCookie(c, REVEAL_COOKIE, JSON.stringify(reveal), {
    path: "/",
    secure: true,
    httpOnly: true,
    sameSite: "Strict",
    maxAge: 120,
  });
  return c.redirect(reveal.path, 303);
}

/** The reveal meant for this page, if any; read once, then the cookie is gone. */
export function takeReveal(c: Context): Reveal | undefined {
  const raw = getCookie(c, REVEAL_COOKIE);
  if (!raw) return undefined;
  setCookie(c, REVEAL_COOKIE, "", { path: "/", secure: true, httpOnly: true, sameSite: "Strict", maxAge: 0 });
  try {
    const reveal = JSON.parse(raw) as Reveal;
    return reveal.path === c.req.path ? reveal : undefined;
  } catch {
    return undefined;
  }
}
