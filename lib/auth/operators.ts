import { jwtVerify, SignJWT } from "jose";
import type { AppContext } from "../context.ts";
import { AppError, ValidationError } from "../errors.ts";
import { writeAudit } from "../db/audit.ts";
import {
  createOperator,
  createSession,
  deleteSession,
  getOperator,
  getOperatorByEmail,
  getSession,
  type Operator,
  releaseSigninAttempt,
  reserveSigninAttempt,
  type Session,
  updateOperatorPassword,
} from "../db/operators.ts";
import { randomId } from "../ids.ts";
import { hashPassword, newPassword, verifyPassword } from "./passwords.ts";

export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const FAILURE_WINDOW_MS = 15 * 60 * 1000;
/** Five failures are allowed in the window; further attempts are refused before the password is checked. */
const MAX_FAILURES = 5;
const MIN_PASSWORD_LENGTH = 12;

/** Creates an operator with a random one-time password, returned once to print; they set their own at first sign-in. */
export async function createOperatorAccount(
  ctx: AppContext,
  email: string,
): Promise<{ operator: Operator; password: string }> {
  const normalized = normalizeEmail(email);
  const password = newPassword();
  const operator: Operator = {
    id: randomId("op"),
    email: normalized,
    passwordHash: await hashPassword(password, ctx.config.passwordIterations),
    mustChangePassword: true,
    createdAt: ctx.now(),
  };
  await createOperator(ctx.kv, operator);
  await writeAudit(ctx.kv, {
    at: ctx.now(),
    actor: "cli",
    action: "operator.create",
    target: operator.email,
    before: null,
    after: { id: operator.id, email: operator.email },
  });
  return { operator, password };
}

function normalizeEmail(email: string): string {
  const e = email.trim().toLowerCase();
  if (!/^[^\s@]{1,64}@[^\s@]{1,253}$/.test(e)) {
    throw new ValidationError("Enter a valid email.", { email: "is not an email" });
  }
  return e;
}

/**
 * Checks an operator's password and opens a session. Attempts are counted per
 * account and per address before the password is checked (a right one is given
 * back); the sixth failure within 15 minutes, or the sixth of a burst still
 * being checked, gets 429.
 */
export async function signIn(
  ctx: AppContext,
  { email, password, ip }: { email: string; password: string; ip: string },
): Promise<{ token: string; session: Session; operator: Operator }> {
  const normalized = email.trim().toLowerCase().slice(0, 320);
  const scopes = [{ scope: "email", value: normalized }, { scope: "ip", value: ip }] as const;
  const window = { max: MAX_FAILURES, windowMs: FAILURE_WINDOW_MS, now: ctx.now() };
  if (!(await reserveSigninAttempt(ctx.kv, [...scopes], window))) {
    throw new AppError(429, "too_many_attempts", "Too many failed sign-ins. Try again in 15 minutes.", undefined, {
      "retry-after": String(FAILURE_WINDOW_MS / 1000),
    });
  }
  const operator = await getOperatorByEmail(ctx.kv, normalized);
  // Hash even for unknown accounts so timing does not reveal which emails exist.
  const ok = operator
    ? await verifyPassword(password, operator.passwordHash)
    : (await verifyPassword(password, DUMMY_HASH), false);
  if (!operator || !ok) {
    // The reserved attempt stays counted as a failure.
    await writeAudit(ctx.kv, {
      at: ctx.now(),
      actor: normalized,
      action: "signin.failed",
      target: ip,
      before: null,
      after: null,
    });
    throw new AppError(401, "invalid_credentials", "Wrong email or password.");
  }
  await releaseSigninAttempt(ctx.kv, [...scopes], { ...window, now: ctx.now() });
  const opened = await openSession(ctx, operator);
  await writeAudit(ctx.kv, {
    at: ctx.now(),
    actor: operator.email,
    action: "signin",
    target: ip,
    before: null,
    after: null,
  });
  return { ...opened, operator };
}

/** A new session for the operator, at their current session epoch, and its signed token. */
async function openSession(ctx: AppContext, operator: Operator): Promise<{ token: string; session: Session }> {
  const now = ctx.now();
  const session: Session = {
    id: randomId("ses"),
    operatorId: operator.id,
    email: operator.email,
    epoch: operator.sessionEpoch ?? 0,
    createdAt: now,
    expiresAt: now + SESSION_TTL_MS,
  };
  await createSession(ctx.kv, session);
  const token = await new SignJWT({ sid: session.id })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(operator.id)
    .setIssuedAt(Math.floor(now / 1000))
    .setExpirationTime(Math.floor(session.expiresAt / 1000))
    .sign(ctx.sessionKey);
  return { token, session };
}

const DUMMY_HASH = "pbkdf2-sha256$600000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/** The live session behind a token: signature, expiry, and not signed out. */
export async function authenticateOperator(
  ctx: AppContext,
  token: string | undefined,
): Promise<{ session: Session; operator: Operator } | null> {
  if (!token) return null;
  try {
    const { payload } = await jwtVerify(token, ctx.sessionKey, {
      algorithms: ["HS256"],
      currentDate: new Date(ctx.now()),
    });
    const session = typeof payload.sid === "string" ? await getSession(ctx.kv, payload.sid) : null;
    if (!session || session.expiresAt <= ctx.now() || session.operatorId !== payload.sub) return null;
    const operator = await getOperator(ctx.kv, session.operatorId);
    // A password change since this session opened ends it.
    if (!operator || (session.epoch ?? 0) !== (operator.sessionEpoch ?? 0)) return null;
    return { session, operator };
  } catch {
    return null;
  }
}

/** Ends a session at once: the token stops working even before it expires. */
export async function signOut(ctx: AppContext, session: Session) {
  await deleteSession(ctx.kv, session.id);
  await writeAudit(ctx.kv, {
    at: ctx.now(),
    actor: session.email,
    action: "signout",
    target: session.id.slice(0, 8),
    before: null,
    after: null,
  });
}

/**
 * Changes an operator's password and ends all their sessions; the caller gets
 * a fresh session (its token) in place of the one it used.
 */
export async function changePassword(
  ctx: AppContext,
  { operator, session }: { operator: Operator; session: Session },
  { current, next, repeat }: { current: string; next: string; repeat: string },
): Promise<{ token: string }> {
  if (!(await verifyPassword(current, operator.passwordHash))) {
    throw new ValidationError("The current password is wrong.", { current: "is wrong" });
  }
  if (next.length < MIN_PASSWORD_LENGTH || next.length > 200) {
    throw new ValidationError("Choose a longer password.", {
      password: `must be ${MIN_PASSWORD_LENGTH} to 200 characters`,
    });
  }
  if (next !== repeat) throw new ValidationError("The passwords differ.", { repeat: "does not match" });
  const updated = await updateOperatorPassword(
    ctx.kv,
    operator.id,
    await hashPassword(next, ctx.config.passwordIterations),
    operator,
  );
  if (!updated) throw new AppError(401, "signin_required", "Please sign in.");
  await deleteSession(ctx.kv, session.id);
  const { token } = await openSession(ctx, updated);
  await writeAudit(ctx.kv, {
    at: ctx.now(),
    actor: operator.email,
    action: "operator.password",
    target: operator.email,
    before: null,
    after: null,
  });
  return { token };
}
