import { type Context, Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { sharedLimiter, unauthenticatedLimiter } from "../../lib/auth/rate_limit.ts";
import {
  AmountNotAcceptedError,
  AppError,
  ConflictError,
  IdempotencyMismatchError,
  UpstreamError,
} from "../../lib/errors.ts";
import { log, warnRepeatable } from "../../lib/log.ts";
import { ID_PATTERNS } from "../../lib/ids.ts";
import { DnsTimeoutError } from "../../lib/relay/url_guard.ts";
import { findFormPayment, loadBuyerForm } from "../../lib/forms/mod.ts";
import {
  amountStepFor,
  amountStepProblem,
  type BuyerInput,
  BuyerInputError,
  coinChoicesFor,
  currencyChoicesFor,
  INVALID_FIELDS_MESSAGE,
  submitForm,
} from "../../lib/forms/submit.ts";
import { checkFormToken, issueFormToken } from "../../lib/forms/token.ts";
import { FRAMED_SUBMIT_HEADER, openFields } from "../../lib/forms/types.ts";
import { renderPage } from "../../components/html.tsx";
import { backToShop, MessagePage } from "../../components/message_page.tsx";
import { BuyerFormPage, FormReturnPage } from "../../components/forms.tsx";
import { limitedAddress } from "../_client_address.ts";
import { publicLookup } from "../_public_lookup.ts";
import { allowFraming } from "../_headers.ts";

const FORM = `/:id{${ID_PATTERNS.form}}` as const;
const BUYER_INPUTS = ["email", "amount", "currency", "coin"] as const;

type Target = Awaited<ReturnType<typeof loadBuyerForm>>;

/**
 * The buyer's side of hosted forms at /forms: the page, its submit and the
 * two pages the buyer returns to after paying. No cookies and no console CSRF:
 * the page may sit in a shop's iframe, so the submit carries a signed form
 * token instead (lib/forms/token.ts).
 */
export function formPageRoutes(ctx: AppContext) {
  const app = new Hono();
  // Every submit counts per address (a buyer sends one or two); bad tokens also count with the app's other
  // unauthenticated failures, so an address cannot spread its guesses over routes.
  const submits = sharedLimiter(ctx, "form_submits", ctx.config.unauthenticatedPerMinute);
  const unauthenticated = unauthenticatedLimiter(ctx);

  const page = async (
    c: Context,
    target: Target,
    extra: { values?: BuyerInput; errors?: Record<string, string>; message?: string; token?: string },
    status: 200 | 400 | 403 | 409 | 422 | 502 | 503 = 200,
  ) => {
    const { form, shop } = target;
    const currencies = form.kind === "fiat" && form.currency === null ? await currencyChoicesFor(ctx, shop) : [];
    const coins = form.kind === "crypto" ? coinChoicesFor(form) : [];
    // A typed amount in a fixed currency: its hint shows the decimals the shop's provider takes it in.
    const amountStep = form.kind === "fiat" && form.currency && form.amount === null
      ? await amountStepFor(ctx, shop, form.currency)
      : 1;
    return c.html(
      renderPage(
        <BuyerFormPage
          form={form}
          shopName={shop.name}
          token={extra.token ?? issueFormToken(ctx, form.id)}
          values={extra.values ?? {}}
          errors={extra.errors}
          message={extra.message}
          currencies={currencies}
          coins={coins}
          amountStep={amountStep}
        />,
      ),
      status,
      { "cache-control": "no-store" },
    );
  };

  const closed = (c: Context, target: Target) =>
    c.html(
      renderPage(
        <MessagePage
          title="This form is closed"
          text={`${target.shop.name} no longer takes payments with this form. Nothing was charged.`}
          back={backToShop(target.form.returnUrl, target.shop.name)}
        />,
      ),
      410,
    );

  app.get(FORM, async (c) => {
    const target = await publicLookup(ctx, c, () => loadBuyerForm(ctx, c.req.param("id")));
    // Only the shop's own sites may show its form in a frame; every other page keeps refusing frames.
    allowFraming(c, target.shop.embedOrigins ?? []);
    if (!target.open) return closed(c, target);
    return await page(c, target, {});
  });

  app.post(`${FORM}/submit` as const, async (c) => {
    const address = limitedAddress(c);
    submits.take(address, ctx.now());
    const target = await loadBuyerForm(ctx, c.req.param("id"));
    allowFraming(c, target.shop.embedOrigins ?? []);
    if (!target.open) return closed(c, target);
    const posted = await readPostedFields(c);
    const values: BuyerInput = {};
    for (const name of BUYER_INPUTS) if (posted[name] !== undefined) values[name] = posted[name].slice(0, 300);

    const token = checkFormToken(ctx, target.form.id, posted._token ?? "");
    if (!token.ok) {
      unauthenticated.take(address, ctx.now());
      const message = token.reason === "expired"
        ? "This page was open for too long. Check the fields and send it again."
        : "We could not verify this page. Check the fields and send it again.";
      return await page(c, target, { values, message }, 403);
    }
    try {
      const { redirectTo } = await submitForm(ctx, target, values, { submitName: token.nonce });
      // Sent by the page's script from a shop's frame: it opens the next page as the whole window itself.
      if (c.req.header(FRAMED_SUBMIT_HEADER) === "1") {
        return c.json({ next: redirectTo }, 200, { "cache-control": "no-store" });
      }
      return c.redirect(redirectTo, 303);
    } catch (err) {
      if (err instanceof BuyerInputError) {
        return await page(c, target, { values, errors: err.fields, message: err.message }, 422);
      }
      if (err instanceof IdempotencyMismatchError) {
        const message = "You already sent this page with other values, and that payment stands. " +
          "To pay again with these values, send the form once more.";
        return await page(c, target, { values, message }, 409);
      }
      if (err instanceof UpstreamError) {
        // The same token again: a retry names the same payment, in case the provider did make it.
        const message = "The payment service did not answer. Nothing was charged; please send the form again.";
        return await page(c, target, { values, message, token: posted._token }, 502);
      }
      if (err instanceof ConflictError) {
        // Other requests won every try this one made (a crypto form in a burst: each deposit address on offer went
        // to another invoice, lib/invoices/pool.ts). Nothing was made, and sending again goes through; not retried
        // here, since the invoice code already tried as long as it holds a request. The same token again: should a
        // copy of this submit (a double click) have made the invoice meanwhile, the next send finds it.
        warnRepeatable(`form submit conflict ${target.form.id}`, "form submit conflict", {
          formId: target.form.id,
          shopId: target.shop.id,
          reason: err.message,
        });
        for (const [k, v] of Object.entries(err.headers ?? {})) c.header(k, v);
        const message = "Many payments are being started at this moment, and yours did not go through. " +
          "Nothing was charged; please send the form again.";
        return await page(c, target, { values, message, token: posted._token }, 409);
      }
      if (err instanceof AmountNotAcceptedError && openFields(target.form).includes("amount")) {
        // The amount the buyer typed is right for the currency but not for the provider the shop's payments go to
        // (Stripe and MGA in part of an ariary): theirs to round, not the form out of order.
        const errors = { amount: amountStepProblem(err.currency, err.step) };
        return await page(c, target, { values, errors, message: INVALID_FIELDS_MESSAGE }, 422);
      }
      if (err instanceof DnsTimeoutError) {
        // The shop's postback host could not be looked up in time (logged where it happened): nothing was made.
        const message = "This did not go through. Nothing was charged; please send the form again in a few seconds.";
        c.header("retry-after", "5");
        return await page(c, target, { values, message, token: posted._token }, 503);
      }
      if (err instanceof AppError && err.status < 500 && err.status !== 429) {
        // Not the buyer's doing but the shop's set-up (no route for the currency, a disabled account, a URL it no
        // longer allows). Its reason is for the shop and its operator, not for a stranger on the shop's page: it
        // goes to the log, the buyer is told only that the form cannot take payments now. 503: the form is out of
        // order until the shop's set-up changes, and nothing the buyer types would help.
        log.warn("form submit refused", {
          formId: target.form.id,
          shopId: target.shop.id,
          code: err.code,
          reason: err.message,
          fields: err.fields,
        });
        const message = `This form cannot take payments right now. Nothing was charged. Please try again later, ` +
          `or contact ${target.shop.name}.`;
        return await page(c, target, { values, message }, 503);
      }
      throw err;
    }
  });

  for (const landed of ["thanks", "not-paid"] as const) {
    app.get(`${FORM}/${landed}` as const, async (c) => {
      const { form, shop, open } = await loadBuyerForm(ctx, c.req.param("id"));
      const payment = await findFormPayment(ctx, form, {
        paymentId: c.req.query("apay_payment"),
        address: limitedAddress(c),
      });
      const check = payment ? `/forms/${form.id}/${landed}?apay_payment=${encodeURIComponent(payment.id)}` : "";
      return c.html(
        renderPage(
          <FormReturnPage
            shopName={shop.name}
            landed={landed}
            payment={payment}
            retryHref={open ? `/forms/${form.id}` : null}
            checkHref={check}
            returnUrl={form.returnUrl ?? null}
          />,
        ),
        200,
        // The status changes: a cached page would show an old one.
        { "cache-control": "no-store" },
      );
    });
  }
  return app;
}

/** The posted form fields as strings; anything but a form post reads as no fields (and so fails the token). */
async function readPostedFields(c: Context): Promise<Record<string, string>> {
  const type = c.req.header("content-type") ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded") && !type.startsWith("multipart/form-data")) return {};
  const body = await c.req.parseBody();
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(body)) if (typeof v === "string") out[k] = v;
  return out;
}
