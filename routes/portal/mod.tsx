import { type Context, Hono, type MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import type { AppContext } from "../../lib/context.ts";
import {
  authenticatePortal,
  peekPortalLink,
  portalActor,
  signInWithLink,
  signOutPortal,
} from "../../lib/auth/portal.ts";
import { SESSION_TTL_MS } from "../../lib/auth/operators.ts";
import type { PortalSession } from "../../lib/db/portal.ts";
import { getShop, type Shop } from "../../lib/db/shops.ts";
import { NotFoundError, ValidationError } from "../../lib/errors.ts";
import { listFromField, setEmbedOrigins, UnconfirmedRemovalError } from "../../lib/shops.ts";
import { describePayment, resendPostback } from "../../lib/payments/admin.ts";
import { getShopPayment } from "../../lib/payments/query.ts";
import {
  describeScopedInvoice,
  listScopedDeliveries,
  listScopedInvoices,
  listScopedPayments,
  loadScopedStats,
  scopedPaymentsCsv,
} from "../../lib/console.ts";
import { InvoiceDetail, InvoicesList } from "../../components/invoices.tsx";
import { Page, renderPage } from "../../components/html.tsx";
import { AdminLayout, ConfirmStep, CsrfField, Flash } from "../../components/admin_layout.tsx";
import { EmbeddingCard, embedRemovalConfirmed, embedRemovalQuestion } from "../../components/embedding.tsx";
import { DeliveryTable } from "../../components/deliveries.tsx";
import { SigningCard } from "../../components/signing.tsx";
import { PaymentDetail, PaymentsList } from "../../components/payments.tsx";
import { StatsView } from "../../components/stats_view.tsx";
import { type CsrfEnv, csrfProtection } from "../admin/_session.ts";
import { doneNote } from "../admin/payments.tsx";
import { deliveriesDoneNote } from "../admin/deliveries.tsx";
import { hasIdShape } from "../../lib/ids.ts";
import type { ComponentChildren } from "preact";
import { MessagePage } from "../../components/message_page.tsx";
import { formPages } from "../admin/forms.tsx";
import { type PageNote, pageNoteStatus, refusalShownOnPage } from "../_page_note.ts";

const PORTAL_COOKIE = "__Host-apay_portal";
const NAV = [
  ["/portal", "Stats"],
  ["/portal/payments", "Payments"],
  ["/portal/forms", "Forms"],
  ["/portal/invoices", "Invoices"],
  ["/portal/deliveries", "Postbacks"],
  ["/portal/settings", "Settings"],
] as const;

type PortalEnv = { Variables: CsrfEnv["Variables"] & { portal: PortalSession; shopName: string } };

/**
 * The shop portal: a shop's own staff, signed in through a single-use link
 * from an operator, see their payments, postbacks and stats, and nothing of
 * any other shop (other shops' payments are simply not found).
 */
export function portalRoutes(ctx: AppContext) {
  const app = new Hono<PortalEnv>();
  app.use(csrfProtection(ctx));

  app.get("/signin", async (c) => {
    const token = c.req.query("token") ?? "";
    const { shopId } = await peekPortalLink(ctx, token);
    const shop = await getShop(ctx.kv, shopId);
    // A button, not an automatic sign-in: link scanners in mail clients must not use the link up.
    return c.html(renderPage(
      <Page title="Sign in · AimbrellaPay">
        <h1>Sign in to {shop?.name ?? "your shop"}</h1>
        <p>This link works once and signs you in for 12 hours.</p>
        <form method="post" action="/portal/signin">
          <CsrfField token={c.var.csrf} />
          <input type="hidden" name="token" value={token} />
          <button type="submit">Continue</button>
        </form>
      </Page>,
    ));
  });

  app.post("/signin", async (c) => {
    const session = await signInWithLink(ctx, c.var.form.token ?? "");
    setCookie(c, PORTAL_COOKIE, session, {
      path: "/",
      secure: true,
      httpOnly: true,
      sameSite: "Strict",
      maxAge: SESSION_TTL_MS / 1000,
    });
    return c.redirect("/portal", 303);
  });

  app.use(requirePortal(ctx));

  const layout = (c: Context<PortalEnv>, title: string, children: ComponentChildren) =>
    renderPage(
      <AdminLayout
        title={title}
        path={c.req.path}
        email={c.var.shopName}
        csrf={c.var.csrf}
        nav={NAV}
        home="/portal"
        signoutAction="/portal/logout"
      >
        {children}
      </AdminLayout>,
    );

  app.post("/logout", async (c) => {
    await signOutPortal(ctx, c.var.portal);
    setCookie(c, PORTAL_COOKIE, "", { path: "/", secure: true, httpOnly: true, sameSite: "Strict", maxAge: 0 });
    return c.html(renderPage(<Page title="Signed out">{<h1>You are signed out.</h1>}</Page>));
  });

  app.get("/", async (c) => {
    const stats = await loadScopedStats(ctx, { shopId: c.var.portal.shopId });
    return c.html(layout(c, "Stats", <StatsView stats={stats} title="Your stats" />));
  });

  app.get("/payments", async (c) => {
    // The same list as the console's, scoped to the session's shop whatever the query says.
    const list = await listScopedPayments(ctx, { shopId: c.var.portal.shopId }, c.req.query(), { limit: 50 });
    return c.html(layout(c, "Payments", <PaymentsList {...list} basePath="/portal/payments" />));
  });

  app.get("/payments.csv", (c) => {
    return c.body(scopedPaymentsCsv(ctx, { shopId: c.var.portal.shopId }, c.req.query()), 200, {
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="payments.csv"`,
    });
  });

  app.get("/invoices", async (c) => {
    // The console's list and pool, scoped to the session's shop whatever the query says.
    const list = await listScopedInvoices(ctx, { shopId: c.var.portal.shopId }, c.req.query(), { limit: 100 });
    return c.html(layout(c, "Invoices", <InvoicesList {...list} basePath="/portal/invoices" />));
  });

  app.get("/invoices/:id", async (c) => {
    const info = await describeScopedInvoice(ctx, { shopId: c.var.portal.shopId }, c.req.param("id"));
    return c.html(layout(
      c,
      "Invoice",
      <InvoiceDetail
        {...info}
        csrf={c.var.csrf}
        basePath="/portal/invoices"
        canCancel={false}
        addressRestMs={ctx.config.addressRestMs}
      />,
    ));
  });

  /** The shop's payment page, with a message on top: after a resend, or why one was refused (then 422). */
  const paymentPage = async (c: Context<PortalEnv>, id: string, flash?: PageNote) => {
    const payment = await ownPayment(ctx, c.var.portal, id);
    const info = await describePayment(ctx, payment.id);
    return c.html(
      layout(
        c,
        "Payment",
        <>
          {flash && <Flash kind={flash.kind}>{flash.text}</Flash>}
          <PaymentDetail {...info} csrf={c.var.csrf} basePath="/portal/payments" canRecheck={false} />
        </>,
      ),
      pageNoteStatus(flash, c.req.method),
    );
  };

  app.get("/payments/:id", (c) => {
    return paymentPage(c, c.req.param("id"), doneNote(c.req.query("done")));
  });

  app.post("/payments/:id/resend", async (c) => {
    const payment = await ownPayment(ctx, c.var.portal, c.req.param("id"));
    // Refused (no postback, one under way): said on the payment's page, as in the console.
    return await refusalShownOnPage("Not resent", async () => {
      const d = await resendPostback(ctx, payment.id, { actor: portalActor(c.var.portal) });
      return c.redirect(`/portal/payments/${encodeURIComponent(payment.id)}?done=resend-${d.status}`, 303);
    }, (note) => paymentPage(c, payment.id, note));
  });

  // The console's forms pages, scoped to the session's shop.
  app.route(
    "/forms",
    formPages<PortalEnv>(ctx, {
      scope: (c) => ({ shopId: c.var.portal.shopId }),
      basePath: "/portal/forms",
      actor: (c) => portalActor(c.var.portal),
      layout,
    }),
  );

  /** The shop's postbacks needing attention, with a line on top: what a resend did, or why it was refused (422). */
  const deliveriesPage = async (c: Context<PortalEnv>, note?: PageNote) => {
    const deliveries = await listScopedDeliveries(ctx, { shopId: c.var.portal.shopId });
    const shop = await getShop(ctx.kv, c.var.portal.shopId);
    return c.html(
      layout(
        c,
        "Postbacks",
        <>
          {note && <Flash kind={note.kind}>{note.text}</Flash>}
          <DeliveryTable
            deliveries={deliveries}
            paymentBase="/portal/payments"
            resendAction="/portal/deliveries/resend"
            csrf={c.var.csrf}
            now={ctx.now()}
          />
          {shop && <SigningCard shop={shop} now={ctx.now()} />}
        </>,
      ),
      pageNoteStatus(note, c.req.method),
    );
  };

  app.get("/deliveries", (c) => deliveriesPage(c, deliveriesDoneNote(c.req.query("done"))));

  app.post("/deliveries/resend", async (c) => {
    const { paymentId = "", deliveryId } = c.var.form;
    // Only the shop's own: another shop's payment or invoice is "not found", never "forbidden".
    if (hasIdShape("invoice", paymentId)) await describeScopedInvoice(ctx, { shopId: c.var.portal.shopId }, paymentId);
    else await ownPayment(ctx, c.var.portal, paymentId);
    return await refusalShownOnPage("Not resent", async () => {
      const d = await resendPostback(ctx, paymentId, { actor: portalActor(c.var.portal), deliveryId });
      return c.redirect(`/portal/deliveries?done=resent-${d.status}`, 303);
    }, (note) => deliveriesPage(c, note));
  });
  /**
   * The shop's setup: the sites that may frame its checkout and forms, which its staff set themselves, and what only
   * an operator changes (allowed hosts, default postback URL), shown so they know where they stand.
   */
  const settingsPage = async (
    c: Context<PortalEnv>,
    opts: { done?: string; embed?: { value: string; error?: string }; status?: 200 | 400 } = {},
  ) => {
    const shop = await getShop(ctx.kv, c.var.portal.shopId);
    if (!shop) throw new NotFoundError();
    const hosts = shop.allowedHosts ?? [];
    return c.html(
      layout(
        c,
        "Settings",
        <>
          {opts.done && <Flash kind="ok">{opts.done}</Flash>}
          <EmbeddingCard
            action="/portal/settings/embed"
            csrf={c.var.csrf}
            value={opts.embed?.value ?? (shop.embedOrigins ?? []).join("\n")}
            saved={shop.embedOrigins ?? []}
            whose="your"
            error={opts.embed?.error}
          />
          <section class="card">
            <h2>Set by us</h2>
            <p class="muted">To change these, ask your AimbrellaPay contact.</p>
            <dl class="fields">
              <dt>Allowed hosts</dt>
              <dd>
                {hosts.length ? hosts.join(", ") : "Any host: ask us to list your own, so no other site can be named."}
              </dd>
              <dt>Default postback URL</dt>
              <dd>{shop.defaultPostbackUrl ?? "None"}</dd>
            </dl>
          </section>
        </>,
      ),
      opts.status ?? 200,
    );
  };

  app.get("/settings", (c) => settingsPage(c, { done: SETTINGS_DONE.get(c.req.query("done") ?? "") }));

  app.post("/settings/embed", async (c) => {
    const value = c.var.form.embedOrigins ?? "";
    let shop: Shop;
    try {
      shop = await setEmbedOrigins(ctx.kv, c.var.portal.shopId, listFromField(value), {
        actor: portalActor(c.var.portal),
        now: ctx.now(),
        allowLocalUrls: ctx.config.allowLocalUrls,
        removing: embedRemovalConfirmed(c.var.form),
      });
    } catch (err) {
      // Taking a site away stops the checkout on its pages: asked first, naming what goes, when the page's script
      // did not ask (or asked about other sites than the list takes away now: it changed meanwhile).
      if (err instanceof UnconfirmedRemovalError) {
        return c.html(layout(
          c,
          "Please confirm",
          <ConfirmStep
            question={embedRemovalQuestion(err.removed.join(", "), "your")}
            button="Save embedding sites"
            destructive
            action="/portal/settings/embed"
            fields={{ embedOrigins: value, removing: err.removed.join(" ") }}
            csrf={c.var.csrf}
            cancel="/portal/settings"
          />,
        ));
      }
      if (!(err instanceof ValidationError)) throw err;
      return settingsPage(c, { embed: { value, error: err.fields?.embedOrigins }, status: 400 });
    }
    return c.redirect(`/portal/settings?done=${shop.embedOrigins?.length ? "embed-saved" : "embed-none"}`, 303);
  });

  return app;
}

/** The settings page's own messages, by the code its POST redirects with; any other code shows nothing. */
const SETTINGS_DONE = new Map([
  ["embed-saved", "Embedding sites saved."],
  ["embed-none", "No site may frame your checkout and forms now."],
]);

function requirePortal(ctx: AppContext): MiddlewareHandler<PortalEnv> {
  return async (c, next) => {
    const session = await authenticatePortal(ctx, getCookie(c, PORTAL_COOKIE));
    if (!session) {
      // No session (never signed in, signed out, or 12 hours passed): say how to get in, as a page.
      return c.html(
        renderPage(
          <MessagePage
            title="Sign in to your shop's portal"
            text={"The portal opens with a single-use sign-in link. Ask your AimbrellaPay contact, the operator " +
              "who set up your shop, for a new one: they create it on your shop's page in their console. " +
              "A link works once, within 24 hours, and signs you in for 12 hours."}
          />,
        ),
        401,
      );
    }
    c.set("portal", session);
    c.set("shopName", (await getShop(ctx.kv, session.shopId))?.name ?? session.shopId);
    await next();
  };
}

/** A payment of the signed-in shop; any other id is "not found", never "forbidden". */
async function ownPayment(ctx: AppContext, session: PortalSession, paymentId: string) {
  const shop = await getShop(ctx.kv, session.shopId);
  if (!shop) throw new NotFoundError();
  return await getShopPayment(ctx, shop, paymentId);
}
