import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { formatAmount } from "../../lib/money.ts";
import { overview, type PeriodSummary } from "../../lib/stats.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, formatTime } from "../../components/admin_layout.tsx";
import { analyticsStatus } from "../../lib/analytics/mod.ts";
import { Island } from "../../components/island.tsx";
import { attentionCount } from "../../components/deliveries.tsx";
import type { ConsoleEnv } from "./_session.ts";
import { PaymentTable } from "../../components/payments.tsx";
import { countOrphansWaiting } from "../../lib/payments/orphans.ts";

export function overviewRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  app.get("/", async (c) => {
    const [o, bq, orphans] = await Promise.all([
      overview(ctx.kv, ctx.now()),
      analyticsStatus(ctx),
      countOrphansWaiting(ctx),
    ]);
    return c.html(renderPage(
      <AdminLayout title="Overview" path="/admin" email={c.var.operator.email} csrf={c.var.csrf}>
        <div class="grid2">
          <Summary title="Today (UTC)" s={o.today} />
          <Summary title="Last 30 days" s={o.last30} />
        </div>
        <section class="card">
          <h2>Postbacks</h2>
          <p>
            <a href="/admin/deliveries">
              <strong class={o.postbacks.failing ? "bad" : ""}>
                {attentionCount(o.postbacks.failing, o.postbacks.more)}
              </strong>{" "}
              retrying,{" "}
              <strong class={o.postbacks.failed ? "bad" : ""}>
                {attentionCount(o.postbacks.failed, o.postbacks.more)}
              </strong>{" "}
              failed
            </a>
          </p>
        </section>
        <section class="card" id="late-payments">
          <h2>Late payments</h2>
          <p class="muted">
            Money the provider confirmed after the payment had expired or been cancelled. The shop got a{" "}
            <code>payment.succeeded</code> postback with <code>late: true</code>; refund the ones it will not ship.
          </p>
          <PaymentTable payments={o.latePayments} basePath="/admin/payments" shopNames={o.shopNames} empty="None." />
          <h3>Crypto invoices</h3>
          <p>
            <a href="/admin/invoices?late=1" data-late-invoices>
              <strong class={o.lateInvoices.count ? "bad" : ""}>
                {attentionCount(o.lateInvoices.count, o.lateInvoices.more)}
              </strong>{" "}
              {o.lateInvoices.count === 1 && !o.lateInvoices.more ? "invoice" : "invoices"} with late money
            </a>
          </p>
          <p class="muted">
            Coins that reached an invoice's address after it closed (or after its expiry): counted in nothing. The shop
            got an <code>invoice.late_payment</code> postback once they were confirmed; it settles with the buyer.
          </p>
        </section>
        <section class="card" id="paid-orphans">
          <h2>Paid orphans</h2>
          <p>
            <a href="/admin/paid-orphans" data-paid-orphans>
              <strong class={orphans.count ? "bad" : ""}>{attentionCount(orphans.count, orphans.more)}</strong>{" "}
              waiting for an operator
            </a>
          </p>
          <p class="muted">
            Money a provider took on a payment it made for one of our ids that no stored payment names: no shop knows of
            it. Refund it at the provider or give it to the shop, then mark it handled.
          </p>
        </section>
        <section class="card">
          <h2>BigQuery export</h2>
          {bq.enabled
            ? (
              <p>
                {bq.target} · backlog <strong class={bq.backlog > 5000 ? "bad" : ""}>{bq.backlog}</strong>{" "}
                entries · last success {formatTime(bq.lastSuccessAt)}
                {bq.lastError && (
                  <span class="bad">· failing since {formatTime(bq.lastError.at)}: {bq.lastError.message}</span>
                )}
              </p>
            )
            : <p class="muted">Off: set the BIGQUERY_* variables to export every payment.</p>}
        </section>
        <Island
          name="BarChart"
          props={{
            title: "Payments created per day, last 30 days",
            bars: o.daily.map((d) => ({
              label: d.day.slice(5),
              value: d.created,
              display: `${d.created} created, ${d.succeeded} succeeded`,
            })),
          }}
        />
      </AdminLayout>,
    ));
  });
  return app;
}

function Summary({ title, s }: { title: string; s: PeriodSummary }) {
  const volume = Object.entries(s.volume);
  const refunded = Object.entries(s.refunded);
  return (
    <section class="card">
      <h2>{title}</h2>
      <dl class="stats">
        <dt>Payments</dt>
        <dd>{s.created}</dd>
        <dt>Succeeded</dt>
        <dd>{s.succeeded}</dd>
        <dt>Success rate</dt>
        <dd>{s.successRate === null ? "—" : `${Math.round(s.successRate * 1000) / 10}%`}</dd>
        <dt>Pending</dt>
        <dd>{s.open}</dd>
        <dt>Time to pay (mean)</dt>
        <dd>{s.meanSecondsToPay === null ? "—" : `${s.meanSecondsToPay} s`}</dd>
        <dt>Volume</dt>
        <dd>{volume.length ? volume.map(([cur, amount]) => formatAmount(amount, cur)).join(", ") : "—"}</dd>
        <dt>Refunds</dt>
        <dd>
          {s.refunds}
          {refunded.length > 0 && ` (${refunded.map(([cur, amount]) => formatAmount(amount, cur)).join(", ")})`}
        </dd>
        <dt>Crypto invoices</dt>
        <dd data-invoice-stats>
          {s.invoices.created} created, {s.invoices.paid} paid, {s.invoices.expired} expired, {s.invoices.cancelled}
          {" "}
          cancelled
        </dd>
      </dl>
    </section>
  );
}
