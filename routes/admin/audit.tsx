import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { searchAudit } from "../../lib/db/audit.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, formatTime } from "../../components/admin_layout.tsx";
import type { ConsoleEnv } from "./_session.ts";

export function auditRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  app.get("/", async (c) => {
    const q = c.req.query("q")?.slice(0, 200) ?? "";
    const entries = await searchAudit(ctx.kv, { query: q, limit: 200 });
    return c.html(renderPage(
      <AdminLayout title="Audit log" path="/admin/audit" email={c.var.operator.email} csrf={c.var.csrf}>
        <form method="get" action="/admin/audit" class="filters" role="search">
          <label>
            Search <input type="search" name="q" value={q} placeholder="operator, action, shop or payment id" />
          </label>
          <button type="submit">Search</button>
        </form>
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th>When</th>
                <th>Who</th>
                <th>What</th>
                <th>Target</th>
                <th>Before → after</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr key={e.id}>
                  <td>{formatTime(e.at)}</td>
                  <td>{e.actor}</td>
                  <td>{e.action}</td>
                  <td>
                    <code>{e.target}</code>
                  </td>
                  <td class="small">
                    {e.before ? <code>{JSON.stringify(e.before)}</code> : null}
                    {e.before && e.after ? " → " : null}
                    {e.after ? <code>{JSON.stringify(e.after)}</code> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </AdminLayout>,
    ));
  });
  return app;
}
