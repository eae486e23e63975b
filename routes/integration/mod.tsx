import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { buyerRedirect, type RedirectKind } from "../../lib/payments/query.ts";
import { MessagePage } from "../../components/message_page.tsx";
import { renderPage } from "../../components/html.tsx";

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

export function integrationRoutes(ctx: AppContext) {
  const app = new Hono();
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
      // A stale cached redirect could send a buyer back to pay twice.
      return c.body(null, 302, { location: target, "cache-control": "no-store", "referrer-policy": "same-origin" });
    });
  }
  return app;
}
