import { type JWTPayload, jwtVerify, SignJWT } from "jose";
import type { AppContext } from "../context.ts";
import { AppError, ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import { addAuditOps, writeAudit } from "../db/audit.ts";
import {
  addEndSessionOps,
  addSessionOps,
  createOperator,
  createSession,
  deleteSession,
  getOperator,
  getOperatorByEmail,
  getOperatorEntry,
  getSession,
  hasOperators,
  lastSignIns,
  listOperatorEntries,
  type Operator,
  releaseSigninAttempt,
  replaceOperator,
  reserveSigninAttempt,
  type Session,
  updateOperatorPassword,
} from "../db/operators.ts";
import { activeTokenEntries, listOperatorTokens, tokensRevision } from "../db/operator_tokens.ts";
import { randomId } from "../ids.ts";
import { hashPassword, newPassword, verifyPassword } from "./passwords.ts";

export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/**
 * The audience of an operator's session token. The portal's tokens share the signing key (lib/auth/portal.ts, with
 * audiences of their own), so each kind names what it is and is checked for it, whatever the store holds.
 */
const SESSION_AUDIENCE = "operator-session";

/**
 * Whether an actor written on a record (an event's `by`, a refund's requestedBy) is one of our operators: their email
 * (the console; an operator token's actor and the command line's start with it) or `cli` (a shell on our servers,
 * before the command line asked who ran it). The others are the shop's own (`api`, `shop`) or our automatic checks
 * (`janitor`, `checkout.page`...).
 */
export function isOperatorActor(actor: unknown): boolean {
  return typeof actor === "string" && (actor === "cli" || actor.includes("@"));
}
const FAILURE_WINDOW_MS = 15 * 60 * 1000;
/** Five failures are allowed in the window; further attempts are refused before the password is checked. */
const MAX_FAILURES = 5;
const MIN_PASSWORD_LENGTH = 12;

/**
 * Creates an operator with a random one-time password, returned once to print; they set their own at first sign-in.
 * Audited under `actor`, the operator who made it (`EMAIL (cli)`), or `cli` when there was none to name.
 */
export async function createOperatorAccount(
  ctx: AppContext,
  email: string,
  opts: { actor?: string; first?: boolean } = {},
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
  await createOperator(ctx.kv, operator, {
    at: ctx.now(),
    actor: opts.actor ?? "cli",
    action: "operator.create",
    target: operator.email,
    before: null,
    after: { id: operator.id, email: operator.email },
  }, { first: opts.first });
  return { operator, password };
}

/**
 * Creates the store's first operator (as createOperatorAccount), audited as `cli`: there is no one yet to name as its
 * maker. Refused once the store has an operator, one made by another command at the same moment included (the
 * write checks there is none, not only the read before it): from then on an operator is made by one (--actor).
 */
export async function createFirstOperatorAccount(
  ctx: AppContext,
  email: string,
): Promise<{ operator: Operator; password: string }> {
  if (await hasOperators(ctx.kv)) throw actorRequired("the store has an operator already");
  try {
    return await createOperatorAccount(ctx, email, { actor: "cli", first: true });
  } catch (err) {
    if (err instanceof ConflictError && err.code === "operators_exist") {
      throw actorRequired("another operator was made at the same moment, the store's first; nothing was made");
    }
    throw err;
  }
}

function actorRequired(why: string): ValidationError {
  return new ValidationError(
    `--actor EMAIL is required: ${why}, and operator create is audited under the operator who runs it.`,
    { actor: "is required" },
  );
}

function normalizeEmail(email: string, field = "email"): string {
  const e = email.trim().toLowerCase();
  if (!/^[^\s@]{1,64}@[^\s@]{1,253}$/.test(e)) {
    throw new ValidationError("Enter a valid email.", { [field]: "is not an email" });
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
  // A disabled operator's right password gets the answer of a wrong one, and stays counted, so a guesser learns
  // nothing of the account's state (not from the words, nor from the throttle). The audit says why, for operators.
  const disabled = ok && !!operator?.disabledAt;
  if (!operator || !ok || disabled) {
    // The reserved attempt stays counted as a failure.
    await writeAudit(ctx.kv, {
      at: ctx.now(),
      actor: normalized,
      action: "signin.failed",
      target: ip,
      before: null,
      after: disabled ? { reason: "operator disabled" } : null,
    });
    throw new AppError(401, "invalid_credentials", "Wrong email or password.");
  }
  await releaseSigninAttempt(ctx.kv, [...scopes], { ...window, now: ctx.now() });
  const session = newSession(operator, ctx.now());
  await createSession(ctx.kv, session, {
    signIn: true,
    audit: { at: session.createdAt, actor: operator.email, action: "signin", target: ip, before: null, after: null },
  });
  return { token: await sessionToken(ctx, session), session, operator };
}

/** A new session for the operator, at their current session epoch (stored by the caller, with what opens it). */
function newSession(operator: Operator, now: number): Session {
  return {
    id: randomId("ses"),
    operatorId: operator.id,
    email: operator.email,
    epoch: operator.sessionEpoch ?? 0,
    createdAt: now,
    expiresAt: now + SESSION_TTL_MS,
  };
}

/** A session's signed token, for its cookie. */
async function sessionToken(ctx: AppContext, session: Session): Promise<string> {
  return await new SignJWT({ sid: session.id })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(session.operatorId)
    .setAudience(SESSION_AUDIENCE)
    .setIssuedAt(Math.floor(session.createdAt / 1000))
    .setExpirationTime(Math.floor(session.expiresAt / 1000))
    .sign(ctx.sessionKey);
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
    if (!isOperatorSessionClaim(payload)) return null;
    const session = await getSession(ctx.kv, payload.sid);
    if (!session || session.expiresAt <= ctx.now() || session.operatorId !== payload.sub) return null;
    const operator = await getOperator(ctx.kv, session.operatorId);
    // A password change or a disabling since this session opened ends it (both raise the epoch). Disabled is refused
    // on its own too: whatever opened a session, it must not outlive the operator's access.
    if (!operator || operator.disabledAt || (session.epoch ?? 0) !== (operator.sessionEpoch ?? 0)) return null;
    return { session, operator };
  } catch {
    return null;
  }
}

/**
 * Whether a verified token's claims are an operator session's: our audience and a session id. A token with no audience
 * was issued before tokens named theirs (at most SESSION_TTL_MS ago); it is taken only with an operator session's id
 * (`ses_`), as the record it names is read from operator sessions alone, where no portal session ever is. Every portal
 * token has always carried its audience, so it is never one of these.
 */
function isOperatorSessionClaim(payload: JWTPayload): payload is JWTPayload & { sid: string } {
  if (typeof payload.sid !== "string") return false;
  if (payload.aud === undefined) return payload.sid.startsWith("ses_");
  return payload.aud === SESSION_AUDIENCE;
}

/** Ends a session at once: the token stops working even before it expires. */
export async function signOut(ctx: AppContext, session: Session) {
  await deleteSession(ctx.kv, session.id, {
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
  const now = ctx.now();
  let fresh: Session | undefined;
  // The new password, the end of the session it was changed in, the session that replaces it and the audit entry
  // commit together: no moment (or crash) leaves the operator signed out by a change the log does not have.
  const updated = await updateOperatorPassword(
    ctx.kv,
    operator.id,
    await hashPassword(next, ctx.config.passwordIterations),
    {
      expected: operator,
      extraOps: (op, changed) => {
        addEndSessionOps(op, session.id);
        addSessionOps(op, fresh = newSession(changed, now), { signIn: false });
        addAuditOps(op, {
          at: now,
          actor: operator.email,
          action: "operator.password",
          target: operator.email,
          before: null,
          after: null,
        });
      },
    },
  );
  if (!updated || !fresh) throw new AppError(401, "signin_required", "Please sign in.");
  return { token: await sessionToken(ctx, fresh) };
}

/**
 * The actor an audited command-line action is recorded under: the operator who ran it (`--actor EMAIL`), as
 * `EMAIL (cli)`, beside the console's plain email and a token's `EMAIL (token ID)`. Only an active operator's email is
 * taken: a shell on our servers knows no sign-in, so this is what names a person the audit log can be asked about, and
 * a typo or a departed operator's name would name no one who answers for it.
 */
export async function commandLineActor(ctx: AppContext, email: string): Promise<string> {
  const operator = await getOperatorByEmail(ctx.kv, normalizeEmail(email, "actor"));
  if (!operator) {
    throw new ValidationError("--actor names no operator: give your own operator email (deno task operator list).", {
      actor: "is not an operator's email",
    });
  }
  if (operator.disabledAt) {
    throw new ValidationError("--actor names a disabled operator: give your own operator email.", {
      actor: "is a disabled operator",
    });
  }
  return `${operator.email} (cli)`;
}

/** An operator named by email (as the command line names them), or 404. */
export async function operatorByEmail(ctx: AppContext, email: string): Promise<Operator> {
  const operator = await getOperatorByEmail(ctx.kv, email.trim().toLowerCase());
  if (!operator) throw new NotFoundError("Unknown operator.");
  return operator;
}

/** One operator as the console and the command line list them. */
export interface OperatorSummary {
  operator: Operator;
  /** Null for operators who have not signed in since sign-ins are recorded. */
  lastSignInAt: number | null;
  activeTokens: number;
}

/** Every operator, oldest first, with their last sign-in and how many API tokens of theirs work. */
export async function listOperatorSummaries(ctx: AppContext): Promise<OperatorSummary[]> {
  const [entries, signIns, tokens] = await Promise.all([
    listOperatorEntries(ctx.kv),
    lastSignIns(ctx.kv),
    listOperatorTokens(ctx.kv),
  ]);
  return entries.map(({ value: operator }) => ({
    operator,
    lastSignInAt: signIns.get(operator.id) ?? null,
    activeTokens: tokens.filter((t) => t.operatorId === operator.id && t.revokedAt === null).length,
  })).sort((a, b) => a.operator.createdAt - b.operator.createdAt);
}

/** Why an operator may not be disabled: by themself from the console, or as the last one who can sign in. */
export class OperatorDisableRefusedError extends AppError {
  constructor(code: "own_account" | "last_active_operator", message: string) {
    super(409, code, message);
  }
}

/**
 * The operator who stays active beside the one disabled (the one acting, from the console; else the first other
 * active one), or the refusal. Checked unchanged when the disabling commits: two operators disabling each other at
 * the same moment cannot leave nobody able to sign in, and one disabled meanwhile disables nobody.
 */
function activeKeeper(
  target: Operator,
  entries: Deno.KvEntry<Operator>[],
  by: Operator | undefined,
): Deno.KvEntry<Operator> {
  if (by?.id === target.id) {
    throw new OperatorDisableRefusedError(
      "own_account",
      "You cannot disable your own account: you would be signed out in the middle of it. Ask another operator, or " +
        "use the command line (deno task operator disable).",
    );
  }
  const keeper = by
    ? entries.find((e) => e.value.id === by.id && !e.value.disabledAt)
    : entries.find((e) => e.value.id !== target.id && !e.value.disabledAt);
  // The one acting was disabled meanwhile: their request ends as their sessions have.
  if (by && !keeper) throw new AppError(401, "signin_required", "Please sign in.");
  if (!keeper) {
    throw new OperatorDisableRefusedError(
      "last_active_operator",
      `${target.email} is the last active operator: disabled, nobody could sign in to the console again. Create or ` +
        "enable another operator first.",
    );
  }
  return keeper;
}

/** What disabling would do, for the question asked first; refused as disableOperator would refuse it. */
export async function previewOperatorDisable(
  ctx: AppContext,
  id: string,
  opts: { by?: Operator },
): Promise<{ operator: Operator; activeTokens: number }> {
  const entries = await listOperatorEntries(ctx.kv);
  const target = entries.find((e) => e.value.id === id);
  if (!target) throw new NotFoundError("Unknown operator.");
  if (!target.value.disabledAt) activeKeeper(target.value, entries, opts.by);
  return { operator: target.value, activeTokens: (await activeTokenEntries(ctx.kv, id)).length };
}

/**
 * Disables an operator, keeping their record for the audit trail: their password no longer signs in, every session
 * of theirs ends (the epoch rises, and every server reads it on each request) and their API tokens are revoked, all in
 * one atomic write with its audit entry (`operator.disable`, naming the tokens revoked). Refused for the last active
 * operator and, with `by` (the console's signed-in operator), for themself. Every operator may disable another: there
 * are no roles. An operator disabled already is left as they are (`changed` false).
 */
export async function disableOperator(
  ctx: AppContext,
  id: string,
  opts: { actor: string; by?: Operator },
): Promise<{ operator: Operator; revokedTokenIds: string[]; changed: boolean }> {
  for (;;) {
    const entries = await listOperatorEntries(ctx.kv);
    const entry = entries.find((e) => e.value.id === id);
    if (!entry) throw new NotFoundError("Unknown operator.");
    if (entry.value.disabledAt) return { operator: entry.value, revokedTokenIds: [], changed: false };
    const keeper = activeKeeper(entry.value, entries, opts.by);
    // Read before the listing and checked at the commit: a token made in between makes this try again.
    const revision = await tokensRevision(ctx.kv, id);
    const tokens = await activeTokenEntries(ctx.kv, id);
    const now = ctx.now();
    const next: Operator = { ...entry.value, disabledAt: now, sessionEpoch: (entry.value.sessionEpoch ?? 0) + 1 };
    const revokedTokenIds = tokens.map((t) => t.value.id);
    const done = await replaceOperator(ctx.kv, entry, next, {
      unchanged: [keeper],
      checks: [revision],
      revokeTokens: tokens,
      now,
      audit: {
        at: now,
        actor: opts.actor,
        action: "operator.disable",
        target: next.email,
        before: { status: "active" },
        after: { status: "disabled", revoked: revokedTokenIds },
      },
    });
    if (done) return { operator: next, revokedTokenIds, changed: true };
  }
}

/**
 * Lets a disabled operator sign in with their password again (`operator.enable`). Their sessions stay ended and
 * their tokens revoked: whatever they held when disabled is not trusted again; they sign in afresh and get new tokens.
 */
export async function enableOperator(
  ctx: AppContext,
  id: string,
  opts: { actor: string },
): Promise<{ operator: Operator; changed: boolean }> {
  for (;;) {
    const entry = await getOperatorEntry(ctx.kv, id);
    if (!entry) throw new NotFoundError("Unknown operator.");
    if (!entry.value.disabledAt) return { operator: entry.value, changed: false };
    const now = ctx.now();
    const next: Operator = { ...entry.value, disabledAt: null };
    const done = await replaceOperator(ctx.kv, entry, next, {
      now,
      audit: {
        at: now,
        actor: opts.actor,
        action: "operator.enable",
        target: next.email,
        before: { status: "disabled" },
        after: { status: "active" },
      },
    });
    if (done) return { operator: next, changed: true };
  }
}
