import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { describeScopedInvoice, listScopedInvoices } from "../../lib/console.ts";
import { cancelInvoice } from "../../lib/invoices/cancel.ts";
import { findInvoice } from "../../lib/invoices/query.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, Flash } from "../../components/admin_layout.tsx";
import { InvoiceDetail, InvoicesList } from "../../components/invoices.tsx";
import type { ConsoleEnv } from "./_session.ts";

const PAGE_SIZE = 100;

/** Crypto invoices: the newest, a shop's address pool, and each invoice's deposits, postbacks and timeline. */
export function invoiceRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();

  app.get("/", async (c) => {
    const list = await listScopedInvoices(ctx, "operator", c.req.query(), { limit: PAGE_SIZE });
    return c.html(renderPage(
      <AdminLayout title="Invoices" path="/admin/invoices" email={c.var.operator.email} csrf={c.var.csrf}>
        <InvoicesList {...list} basePath="/admin/invoices" />
      </AdminLayout>,
    ));
  });

  app.get("/:id", async (c) => {
    const info = await describeScopedInvoice(ctx, "operator", c.req.param("id"));
    return c.html(renderPage(
      <AdminLayout title="Invoice" path="/admin/invoices" email={c.var.operator.email} csrf={c.var.csrf}>
        {c.req.query("done") === "cancelled" && (
          <Flash kind="ok">Invoice cancelled; its address rests a day, then is free again.</Flash>
        )}
        <InvoiceDetail {...info} csrf={c.var.csrf} basePath="/admin/invoices" canCancel shopBase="/admin/shops" />
      </AdminLayout>,
    ));
  });

  // Asked first in the browser (data-confirm); the cancel and its audit entry commit together.
  app.post("/:id/cancel", async (c) => {
    const inv = await findInvoice(ctx, c.req.param("id"));
    await cancelInvoice(ctx, inv.id, { actor: c.var.operator.email });
    return c.redirect(`/admin/invoices/${inv.id}?done=cancelled`, 303);
  });
  return app;
}
