import { NotFoundError } from "../errors.ts";
import { addAuditOps, type NewAuditEntry } from "./audit.ts";
import type { Operator } from "./operators.ts";
import { collectValues } from "./kv.ts";

/** An operator API token as stored: never the token, only its SHA-256 (as the lookup key's last part). */
export interface OperatorToken {
  id: string;
  operatorId: string;
  email: string;
  /** The first characters of the token, so people can tell tokens apart. */
  hint: string;
  createdAt: number;
  revokedAt: number | null;
}

const tokenKey = (id: string) => ["operator_tokens", id] as const;
const byHashKey = (hash: string) => ["operator_tokens_by_hash", hash] as const;

/** Stores a new token with its hash index and its audit entry in one atomic operation. */
export async function insertOperatorToken(
  kv: Deno.Kv,
  token: OperatorToken,
  hash: string,
  audit: NewAuditEntry,
  operator: Deno.KvEntry<Operator>,
): Promise<boolean> {
  // The operator's tokens' revision moves with each new one: a disabling that listed their tokens before this one
  // was stored checks it, fails, and lists them again (it revokes what it listed). Their record is only checked, so
  // tokens made at once, or a password change, do not get in each other's way.
  const op = kv.atomic()
    .check({ key: byHashKey(hash), versionstamp: null })
    .check({ key: tokenKey(token.id), versionstamp: null })
    .check(operator)
    .set(tokensRevisionKey(token.operatorId), token.id)
    .set(tokenKey(token.id), token)
    .set(byHashKey(hash), token.id);
  // Random ids and secrets never collide: a failed check is the operator's record, changed since it was read.
  return (await addAuditOps(op, audit).commit()).ok;
}

/** The token whose SHA-256 this is, or null. */
export async function getOperatorTokenByHash(kv: Deno.Kv, hash: string): Promise<OperatorToken | null> {
  const id = (await kv.get<string>(byHashKey(hash))).value;
  return id ? (await kv.get<OperatorToken>(tokenKey(id))).value : null;
}

/** Every token, revoked ones included, oldest first. */
export function listOperatorTokens(kv: Deno.Kv): Promise<OperatorToken[]> {
  return collectValues(kv.list<OperatorToken>({ prefix: ["operator_tokens"] }));
}

/** An operator's tokens not revoked yet, as entries, for a change that revokes them with it. */
/** Moves with every token made for an operator (insertOperatorToken): what a disabling checks its listing against. */
const tokensRevisionKey = (operatorId: string) => ["operator_tokens_revision", operatorId] as const;

/** The operator's tokens' revision as read now, for a check that no token was made since (see insertOperatorToken). */
export async function tokensRevision(kv: Deno.Kv, operatorId: string): Promise<Deno.AtomicCheck> {
  const { key, versionstamp } = await kv.get(tokensRevisionKey(operatorId));
  return { key, versionstamp };
}

export async function activeTokenEntries(kv: Deno.Kv, operatorId: string): Promise<Deno.KvEntry<OperatorToken>[]> {
  const out: Deno.KvEntry<OperatorToken>[] = [];
  for await (const e of kv.list<OperatorToken>({ prefix: ["operator_tokens"] })) {
    if (e.value.operatorId === operatorId && e.value.revokedAt === null) out.push(e);
  }
  return out;
}

/**
 * Adds the revocation of these tokens (from their next request on) to an atomic operation. Not checked: a token
 * revoked meanwhile stays revoked (its time moves by those moments), and an operation takes at most 100 checks where
 * an operator may hold more tokens.
 */
export function addTokenRevocationOps(
  op: Deno.AtomicOperation,
  entries: Deno.KvEntry<OperatorToken>[],
  now: number,
): Deno.AtomicOperation {
  for (const e of entries) op.set(tokenKey(e.value.id), { ...e.value, revokedAt: now });
  return op;
}

/** Marks a token revoked (from its next request on) with its audit entry; revoking twice keeps the first time. */
export async function revokeOperatorTokenRecord(
  kv: Deno.Kv,
  id: string,
  opts: { now: number; audit: (before: OperatorToken, after: OperatorToken) => NewAuditEntry },
): Promise<OperatorToken> {
  for (;;) {
    const entry = await kv.get<OperatorToken>(tokenKey(id));
    if (!entry.value) throw new NotFoundError("Unknown token.");
    if (entry.value.revokedAt !== null) return entry.value;
    const next = { ...entry.value, revokedAt: opts.now };
    const op = kv.atomic().check(entry).set(tokenKey(id), next);
    if ((await addAuditOps(op, opts.audit(entry.value, next)).commit()).ok) return next;
  }
}
