import { ConflictError } from "../errors.ts";
import { collectValues } from "./kv.ts";

export interface Operator {
  id: string;
  email: string;
  passwordHash: string;
  /** Set for a one-time password: the operator must choose their own at first sign-in. */
  mustChangePassword: boolean;
  /** Raised by each password change: sessions opened before it carry a lower epoch and stop working. */
  sessionEpoch?: number;
  createdAt: number;
}

export interface Session {
  id: string;
  operatorId: string;
  email: string;
  /** The operator's sessionEpoch when this session was opened (absent: 0). */
  epoch?: number;
  createdAt: number;
  expiresAt: number;
}

const operatorKey = (id: string) => ["operators", id] as const;
const byEmailKey = (email: string) => ["operators_by_email", email] as const;
const sessionKey = (id: string) => ["operator_sessions", id] as const;
const failureKey = (scope: "email" | "ip", value: string) => ["signin_failures", scope, value] as const;

/** Stores a new operator; the email is unique. */
export async function createOperator(kv: Deno.Kv, op: Operator) {
  const res = await kv.atomic()
    .check({ key: byEmailKey(op.email), versionstamp: null })
    .set(operatorKey(op.id), op)
    .set(byEmailKey(op.email), op.id)
    .commit();
  if (!res.ok) throw new ConflictError("An operator with this email exists.", "operator_exists");
}

export async function getOperatorByEmail(kv: Deno.Kv, email: string): Promise<Operator | null> {
  const id = (await kv.get<string>(byEmailKey(email))).value;
  return id ? (await kv.get<Operator>(operatorKey(id))).value : null;
}

export async function getOperator(kv: Deno.Kv, id: string): Promise<Operator | null> {
  return (await kv.get<Operator>(operatorKey(id))).value;
}

/**
 * Sets a new password and ends every session opened with the old one; returns
 * the updated operator. With `expected` (the record the caller checked the
 * current password against), a change made meanwhile wins: ConflictError.
 */
export async function updateOperatorPassword(
  kv: Deno.Kv,
  id: string,
  passwordHash: string,
  expected?: Pick<Operator, "passwordHash" | "sessionEpoch">,
): Promise<Operator | null> {
  const entry = await kv.get<Operator>(operatorKey(id));
  if (!entry.value) return null;
  if (
    expected &&
    (entry.value.passwordHash !== expected.passwordHash ||
      (entry.value.sessionEpoch ?? 0) !== (expected.sessionEpoch ?? 0))
  ) {
    throw new ConflictError("The password was changed meanwhile. Sign in again.", "password_changed");
  }
  const next: Operator = {
    ...entry.value,
    passwordHash,
    mustChangePassword: false,
    sessionEpoch: (entry.value.sessionEpoch ?? 0) + 1,
  };
  const res = await kv.atomic().check(entry).set(operatorKey(id), next).commit();
  if (!res.ok) throw new ConflictError();
  return next;
}

export function listOperators(kv: Deno.Kv): Promise<Operator[]> {
  return collectValues(kv.list<Operator>({ prefix: ["operators"] }));
}

export async function createSession(kv: Deno.Kv, s: Session) {
  await kv.set(sessionKey(s.id), s, { expireIn: s.expiresAt - s.createdAt });
}

export async function getSession(kv: Deno.Kv, id: string): Promise<Session | null> {
  return (await kv.get<Session>(sessionKey(id))).value;
}

export async function deleteSession(kv: Deno.Kv, id: string) {
  await kv.delete(sessionKey(id));
}

export interface ThrottleScope {
  scope: "email" | "ip";
  value: string;
}

interface SigninCounter {
  count: number;
  /** When the window that began with the first attempt ends (the key expires then too). */
  expiresAt: number;
}

export interface ThrottleWindow {
  max: number;
  windowMs: number;
  now: number;
}

/**
 * Counts a sign-in attempt against every scope before its password is
 * checked, in one atomic operation: false (and nothing counted) when any
 * scope already has `max` in its window. Reserving first means concurrent
 * guesses cannot all slip in while the slow hash runs.
 */
export function reserveSigninAttempt(kv: Deno.Kv, scopes: ThrottleScope[], w: ThrottleWindow): Promise<boolean> {
  return updateSigninCounters(kv, scopes, w, (count) => count >= w.max ? null : count + 1);
}

/** Gives back a reserved attempt that turned out right, so an operator's own sign-ins never lock them out. */
export async function releaseSigninAttempt(kv: Deno.Kv, scopes: ThrottleScope[], w: ThrottleWindow) {
  await updateSigninCounters(kv, scopes, w, (count) => Math.max(0, count - 1));
}

/** Read-modify-write of every scope's counter in one atomic operation; `next` returning null refuses the change. */
async function updateSigninCounters(
  kv: Deno.Kv,
  scopes: ThrottleScope[],
  w: ThrottleWindow,
  next: (count: number) => number | null,
): Promise<boolean> {
  const keys = scopes.map((s) => failureKey(s.scope, s.value));
  for (;;) {
    const entries = await kv.getMany<SigninCounter[]>(keys);
    const op = kv.atomic();
    for (const entry of entries) {
      // KV serves an expired key until its collector runs: a window that has ended starts afresh.
      const live = entry.value?.expiresAt !== undefined && entry.value.expiresAt > w.now;
      const current = live ? entry.value! : { count: 0, expiresAt: w.now + w.windowMs };
      const count = next(current.count);
      if (count === null) return false;
      op.check(entry).set(entry.key, { ...current, count }, { expireIn: Math.max(1, current.expiresAt - w.now) });
    }
    if ((await op.commit()).ok) return true;
  }
}
