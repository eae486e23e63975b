import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { dashboardEmbedUrl } from "../../lib/analytics/metabase.ts";
import { countAttentionDeliveries } from "../../lib/db/deliveries.ts";
import { dailySeries } from "../../lib/stats.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout } from "../../components/admin_layout.tsx";
import { BuiltInStats, EmbeddedDashboard } from "../../components/stats_view.tsx";
import type { ConsoleEnv } from "./_session.ts";

/** Operators' stats: the Metabase dashboard over all shops when configured, the built-in charts otherwise. */
export function statsRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  app.get("/", async (c) => {
    const mb = ctx.config.metabase;
    const body = mb
      ? <EmbeddedDashboard url={await dashboardEmbedUrl(mb, { kind: "operator" }, ctx.now())} title="All shops" />
      : (
        <BuiltInStats
          points={await dailySeries(ctx.kv, ctx.now(), 30)}
          postbacks={await countAttentionDeliveries(ctx.kv)}
        />
      );
    return c.html(renderPage(
      <AdminLayout title="Stats" path="/admin/stats" email={c.var.operator.email} csrf={c.var.csrf}>
        {body}
      </AdminLayout>,
    ));
  });
  return app;
}
