import type { AppContext } from "../context.ts";
import { AppError, ConflictError, NotFoundError, UnauthorizedError } from "../errors.ts";
import { sha256Hex } from "../crypto.ts";
import { base64url, randomBytes, randomId } from "../ids.ts";
import { getOperator, getOperatorByEmail, getOperatorEntry, type Operator } from "../db/operators.ts";
import {
  getOperatorTokenByHash,
  insertOperatorToken,
  listOperatorTokens,
  type OperatorToken,
  revokeOperatorTokenRecord,
} from "../db/operator_tokens.ts";

/** Readable prefix so leaked tokens are recognisable (and findable by secret scanners). */
export const OPERATOR_TOKEN_PREFIX = "apay_ot_";

/**
 * A new API token for an operator (the admin JSON API): the prefix plus 192 random bits, returned once; only its
 * SHA-256 is stored. Audited as `operator_token.create`.
 */
export async function createOperatorToken(
  ctx: AppContext,
  email: string,
  opts: { actor: string },
): Promise<{ token: string; record: OperatorToken }> {
  const found = await getOperatorByEmail(ctx.kv, email.trim().toLowerCase());
  if (!found) throw new NotFoundError("Unknown operator.");
  // The token commits only with the operator as read: a disabling that commits in between (it revokes the tokens it
  // lists, and this one would not be among them) makes the write fail, and the operator is read again.
  for (let tries = 0; tries < 3; tries++) {
    const operator = await getOperatorEntry(ctx.kv, found.id);
    if (!operator) throw new NotFoundError("Unknown operator.");
    if (operator.value.disabledAt) {
      throw new AppError(409, "operator_disabled", "This operator is disabled: enable them first.");
    }
    const made = await makeToken(ctx, operator, opts);
    if (made) return made;
  }
  throw new ConflictError("The operator changed meanwhile; try again.");
}

/** Stores a new token of the operator as read; null when the operator changed since. */
async function makeToken(
  ctx: AppContext,
  entry: Deno.KvEntry<Operator>,
  opts: { actor: string },
): Promise<{ token: string; record: OperatorToken } | null> {
  const operator = entry.value;
  const token = OPERATOR_TOKEN_PREFIX + base64url(randomBytes(24));
  const now = ctx.now();
  const record: OperatorToken = {
    id: randomId("otk"),
    operatorId: operator.id,
    email: operator.email,
    hint: token.slice(0, OPERATOR_TOKEN_PREFIX.length + 4),
    createdAt: now,
    revokedAt: null,
  };
  const stored = await insertOperatorToken(ctx.kv, record, sha256Hex(token), {
    at: now,
    actor: opts.actor,
    action: "operator_token.create",
    target: record.id,
    before: null,
    after: record,
  }, entry);
  return stored ? { token, record } : null;
}

/** Revokes a token from its next request on. Audited as `operator_token.revoke`. */
export function revokeOperatorToken(ctx: AppContext, id: string, opts: { actor: string }): Promise<OperatorToken> {
  return revokeOperatorTokenRecord(ctx.kv, id, {
    now: ctx.now(),
    audit: (before, after) => ({
      at: ctx.now(),
      actor: opts.actor,
      action: "operator_token.revoke",
      target: id,
      before,
      after,
    }),
  });
}

/** Every token (hints only), oldest first. */
export function listTokens(ctx: AppContext): Promise<OperatorToken[]> {
  return listOperatorTokens(ctx.kv);
}

/**
 * The operator behind an Authorization header (`Bearer apay_ot_...`), looked up on every request so a revocation
 * (or disabling its operator) takes effect at once. Anything else is 401 with one message.
 */
export async function authenticateOperatorToken(
  ctx: AppContext,
  authorization: string | undefined,
): Promise<{ token: OperatorToken; actor: string }> {
  const fail = () => new UnauthorizedError("Missing, unknown or revoked operator token.");
  const match = authorization?.match(/^Bearer\s+(\S{1,200})$/i);
  if (!match || !match[1].startsWith(OPERATOR_TOKEN_PREFIX)) throw fail();
  const token = await getOperatorTokenByHash(ctx.kv, sha256Hex(match[1]));
  if (!token || token.revokedAt !== null) throw fail();
  // Disabling revokes the operator's tokens; one made while the disabling committed is refused here all the same.
  const operator = await getOperator(ctx.kv, token.operatorId);
  if (!operator || operator.disabledAt) throw fail();
  return { token, actor: `${token.email} (token ${token.id})` };
}
