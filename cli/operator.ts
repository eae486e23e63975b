/**
 * Operator accounts for the console, and their API tokens for the admin JSON API:
 *   deno task operator create EMAIL   prints a one-time password; the operator sets their own at first sign-in
 *   deno task operator list
 *   deno task operator token create EMAIL   prints a new API token once
 *   deno task operator token list
 *   deno task operator token revoke TOKEN_ID
 */
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { createOperatorToken, listTokens, revokeOperatorToken } from "../lib/auth/operator_tokens.ts";
import { listOperators } from "../lib/db/operators.ts";
import { fail, printJson, runCommand } from "./_context.ts";

const USAGE = "usage:\n  deno task operator create EMAIL\n  deno task operator list\n" +
  "  deno task operator token create EMAIL\n  deno task operator token list\n  deno task operator token revoke TOKEN_ID";
const [cmd, arg, arg2] = Deno.args;
const valid = (cmd === "create" && arg) || cmd === "list" ||
  (cmd === "token" && ((arg === "create" && arg2) || arg === "list" || (arg === "revoke" && arg2)));
if (!valid) fail(USAGE);

const tokenView = (t: Awaited<ReturnType<typeof listTokens>>[number]) => ({
  tokenId: t.id,
  email: t.email,
  hint: t.hint,
  createdAt: new Date(t.createdAt).toISOString(),
  revokedAt: t.revokedAt === null ? null : new Date(t.revokedAt).toISOString(),
});

await runCommand(async (server) => {
  if (cmd === "create") {
    const { operator, password } = await createOperatorAccount(server.ctx, arg);
    printJson({ operatorId: operator.id, email: operator.email, oneTimePassword: password });
  } else if (cmd === "list") {
    printJson((await listOperators(server.ctx.kv)).map((o) => ({
      operatorId: o.id,
      email: o.email,
      mustChangePassword: o.mustChangePassword,
      createdAt: new Date(o.createdAt).toISOString(),
    })));
  } else if (arg === "create") {
    const { token, record } = await createOperatorToken(server.ctx, arg2, { actor: "cli" });
    // The only time the token is shown: only its hash is kept.
    printJson({ ...tokenView(record), token });
  } else if (arg === "list") {
    printJson((await listTokens(server.ctx)).map(tokenView));
  } else {
    printJson(tokenView(await revokeOperatorToken(server.ctx, arg2, { actor: "cli" })));
  }
});
