import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { writeAudit } from "../../lib/db/audit.ts";
import { listShops } from "../../lib/db/shops.ts";
import { formatAmount } from "../../lib/money.ts";
import { describePayment, resendPostback } from "../../lib/payments/admin.ts";
import { parsePaymentFilter, type PaymentFilter, paymentsCsv, searchPayments } from "../../lib/payments/search.ts";
import { PAYMENT_STATUSES } from "../../lib/payments/status.ts";
import type { Payment } from "../../lib/payments/types.ts";
import { recheckPaymentStatus } from "../../lib/payments/webhook.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, CsrfField, Flash, formatTime } from "../../components/admin_layout.tsx";
import type { ConsoleEnv } from "./_session.ts";

const PAGE_SIZE = 50;

/** Payments: filtered list with cursor pages and CSV export; detail with timeline, re-check and resend. */
export function paymentRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();

  app.get("/", async (c) => {
    const query = c.req.query();
    const filter = parsePaymentFilter(query);
    const cursor = query.cursor?.slice(0, 40) || undefined;
    const [page, shops] = await Promise.all([
      searchPayments(ctx.kv, filter, { limit: PAGE_SIZE, cursor }),
      listShops(ctx.kv),
    ]);
    const qs = new URLSearchParams(Object.entries(filter).filter(([, v]) => v) as [string, string][]);
    return c.html(renderPage(
      <AdminLayout title="Payments" path="/admin/payments" email={c.var.operator.email} csrf={c.var.csrf}>
        <FilterForm filter={filter} shops={shops.map((s) => [s.id, s.name])} />
        <p>
          <a href={`/admin/payments.csv?${qs}`} download>Export these as CSV</a>
        </p>
        <PaymentTable payments={page.payments} />
        {page.cursor && (
          <p>
            <a class="button secondary" href={`/admin/payments?${qs}&cursor=${encodeURIComponent(page.cursor)}`}>
              Older payments
            </a>
          </p>
        )}
      </AdminLayout>,
    ));
  });

  app.get("/:id", async (c) => {
    const info = await describePayment(ctx, c.req.param("id"));
    return c.html(renderPage(
      <AdminLayout title="Payment" path="/admin/payments" email={c.var.operator.email} csrf={c.var.csrf}>
        {c.req.query("done") && <Flash kind="ok">{doneMessage(c.req.query("done")!)}</Flash>}
        <PaymentDetail {...info} csrf={c.var.csrf} />
      </AdminLayout>,
    ));
  });

  app.post("/:id/recheck", async (c) => {
    const id = c.req.param("id");
    const outcome = await recheckPaymentStatus(ctx, id);
    await writeAudit(ctx.kv, {
      at: ctx.now(),
      actor: c.var.operator.email,
      action: "payment.recheck",
      target: id,
      before: null,
      after: { outcome },
    });
    return c.redirect(`/admin/payments/${encodeURIComponent(id)}?done=recheck-${outcome}`, 303);
  });

  app.post("/:id/resend", async (c) => {
    const id = c.req.param("id");
    const d = await resendPostback(ctx, id);
    await writeAudit(ctx.kv, {
      at: ctx.now(),
      actor: c.var.operator.email,
      action: "postback.resend",
      target: id,
      before: null,
      after: { deliveryId: d.id, status: d.status },
    });
    return c.redirect(`/admin/payments/${encodeURIComponent(id)}?done=resend-${d.status}`, 303);
  });
  return app;
}

