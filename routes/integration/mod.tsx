import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { buyerRedirect, type RedirectKind } from "../../lib/payments/query.ts";
import { MessagePage } from "../../components/message_page.tsx";
import { renderPage } from "../../components/html.tsx";
import { isSendableUrl } from "../../lib/relay/url_guard.ts";
import { log } from "../../lib/log.ts";
import { HSTS } from "../_headers.ts";
import { checkoutReturnUrl } from "../../lib/checkout/sessions.ts";

/**
 * The buyer's path: our pay wrapper sends them to the provider, and the
 * provider sends them back through our success/error wrappers to the shop.
 * A redirect never changes a payment; only a verified webhook does.
 */
/** What the "not found" page needs; the app-wide page middlewares do not run on this hot path. */
const PAGE_HEADERS = {
  "content-security-policy": "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
};

const CLOSED_TEXT = {
  expired: "This payment link has expired, so it can no longer be paid. The shop can start a new payment for you.",
  cancelled: "The shop cancelled this payment, so it can no longer be paid.",
};

/** A pay link whose payment is over: say so (410) and offer the way back to the shop, never the provider. */
function closedPage(status: "expired" | "cancelled", errorUrl: string): Response {
  const html = renderPage(
    <MessagePage
      title={status === "expired" ? "This payment has expired" : "This payment was cancelled"}
      text={CLOSED_TEXT[status]}
      link={isSendableUrl(errorUrl) ? { href: errorUrl, label: "Back to the shop" } : undefined}
    />,
  );
  return new Response(html, {
    status: 410,
    headers: { "content-type": "text/html; charset=UTF-8", "cache-control": "no-store", ...PAGE_HEADERS },
  });
}

export function integrationRoutes(ctx: AppContext) {
  const app = new Hono();
  const redirectHeaders: Record<string, string> = { "cache-control": "no-store", "referrer-policy": "same-origin" };
  // The buyer's first request to us is often this redirect: tell browsers to stay on https from here.
  if (ctx.config.publicBaseUrl.startsWith("https:")) {
    redirectHeaders["strict-transport-security"] = HSTS;
  }
  const embeddedReturn = checkoutReturnUrl(ctx.config.publicBaseUrl, "");
  for (const kind of ["pay", "success", "error"] as const satisfies RedirectKind[]) {
    app.get(`/${kind}`, async (c) => {
      const id = c.req.query("id");
      const target = id && id.length <= 100 ? await buyerRedirect(ctx.kv, id, kind, ctx.now()) : null;
      if (!target) {
        return c.html(
          renderPage(
            <MessagePage
              title="Payment not found"
              text="We could not find this payment. Please go back to the shop and start the payment again."
            />,
          ),
          404,
          PAGE_HEADERS,
        );
      }
      if (target.kind === "closed") {
        // An embedded checkout's own page says it is over, inside the shop's frame, which this page may not be.
        if (target.errorUrl.startsWith(embeddedReturn)) {
          return c.body(null, 302, { location: target.errorUrl, ...redirectHeaders });
        }
        return closedPage(target.status, target.errorUrl);
      }
      if (!isSendableUrl(target.url)) {
        // Stored before URLs were normalised at creation: say so to the buyer rather than fail.
        log.warn("stored redirect URL cannot be sent", { paymentId: id, kind });
        return c.html(
          renderPage(
            <MessagePage
              title="We cannot send you back"
              text="The shop gave us an address we cannot send you to. Please go back to the shop's site."
            />,
          ),
          502,
          PAGE_HEADERS,
        );
      }
      // A stale cached redirect could send a buyer back to pay twice.
      return c.body(null, 302, { location: target.url, ...redirectHeaders });
    });
  }
  return app;
}
