/**
 * Operator accounts for the console, and their API tokens for the admin JSON API (the usage below). `create` prints a
 * one-time password, which the operator replaces at first sign-in; `token create` prints the token once. `disable`
 * keeps the record for the audit trail: the password stops signing in, every session ends and every token is revoked
 * at once; `enable` lets the password sign in again (sessions and tokens stay ended).
 * Every command that changes something is audited under the operator who runs it: --actor is their (active) operator
 * email, recorded as `EMAIL (cli)`. The one exception is `create` while the store has no operator (the store's first):
 * there is no one to name, so --actor may be left out and it is recorded as `cli`.
 */
import {
  createFirstOperatorAccount,
  createOperatorAccount,
  disableOperator,
  enableOperator,
  listOperatorSummaries,
  operatorByEmail,
} from "../lib/auth/operators.ts";
import { createOperatorToken, listTokens, revokeOperatorToken } from "../lib/auth/operator_tokens.ts";
import {
  ACTOR_OPTION,
  ACTOR_USAGE,
  fail,
  parseCommandArgs,
  printJson,
  refuseOptionsNotTaken,
  requireActor,
  runCommand,
} from "./_context.ts";

const USAGE = `usage:
  deno task operator create EMAIL --actor EMAIL   (the first operator: no --actor)
  deno task operator list
  deno task operator disable --email EMAIL --actor EMAIL   (password, sessions and API tokens stop working at once)
  deno task operator enable --email EMAIL --actor EMAIL    (the password signs in again)
  deno task operator token create EMAIL --actor EMAIL
  deno task operator token list
  deno task operator token revoke TOKEN_ID --actor EMAIL
${ACTOR_USAGE}`;

const { values, positionals, given } = parseCommandArgs({ email: { type: "string" }, ...ACTOR_OPTION }, USAGE);
const [cmd, arg, arg2] = positionals;
// The email as --email, or where create and token create take it.
const email = values.email ?? arg;
// An argument too many is refused, not ignored (see parseCommandArgs).
const count = positionals.length;
const valid = (cmd === "create" && count === 2) || (cmd === "list" && count === 1) ||
  ((cmd === "disable" || cmd === "enable") && email && count === (values.email ? 1 : 2)) ||
  (cmd === "token" && ((arg === "create" && count === 3) || (arg === "list" && count === 2) ||
    (arg === "revoke" && count === 3)));
if (!valid) fail(USAGE);
const command = cmd === "token" ? `operator token ${arg}` : `operator ${cmd}`;
const lists = cmd === "list" || (cmd === "token" && arg === "list");
refuseOptionsNotTaken(given, cmd === "disable" || cmd === "enable" ? ["email"] : [], command, USAGE);
// create may go without --actor while the store has no operator; createFirstOperatorAccount checks that.
const actorEmail = lists || (cmd === "create" && !values.actor)
  ? undefined
  : requireActor(values.actor, command, USAGE);

const tokenView = (t: Awaited<ReturnType<typeof listTokens>>[number]) => ({
  tokenId: t.id,
  email: t.email,
  hint: t.hint,
  createdAt: new Date(t.createdAt).toISOString(),
  revokedAt: t.revokedAt === null ? null : new Date(t.revokedAt).toISOString(),
});

const iso = (ms: number | null | undefined) => ms ? new Date(ms).toISOString() : null;

await runCommand(async (server, actor) => {
  const ctx = server.ctx;
  if (cmd === "create") {
    // Without --actor only while the store has no operator (there is no one to name): the first is made so.
    const { operator, password } = actor
      ? await createOperatorAccount(ctx, arg, { actor })
      : await createFirstOperatorAccount(ctx, arg);
    printJson({ operatorId: operator.id, email: operator.email, oneTimePassword: password });
  } else if (cmd === "list") {
    printJson((await listOperatorSummaries(ctx)).map(({ operator: o, lastSignInAt, activeTokens }) => ({
      operatorId: o.id,
      email: o.email,
      status: o.disabledAt ? "disabled" : "active",
      disabledAt: iso(o.disabledAt),
      mustChangePassword: o.mustChangePassword,
      createdAt: iso(o.createdAt),
      lastSignInAt: iso(lastSignInAt),
      activeTokens,
    })));
  } else if (cmd === "disable") {
    const target = await operatorByEmail(ctx, email);
    const { operator, revokedTokenIds, changed } = await disableOperator(ctx, target.id, { actor });
    if (!changed) console.error(`note: ${operator.email} was disabled already; nothing changed`);
    printJson({
      operatorId: operator.id,
      email: operator.email,
      status: "disabled",
      disabledAt: iso(operator.disabledAt),
      revokedTokenIds,
    });
  } else if (cmd === "enable") {
    const target = await operatorByEmail(ctx, email);
    const { operator, changed } = await enableOperator(ctx, target.id, { actor });
    if (!changed) console.error(`note: ${operator.email} was active already; nothing changed`);
    printJson({ operatorId: operator.id, email: operator.email, status: "active" });
  } else if (arg === "create") {
    const { token, record } = await createOperatorToken(ctx, arg2, { actor });
    // The only time the token is shown: only its hash is kept.
    printJson({ ...tokenView(record), token });
  } else if (arg === "list") {
    printJson((await listTokens(ctx)).map(tokenView));
  } else {
    printJson(tokenView(await revokeOperatorToken(ctx, arg2, { actor })));
  }
}, { actor: actorEmail });