/** `/admin/payments.csv`: the filtered set, streamed. */
export function paymentCsvRoute(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  app.get("/", (c) => {
    const filter = parsePaymentFilter(c.req.query());
    return c.body(paymentsCsv(ctx.kv, filter), 200, {
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="payments-${new Date(ctx.now()).toISOString().slice(0, 10)}.csv"`,
    });
  });
  return app;
}

function doneMessage(done: string): string {
  const [what, result] = done.split("-");
  if (what === "recheck") {
    return result === "applied"
      ? "Re-checked: the status changed."
      : "Re-checked: the provider agrees with our status.";
  }
  return result === "delivered" ? "Postback resent and delivered." : `Postback resent; it is now ${result}.`;
}

function FilterForm({ filter, shops }: { filter: PaymentFilter; shops: [string, string][] }) {
  return (
    <form method="get" action="/admin/payments" class="filters" role="search">
      <label>
        Shop
        <select name="shopId">
          <option value="">All shops</option>
          {shops.map(([id, name]) => <option key={id} value={id} selected={filter.shopId === id}>{name}</option>)}
        </select>
      </label>
      <label>
        Status
        <select name="status">
          <option value="">Any</option>
          {PAYMENT_STATUSES.map((s) => <option key={s} value={s} selected={filter.status === s}>{s}</option>)}
        </select>
      </label>
      <label>
        From <input type="date" name="from" value={filter.from ?? ""} />
      </label>
      <label>
        To <input type="date" name="to" value={filter.to ?? ""} />
      </label>
      <label>
        Currency <input name="currency" size={4} maxLength={3} value={filter.currency ?? ""} />
      </label>
      <label>
        Email <input type="email" name="email" value={filter.email ?? ""} />
      </label>
      <label>
        Shop's id <input name="shopTxId" value={filter.shopTxId ?? ""} />
      </label>
      <button type="submit">Filter</button>
    </form>
  );
}

function PaymentTable({ payments }: { payments: Payment[] }) {
  if (!payments.length) return <p class="muted">No payments match.</p>;
  return (
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th>Created</th>
            <th>Payment</th>
            <th>Shop's id</th>
            <th>Amount</th>
            <th>Status</th>
            <th>Email</th>
          </tr>
        </thead>
        <tbody>
          {payments.map((p) => (
            <tr key={p.id}>
              <td>{formatTime(p.createdAt)}</td>
              <td>
                <a href={`/admin/payments/${p.id}`}>
                  <code>{p.id}</code>
                </a>
              </td>
              <td>{p.shopTxId ?? "—"}</td>
              <td class="num">{formatAmount(p.amount, p.currency)}</td>
              <td class={`status-${p.status}`}>{p.status}</td>
              <td>{p.email}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

type Info = Awaited<ReturnType<typeof describePayment>>;

interface TimelineItem {
  at: number;
  what: string;
  detail: string;
}

/** Events and postback attempts, merged in time order. */
function timeline(info: Info): TimelineItem[] {
  const items: TimelineItem[] = info.events.map((e) => ({
    at: e.at,
    what: e.type.replace(/_/g, " "),
    detail: Object.entries(e.data).map(([k, v]) => `${k}: ${v}`).join(", "),
  }));
  for (const d of info.deliveries) {
    for (const a of d.attemptLog) {
      items.push({
        at: a.at,
        what: `postback attempt ${a.n}`,
        detail: `${a.statusCode ?? "no answer"} in ${a.latencyMs} ms${a.error ? ` · ${a.error}` : ""}${
          a.responseStart ? ` · “${a.responseStart.slice(0, 120)}”` : ""
        }`,
      });
    }
  }
  return items.sort((a, b) => a.at - b.at);
}

function PaymentDetail(props: Info & { csrf: string }) {
  const p = props.payment;
  const fields: [string, string | null][] = [
    ["Payment id", p.id],
    ["Shop", p.shopId],
    ["Shop's id", p.shopTxId],
    ["Status", p.status],
    ["Amount", formatAmount(p.amount, p.currency)],
    ["Type", p.type],
    ["Email", p.email],
    ["Name", p.name],
    ["Success URL", p.successUrl],
    ["Error URL", p.errorUrl],
    ["Postback URL", p.postbackUrl],
    ["Provider", `${p.provider} ${p.providerRef ?? ""}`],
    ["Created", formatTime(p.createdAt)],
    ["Updated", formatTime(p.updatedAt)],
    ["Settled", formatTime(p.finalizedAt)],
    ["Last error", p.lastError],
  ];
  return (
    <>
      <dl class="fields">
        {fields.map(([k, v]) => [<dt key={k + "t"}>{k}</dt>, <dd key={k + "d"}>{v ?? "—"}</dd>])}
      </dl>
      <div class="actions">
        <form method="post" action={`/admin/payments/${p.id}/recheck`} class="inline">
          <CsrfField token={props.csrf} />
          <button type="submit" class="secondary">Re-check status with the provider</button>
        </form>
        {props.deliveries.length > 0 && (
          <form method="post" action={`/admin/payments/${p.id}/resend`} class="inline">
            <CsrfField token={props.csrf} />
            <button type="submit">Resend postback</button>
          </form>
        )}
      </div>
      <h2>Postbacks</h2>
      {props.deliveries.length === 0
        ? <p class="muted">None: the shop gave no id, or the payment is not settled.</p>
        : props.deliveries.map((d) => (
          <p key={d.id}>
            <code>{d.id}</code> {d.eventType} → {d.url}:{" "}
            <strong class={d.status === "delivered" ? "ok" : "bad"}>{d.status}</strong> after {d.attempts}{" "}
            attempt{d.attempts === 1 ? "" : "s"}
          </p>
        ))}
      <h2>Timeline</h2>
      <ol class="timeline">
        {timeline(props).map((t, i) => (
          <li key={i}>
            <time>{formatTime(t.at)}</time> <strong>{t.what}</strong> <span class="muted">{t.detail}</span>
          </li>
        ))}
      </ol>
    </>
  );
}
