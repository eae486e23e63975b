import { ConflictError } from "../errors.ts";
import { collectValues } from "./kv.ts";

export interface Operator {
  id: string;
  email: string;
  passwordHash: string;
  /** Set for a one-time password: the operator must choose their own at first sign-in. */
  mustChangePassword: boolean;
  createdAt: number;
}

export interface Session {
  id: string;
  operatorId: string;
  email: string;
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

export async function updateOperatorPassword(kv: Deno.Kv, id: string, passwordHash: string) {
  const entry = await kv.get<Operator>(operatorKey(id));
  if (!entry.value) return;
  const res = await kv.atomic().check(entry)
    .set(operatorKey(id), { ...entry.value, passwordHash, mustChangePassword: false })
    .commit();
  if (!res.ok) throw new ConflictError();
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

/** Failed sign-ins in the current window for an account or an address. */
export async function countSigninFailures(kv: Deno.Kv, scope: "email" | "ip", value: string): Promise<number> {
  return (await kv.get<{ count: number }>(failureKey(scope, value))).value?.count ?? 0;
}

/** Counts one failure; the window starts at the first failure and lasts `windowMs`. */
export async function addSigninFailure(
  kv: Deno.Kv,
  scope: "email" | "ip",
  value: string,
  windowMs: number,
  now: number,
) {
  for (;;) {
    const entry = await kv.get<{ count: number; firstAt: number }>(failureKey(scope, value));
    const current = entry.value ?? { count: 0, firstAt: now };
    const expireIn = Math.max(1, current.firstAt + windowMs - now);
    const res = await kv.atomic().check(entry)
      .set(failureKey(scope, value), { ...current, count: current.count + 1 }, { expireIn })
      .commit();
    if (res.ok) return;
  }
}
