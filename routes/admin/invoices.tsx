import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { describeScopedInvoice, listScopedInvoices } from "../../lib/console.ts";
import { cancelInvoice } from "../../lib/invoices/cancel.ts";
import { findInvoice } from "../../lib/invoices/query.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, ConfirmStep, Flash } from "../../components/admin_layout.tsx";
import { addressAfterCancel, cancelInvoiceQuestion, InvoiceDetail, InvoicesList } from "../../components/invoices.tsx";
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
          <Flash kind="ok">
            Invoice cancelled; its address {addressAfterCancel(ctx.config.addressRestMs, info.invoice)}.
          </Flash>
        )}
        <InvoiceDetail
          {...info}
          csrf={c.var.csrf}
          basePath="/admin/invoices"
          canCancel
          addressRestMs={ctx.config.addressRestMs}
          shopBase="/admin/shops"
          nameOperators
        />
      </AdminLayout>,
    ));
  });

  // Asked first: by the page's script (data-confirm), or else by a page of its own. The cancel and its audit entry
  // commit together.
  app.post("/:id/cancel", async (c) => {
    const inv = await findInvoice(ctx, c.req.param("id"));
    if (c.var.form.confirm !== "yes") {
      return c.html(renderPage(
        <AdminLayout title="Please confirm" path="/admin/invoices" email={c.var.operator.email} csrf={c.var.csrf}>
          <ConfirmStep
            question={cancelInvoiceQuestion(ctx.config.addressRestMs, inv)}
            button="Cancel invoice"
            destructive
            action={`/admin/invoices/${inv.id}/cancel`}
            csrf={c.var.csrf}
            cancel={`/admin/invoices/${inv.id}`}
            cancelLabel="Keep the invoice"
          />
        </AdminLayout>,
      ));
    }
    await cancelInvoice(ctx, inv.id, { actor: c.var.operator.email });
    return c.redirect(`/admin/invoices/${inv.id}?done=cancelled`, 303);
  });
  return app;
}
