import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { writeAudit } from "../../lib/db/audit.ts";
import { listScopedDeliveries } from "../../lib/console.ts";
import { listShops } from "../../lib/db/shops.ts";
import { ConflictError, NotFoundError, ValidationError } from "../../lib/errors.ts";
import { resendPostback } from "../../lib/payments/admin.ts";
import { replayFailedDeliveries } from "../../lib/relay/replay.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, CsrfField, Flash } from "../../components/admin_layout.tsx";
import { DeliveryTable } from "../../components/deliveries.tsx";
import type { ConsoleEnv } from "./_session.ts";
import { hasIdShape } from "../../lib/ids.ts";

/** Postbacks that need attention across shops: resend one, or replay a shop's failures since a time. */
export function deliveryRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();

  app.get("/", async (c) => {
    const shopId = c.req.query("shopId") || undefined;
    // An id that cannot be a shop's names no shop, and must not reach KV (which refuses over-long keys).
    if (shopId && !hasIdShape("shop", shopId)) throw new NotFoundError("Unknown shop.");
    const [deliveries, shops] = await Promise.all([
      listScopedDeliveries(ctx, "operator", { shopId }),
      listShops(ctx.kv),
    ]);
    const done = c.req.query("done");
    return c.html(renderPage(
      <AdminLayout title="Deliveries" path="/admin/deliveries" email={c.var.operator.email} csrf={c.var.csrf}>
        {done && <Flash kind="ok">{done}</Flash>}
        <p class="muted">Postbacks that failed at least once and are not delivered, newest first.</p>
        <form method="get" action="/admin/deliveries" class="filters" role="search">
          <label>
            Shop
            <select name="shopId">
              <option value="">All shops</option>
              {shops.map((s) => <option key={s.id} value={s.id} selected={s.id === shopId}>{s.name}</option>)}
            </select>
          </label>
          <button type="submit">Filter</button>
        </form>
        <DeliveryTable
          deliveries={deliveries}
          paymentBase="/admin/payments"
          resendAction="/admin/deliveries/resend"
          csrf={c.var.csrf}
          shopNames={new Map(shops.map((s) => [s.id, s.name]))}
        />
        <section class="card">
          <h2>Replay a shop's failed postbacks</h2>
          <form method="post" action="/admin/deliveries/replay" class="filters" data-busy="Replaying…">
            <CsrfField token={c.var.csrf} />
            <label>
              Shop
              <select name="shopId" required>
                {shops.map((s) => <option key={s.id} value={s.id} selected={s.id === shopId}>{s.name}</option>)}
              </select>
            </label>
            <label>
              Created since (UTC) <input type="datetime-local" name="since" required />
            </label>
            <button type="submit">Replay</button>
          </form>
        </section>
      </AdminLayout>,
    ));
  });

  app.post("/resend", async (c) => {
    const paymentId = c.var.form.paymentId ?? "";
    try {
      const d = await resendPostback(ctx, paymentId, { actor: c.var.operator.email });
      return c.redirect(`/admin/deliveries?done=${encodeURIComponent(`Resent ${d.id}: ${d.status}.`)}`, 303);
    } catch (err) {
      // One under way: say so on the list instead of an error page.
      if (!(err instanceof ConflictError)) throw err;
      return c.redirect(`/admin/deliveries?done=${encodeURIComponent(`Not resent: ${err.message}`)}`, 303);
    }
  });

  app.post("/replay", async (c) => {
    const { shopId = "", since = "" } = c.var.form;
    const sinceMs = Date.parse(since.length === 16 ? since + ":00Z" : since);
    if (!hasIdShape("shop", shopId) || Number.isNaN(sinceMs)) {
      throw new ValidationError("Choose a shop and a time.", { since: "is required" });
    }
    const n = await replayFailedDeliveries(ctx, shopId, sinceMs);
    await writeAudit(ctx.kv, {
      at: ctx.now(),
      actor: c.var.operator.email,
      action: "postback.replay",
      target: shopId,
      before: null,
      after: { since: new Date(sinceMs).toISOString(), count: n },
    });
    return c.redirect(`/admin/deliveries?done=${encodeURIComponent(`${n} failed postbacks queued again.`)}`, 303);
  });
  return app;
}
