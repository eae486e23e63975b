import { type Context, Hono } from "hono";
import { ValidationError } from "../../lib/errors.ts";
import {
  confirmOperatorRefund,
  previewOperatorRefund,
  previewRefundSettlement,
  settleRefundByHand,
} from "../../lib/refunds/admin.ts";
import type { AppContext } from "../../lib/context.ts";
import { describePayment, recheckPaymentStatus, resendPostback } from "../../lib/payments/admin.ts";
import { listScopedPayments, scopedPaymentsCsv } from "../../lib/console.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, ConfirmStep, Flash } from "../../components/admin_layout.tsx";
import {
  OUTCOME_WORDS,
  PaymentDetail,
  PaymentsList,
  RefundConfirm,
  settleQuestion,
} from "../../components/payments.tsx";
import type { ConsoleEnv } from "./_session.ts";
import { type PageNote, pageNoteStatus, refusalShownOnPage } from "../_page_note.ts";

const PAGE_SIZE = 50;

/** Payments: filtered list with cursor pages and CSV export; detail with timeline, re-check and resend. */
export function paymentRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();

  app.get("/", async (c) => {
    const list = await listScopedPayments(ctx, "operator", c.req.query(), { limit: PAGE_SIZE });
    return c.html(renderPage(
      <AdminLayout title="Payments" path="/admin/payments" email={c.var.operator.email} csrf={c.var.csrf}>
        <PaymentsList {...list} basePath="/admin/payments" />
      </AdminLayout>,
    ));
  });

  /** The payment's page, with a message on top: after an action, or why a refund was refused. */
  const detailPage = async (c: Context<ConsoleEnv>, id: string, flash?: PageNote) => {
    const info = await describePayment(ctx, id);
    return c.html(
      renderPage(
        <AdminLayout title="Payment" path="/admin/payments" email={c.var.operator.email} csrf={c.var.csrf}>
          {flash && <Flash kind={flash.kind}>{flash.text}</Flash>}
          <PaymentDetail
            {...info}
            csrf={c.var.csrf}
            basePath="/admin/payments"
            shopBase="/admin/shops"
            accountBase="/admin/accounts"
            canRecheck
            canRefund
            nameOperators
          />
        </AdminLayout>,
      ),
      pageNoteStatus(flash, c.req.method),
    );
  };

  app.get("/:id", (c) => {
    return detailPage(c, c.req.param("id"), doneNote(c.req.query("done")));
  });

  // Refunds take two steps: the form posts here for a confirmation page, whose button posts to /confirm.
  app.post("/:id/refund", async (c) => {
    const id = c.req.param("id");
    try {
      const preview = await previewOperatorRefund(ctx, id, c.var.form);
      return c.html(renderPage(
        <AdminLayout title="Confirm refund" path="/admin/payments" email={c.var.operator.email} csrf={c.var.csrf}>
          <RefundConfirm {...preview} csrf={c.var.csrf} basePath="/admin/payments" />
        </AdminLayout>,
      ));
    } catch (err) {
      if (err instanceof ValidationError) return detailPage(c, id, { kind: "bad", text: err.message });
      throw err;
    }
  });

  app.post("/:id/refund/confirm", async (c) => {
    const id = c.req.param("id");
    // Refused (too much, not refundable, a bad amount): said on the payment's page.
    return await refusalShownOnPage("Not refunded", async () => {
      const { refund } = await confirmOperatorRefund(ctx, id, c.var.form, { actor: c.var.operator.email });
      return c.redirect(`/admin/payments/${encodeURIComponent(id)}?done=refund-${refund.status}`, 303);
    }, (note) => detailPage(c, id, note));
  });

  // A pending refund settled by hand: the page's script asks first; without it the question is a page of its own.
  app.post("/:id/refunds/:refundId/settle", async (c) => {
    const id = c.req.param("id");
    const refundId = c.req.param("refundId");
    // Refused (no outcome or note, settled meanwhile): said on the payment's page, with how it settled.
    return await refusalShownOnPage("Not recorded", async () => {
      if (c.var.form.confirm !== "yes") {
        const s = await previewRefundSettlement(ctx, id, refundId, c.var.form);
        return c.html(renderPage(
          <AdminLayout title="Please confirm" path="/admin/payments" email={c.var.operator.email} csrf={c.var.csrf}>
            <ConfirmStep
              question={settleQuestion(s.refund, OUTCOME_WORDS[s.outcome], s.note)}
              button="Record outcome"
              // Money: the amount is freed or the payment counted refunded, and the shop is told; no way back.
              destructive
              fields={{ outcome: s.outcome, note: s.note }}
              action={c.req.path}
              csrf={c.var.csrf}
              cancel={`/admin/payments/${encodeURIComponent(id)}`}
            />
          </AdminLayout>,
        ));
      }
      const r = await settleRefundByHand(ctx, id, refundId, c.var.form, { actor: c.var.operator.email });
      return c.redirect(`/admin/payments/${encodeURIComponent(id)}?done=settled-${r.status}`, 303);
    }, (note) => detailPage(c, id, note));
  });

  app.post("/:id/recheck", async (c) => {
    const id = c.req.param("id");
    // Refused (the provider does not know the payment) or failed at the provider: said on the payment's page.
    return await refusalShownOnPage("Not re-checked", async () => {
      const outcome = await recheckPaymentStatus(ctx, id, { actor: c.var.operator.email });
      return c.redirect(`/admin/payments/${encodeURIComponent(id)}?done=recheck-${outcome}`, 303);
    }, (note) => detailPage(c, id, note));
  });

  app.post("/:id/resend", async (c) => {
    const id = c.req.param("id");
    // Refused (no postback, one under way): said on the payment's page.
    return await refusalShownOnPage("Not resent", async () => {
      const d = await resendPostback(ctx, id, { actor: c.var.operator.email });
      return c.redirect(`/admin/payments/${encodeURIComponent(id)}?done=resend-${d.status}`, 303);
    }, (note) => detailPage(c, id, note));
  });
  return app;
}

