/**
 * Operator accounts for the console, and their API tokens for the admin JSON API (the usage below). `create` prints a
 * one-time password, which the operator replaces at first sign-in; `token create` prints the token once. `disable`
 * keeps the record for the audit trail: the password stops signing in, every session ends and every token is revoked
 * at once; `enable` lets the password sign in again (sessions and tokens stay ended).
 */
import {
  createOperatorAccount,
  disableOperator,
  enableOperator,
  listOperatorSummaries,
  operatorByEmail,
} from "../lib/auth/operators.ts";
import { createOperatorToken, listTokens, revokeOperatorToken } from "../lib/auth/operator_tokens.ts";
import { fail, parseCommandArgs, printJson, runCommand } from "./_context.ts";

const USAGE = `usage:
  deno task operator create EMAIL
  deno task operator list
  deno task operator disable --email EMAIL   (password, sessions and API tokens stop working at once)
  deno task operator enable --email EMAIL    (the password signs in again)
  deno task operator token create EMAIL
  deno task operator token list
  deno task operator token revoke TOKEN_ID`;

const { values, positionals } = parseCommandArgs({ email: { type: "string" } }, USAGE);
const [cmd, arg, arg2] = positionals;
// The email as --email, or where create and token create take it.
const email = values.email ?? arg;
const valid = (cmd === "create" && arg) || cmd === "list" ||
  ((cmd === "disable" || cmd === "enable") && email && !(values.email && arg)) ||
  (cmd === "token" && ((arg === "create" && arg2) || arg === "list" || (arg === "revoke" && arg2)));
if (!valid) fail(USAGE);

const tokenView = (t: Awaited<ReturnType<typeof listTokens>>[number]) => ({
  tokenId: t.id,
  email: t.email,
  hint: t.hint,
  createdAt: new Date(t.createdAt).toISOString(),
  revokedAt: t.revokedAt === null ? null : new Date(t.revokedAt).toISOString(),
});

const iso = (ms: number | null | undefined) => ms ? new Date(ms).toISOString() : null;

await runCommand(async (server) => {
  const ctx = server.ctx;
  if (cmd === "create") {
    const { operator, password } = await createOperatorAccount(ctx, arg);
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
    // Credited to "cli", as every command here is: these manage operators, and the first has none to name.
    const target = await operatorByEmail(ctx, email);
    const { operator, revokedTokenIds, changed } = await disableOperator(ctx, target.id, { actor: "cli" });
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
    const { operator, changed } = await enableOperator(ctx, target.id, { actor: "cli" });
    if (!changed) console.error(`note: ${operator.email} was active already; nothing changed`);
    printJson({ operatorId: operator.id, email: operator.email, status: "active" });
  } else if (arg === "create") {
    const { token, record } = await createOperatorToken(ctx, arg2, { actor: "cli" });
    // The only time the token is shown: only its hash is kept.
    printJson({ ...tokenView(record), token });
  } else if (arg === "list") {
    printJson((await listTokens(ctx)).map(tokenView));
  } else {
    printJson(tokenView(await revokeOperatorToken(ctx, arg2, { actor: "cli" })));
  }
});
