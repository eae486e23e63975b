import { ConflictError } from "../errors.ts";
import { addAuditOps, type NewAuditEntry } from "./audit.ts";
import { addTokenRevocationOps, type OperatorToken } from "./operator_tokens.ts";

export interface Operator {
  id: string;
  email: string;
  passwordHash: string;
  /** Set for a one-time password: the operator must choose their own at first sign-in. */
  mustChangePassword: boolean;
  /** Raised by each password change: sessions opened before it carry a lower epoch and stop working. */
  sessionEpoch?: number;
  createdAt: number;
  /**
   * When the operator was disabled (absent or null: active). The record stays, so the audit log keeps naming them;
   * their password no longer signs in.
   */
  disabledAt?: number | null;
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
/** Kept apart from the operator's record, so a sign-in never makes a change to that record fail its check. */
const lastSignInKey = (operatorId: string) => ["operator_last_signin", operatorId] as const;
const failureKey = (scope: "email" | "ip", value: string) => ["signin_failures", scope, value] as const;

/**
 * Set by every operator's creation, so that "the store has no operator yet" is one key the first one's write can
 * check: two first operators made at once cannot both be. A store from before it has operators without it, which its
 * listing shows (operators are never deleted), so it needs no backfill.
 */
const anyOperatorKey = ["operators_any"] as const;

/**
 * Stores a new operator with its audit entry, in one atomic operation; the email is unique. With `first`, only while
 * the store has no operator (the caller has read that none is listed): else ConflictError `operators_exist`.
 */
export async function createOperator(kv: Deno.Kv, op: Operator, audit: NewAuditEntry, opts: { first?: boolean } = {}) {
  const write = kv.atomic().check({ key: byEmailKey(op.email), versionstamp: null });
  if (opts.first) write.check({ key: anyOperatorKey, versionstamp: null });
  write.set(operatorKey(op.id), op).set(byEmailKey(op.email), op.id).set(anyOperatorKey, true);
  const res = await addAuditOps(write, audit).commit();
  // A first operator's write fails only when some operator was made since the caller's read, whatever its email.
  if (!res.ok && opts.first) throw new ConflictError("An operator was made meanwhile.", "operators_exist");
  if (!res.ok) throw new ConflictError("An operator with this email exists.", "operator_exists");
}

/** Whether the store has any operator, disabled or not. */
export async function hasOperators(kv: Deno.Kv): Promise<boolean> {
  for await (const _ of kv.list({ prefix: ["operators"] }, { limit: 1 })) return true;
  return false;
}

export async function getOperatorByEmail(kv: Deno.Kv, email: string): Promise<Operator | null> {
  const id = (await kv.get<string>(byEmailKey(email))).value;
  return id ? (await kv.get<Operator>(operatorKey(id))).value : null;
}

export async function getOperator(kv: Deno.Kv, id: string): Promise<Operator | null> {
  return (await kv.get<Operator>(operatorKey(id))).value;
}

/** The operator as an entry, for a change that checks it; null when there is none. */
export async function getOperatorEntry(kv: Deno.Kv, id: string): Promise<Deno.KvEntry<Operator> | null> {
  const entry = await kv.get<Operator>(operatorKey(id));
  return entry.value ? entry as Deno.KvEntry<Operator> : null;
}

/**
 * Sets a new password and ends every session opened with the old one; returns
 * the updated operator. With `expected` (the record the caller checked the
 * current password against), a change made meanwhile wins: ConflictError.
 * `extraOps` adds what commits with it, given the updated record (the caller's
 * new session, the audit entry).
 */
export async function updateOperatorPassword(
  kv: Deno.Kv,
  id: string,
  passwordHash: string,
  opts: {
    expected?: Pick<Operator, "passwordHash" | "sessionEpoch">;
    extraOps?: (op: Deno.AtomicOperation, next: Operator) => void;
  } = {},
): Promise<Operator | null> {
  const { expected } = opts;
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
  const op = kv.atomic().check(entry).set(operatorKey(id), next);
  opts.extraOps?.(op, next);
  if (!(await op.commit()).ok) throw new ConflictError();
  return next;
}

/** Every operator as an entry, for a change whose checks need the records it was decided on. */
export async function listOperatorEntries(kv: Deno.Kv): Promise<Deno.KvEntry<Operator>[]> {
  const out: Deno.KvEntry<Operator>[] = [];
  for await (const entry of kv.list<Operator>({ prefix: ["operators"] })) out.push(entry);
  return out;
}

/**
 * Replaces an operator's record (`entry`, as read) with `next`, revokes `revokeTokens` and writes the audit entry, in
 * one atomic operation. False, with nothing written, when the operator or any of `unchanged` (the other records the
 * change was decided on) changed meanwhile: the caller reads again and decides again.
 */
export async function replaceOperator(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Operator>,
  next: Operator,
  opts: {
    unchanged?: Deno.KvEntry<Operator>[];
    /** Other keys that must be as read (the operator's tokens' revision, for a disabling). */
    checks?: Deno.AtomicCheck[];
    revokeTokens?: Deno.KvEntry<OperatorToken>[];
    now: number;
    audit: NewAuditEntry;
  },
): Promise<boolean> {
  const op = kv.atomic().check(entry).set(operatorKey(next.id), next);
  for (const other of opts.unchanged ?? []) op.check(other);
  for (const check of opts.checks ?? []) op.check(check);
  addTokenRevocationOps(op, opts.revokeTokens ?? [], opts.now);
  return (await addAuditOps(op, opts.audit).commit()).ok;
}

/**
 * Stores a session with its audit entry (the sign-in), in one atomic operation; one opened by a sign-in (not by a
 * password change) is also the operator's last sign-in.
 */
export async function createSession(kv: Deno.Kv, s: Session, opts: { signIn: boolean; audit: NewAuditEntry }) {
  const op = kv.atomic();
  addSessionOps(op, s, opts);
  await addAuditOps(op, opts.audit).commit();
}

/** Adds a new session to an atomic operation (see createSession), for a change that opens one with its own write. */
export function addSessionOps(op: Deno.AtomicOperation, s: Session, opts: { signIn: boolean }) {
  op.set(sessionKey(s.id), s, { expireIn: s.expiresAt - s.createdAt });
  if (opts.signIn) op.set(lastSignInKey(s.operatorId), s.createdAt);
}

/** Adds the end of a session to an atomic operation: its token stops working once that commits. */
export function addEndSessionOps(op: Deno.AtomicOperation, id: string) {
  op.delete(sessionKey(id));
}

/** Each operator's last sign-in by their id; operators who have not signed in since it was recorded are missing. */
export async function lastSignIns(kv: Deno.Kv): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const e of kv.list<number>({ prefix: ["operator_last_signin"] })) out.set(e.key[1] as string, e.value);
  return out;
}

export async function getSession(kv: Deno.Kv, id: string): Promise<Session | null> {
  return (await kv.get<Session>(sessionKey(id))).value;
}

/** Ends a session with its audit entry (the sign-out), in one atomic operation. */
export async function deleteSession(kv: Deno.Kv, id: string, audit: NewAuditEntry) {
  const op = kv.atomic();
  addEndSessionOps(op, id);
  await addAuditOps(op, audit).commit();
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
