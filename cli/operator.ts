/**
 * Operator accounts for the console:
 *   deno task operator create EMAIL   prints a one-time password; the operator sets their own at first sign-in
 *   deno task operator list
 */
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { listOperators } from "../lib/db/operators.ts";
import { AppError } from "../lib/errors.ts";
import { fail, openCliServer, printJson } from "./_context.ts";

const USAGE = "usage:\n  deno task operator create EMAIL\n  deno task operator list";
const [cmd, email] = Deno.args;
if (!(cmd === "create" && email) && cmd !== "list") fail(USAGE);

const server = await openCliServer();
try {
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
} catch (err) {
  if (err instanceof AppError) fail(`${err.code}: ${err.message}`);
  throw err;
} finally {
  await server.close();
  server.ctx.kv.close();
}
