/**
 * Operator accounts for the console:
 *   deno task operator create EMAIL   prints a one-time password; the operator sets their own at first sign-in
 *   deno task operator list
 */
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { listOperators } from "../lib/db/operators.ts";
import { fail, printJson, runCommand } from "./_context.ts";

const USAGE = "usage:\n  deno task operator create EMAIL\n  deno task operator list";
const [cmd, email] = Deno.args;
if (!(cmd === "create" && email) && cmd !== "list") fail(USAGE);

await runCommand(async (server) => {
  if (cmd === "create") {
    const { operator, password } = await createOperatorAccount(server.ctx, email);
    printJson({ operatorId: operator.id, email: operator.email, oneTimePassword: password });
  } else {
    printJson((await listOperators(server.ctx.kv)).map((o) => ({
      operatorId: o.id,
      email: o.email,
      mustChangePassword: o.mustChangePassword,
      createdAt: new Date(o.createdAt).toISOString(),
    })));
  }
});
