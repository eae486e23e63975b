import { Hono } from "hono";
import type { AppContext } from "../../../lib/context.ts";
import { authenticateOperatorToken } from "../../../lib/auth/operator_tokens.ts";
import { unauthenticatedLimiter } from "../../../lib/auth/rate_limit.ts";
import { createAccount, listAllAccounts } from "../../../lib/accounts/mod.ts";
import { getShopRouting, setShopRouting } from "../../../lib/accounts/routing.ts";
import { accountView, OperationsQuery, operationView } from "../../../lib/accounts/api_schemas.ts";
import { listOperations } from "../../../lib/db/operations.ts";
import { UnauthorizedError } from "../../../lib/errors.ts";
import { parseOrThrow } from "../../../lib/validation.ts";
import { limitedAddress } from "../../_client_address.ts";
import { readJson } from "../../_read_json.ts";

type Env = { Variables: { actor: string } };

/** The admin JSON API for automation: every call carries an operator API token (`deno task operator token create`). */
export function adminApiV1Routes(ctx: AppContext) {
  const app = new Hono<Env>();
  const unauthenticated = unauthenticatedLimiter(ctx);

  app.use(async (c, next) => {
    try {
      c.set("actor", (await authenticateOperatorToken(ctx, c.req.header("authorization"))).actor);
    } catch (err) {
      if (err instanceof UnauthorizedError) unauthenticated.take(limitedAddress(c), ctx.now());
      throw err;
    }
    await next();
  });

  app.get("/accounts", async (c) => {
    const accounts = await listAllAccounts(ctx);
    return c.json({ status: "success", accounts: accounts.map(accountView) });
  });

  app.post("/accounts", async (c) => {
    const account = await createAccount(ctx, await readJson(c), { actor: c.var.actor });
    return c.json({ status: "success", account: accountView(account) }, 201);
  });

  app.get("/shops/:id/routing", async (c) => {
    const routing = await getShopRouting(ctx, c.req.param("id"));
    return c.json({ status: "success", shopId: c.req.param("id"), routing });
  });

  app.put("/shops/:id/routing", async (c) => {
    const routing = await setShopRouting(ctx, c.req.param("id"), await readJson(c), { actor: c.var.actor });
    return c.json({ status: "success", shopId: c.req.param("id"), routing });
  });

  app.get("/operations", async (c) => {
    const q = parseOrThrow(OperationsQuery, c.req.query(), { what: "query" });
    const operations = await listOperations(ctx.kv, q);
    return c.json({ status: "success", operations: operations.map(operationView) });
  });

  return app;
}
