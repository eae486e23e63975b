import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { loadScopedStats } from "../../lib/console.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout } from "../../components/admin_layout.tsx";
import { StatsView } from "../../components/stats_view.tsx";
import type { ConsoleEnv } from "./_session.ts";

/** Operators' stats: the Metabase dashboard over all shops when configured, the built-in charts otherwise. */
export function statsRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  app.get("/", async (c) => {
    const stats = await loadScopedStats(ctx, "operator");
    return c.html(renderPage(
      <AdminLayout title="Stats" path="/admin/stats" email={c.var.operator.email} csrf={c.var.csrf}>
        <StatsView stats={stats} title="All shops" />
      </AdminLayout>,
    ));
  });
  return app;
}