/** `/admin/payments.csv`: the filtered set, streamed. */
export function paymentCsvRoute(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  app.get("/", (c) => {
    return c.body(scopedPaymentsCsv(ctx, "operator", c.req.query()), 200, {
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="payments-${new Date(ctx.now()).toISOString().slice(0, 10)}.csv"`,
    });
  });
  return app;
}

/**
 * What a payment page's action did (`?done=`), in our words only: a code outside these shows nothing, so a link
 * cannot claim an action that did not happen. A resend that did not get through is said as a failure.
 */
export function doneNote(done: string | undefined): PageNote | undefined {
  const [what, result] = (done ?? "").split("-", 2);
  const ok = (text: string): PageNote => ({ kind: "ok", text });
  if (what === "refund") {
    if (result === "succeeded") return ok("Refunded.");
    if (result === "failed") return ok("The provider declined the refund; its amount can be refunded again.");
    if (result === "pending") return ok("Refund requested: the provider settles it shortly.");
  }
  if (what === "settled") {
    if (result === "failed") {
      return ok("Recorded: the refund failed, its amount can be refunded again; the shop is told.");
    }
    if (result === "succeeded") return ok("Recorded: the refund succeeded; the shop is told.");
  }
  if (what === "recheck") {
    if (result === "applied") return ok("Re-checked: the status changed.");
    if (result === "unchanged" || result === "duplicate") return ok("Re-checked: the provider agrees with our status.");
  }
  if (what === "resend") {
    if (result === "delivered") return ok("Postback resent and delivered.");
    if (result === "pending") return { kind: "bad", text: "Postback resent, not delivered: it is retrying." };
    if (result === "failed") return { kind: "bad", text: "Postback resent, not delivered: it failed." };
  }
  return undefined;
}
