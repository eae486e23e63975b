import { type Context, Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { renderPage } from "../../components/html.tsx";
import { MessagePage } from "../../components/message_page.tsx";
import { openSessionById, openSessionBySecret, recheckQuietly } from "../../lib/checkout/sessions.ts";
import { embeddingOrigin, isPayable, opensInline, pageState } from "../../lib/checkout/page_state.ts";
import type { FrameErrorCode } from "../../lib/checkout/embed_errors.ts";
import type { CheckoutSession } from "../../lib/checkout/types.ts";
import type { Payment } from "../../lib/payments/types.ts";
import type { Shop } from "../../lib/db/shops.ts";
import { payUrl } from "../../lib/payments/view.ts";
import { allowFraming, allowOpener } from "../_headers.ts";
import { limitedAddress } from "../_client_address.ts";
import { CheckoutErrorPage, CheckoutPage } from "./page.tsx";

/**
 * The buyer's pages of an embedded checkout, framed by the shop's page (checkout.js): `/checkout/frame`
 * opens the session by its client secret, and `/checkout/return/:id` is where the provider sends the buyer
 * back (inside the frame, or in our popup). Only the shop's embedding sites may frame them.
 */
export function checkoutPageRoutes(ctx: AppContext) {
  const app = new Hono();

  app.get("/frame", async (c) => {
    const secret = c.req.query("secret") ?? "";
    const embedder = embeddingOrigin(c.req.query("origin"));
    const opened = secret.length <= 200 ? await openSessionBySecret(ctx, secret) : null;
    if (!opened) return embedder ? refusal(c, "session_not_found", embedder) : notFound(c);
    // The shop's own page on a site it has not listed (a staging site, say): told so, instead of a frame the browser
    // refuses and the page never hears of. It holds the client secret already; the refusal shows nothing of the session.
    if (embedder && !(opened.shop.embedOrigins ?? []).includes(embedder)) {
      return refusal(c, "origin_not_allowed", embedder);
    }
    // After a trip to the provider (a popup that closed), ask it rather than wait for its webhook.
    const payment = opened.payment.firstRedirectAt
      ? await recheckQuietly(ctx, opened.payment, { by: "checkout.page", address: limitedAddress(c) })
      : opened.payment;
    // Still pending here means not paid yet (a popup closed early): the checkout stays payable.
    return render(c, { ...opened, payment }, false);
  });

  app.get("/return/:id", async (c) => {
    const opened = await openSessionById(ctx, c.req.param("id"));
    if (!opened) return notFound(c);
    const payment = await recheckQuietly(ctx, opened.payment, { by: "checkout.page", address: limitedAddress(c) });
    return render(c, { ...opened, payment }, true);
  });

  function render(
    c: Context,
    { session, payment, shop }: { session: CheckoutSession; payment: Payment; shop: Shop },
    returned: boolean,
  ) {
    const origins = shop.embedOrigins ?? [];
    allowFraming(c, origins);
    // The payment popup comes back here and must still reach the frame that opened it.
    allowOpener(c);
    c.header("cache-control", "no-store");
    return c.html(renderPage(
      <CheckoutPage
        session={session}
        payment={payment}
        state={pageState(payment, ctx.now(), returned)}
        payable={isPayable(payment, ctx.now())}
        shopName={shop.name}
        payUrl={payUrl(payment.id, ctx.config.publicBaseUrl)}
        inline={opensInline(payment, ctx.config.publicBaseUrl)}
        origins={origins}
      />,
    ));
  }

  return app;
}

/**
 * A frame that shows no checkout, framable by the page that asked for it (`origin`, which the page's script gave) and
 * telling it only the code: its text and that code are all it holds, so nothing goes to a site the shop did not list.
 */
function refusal(c: Context, code: FrameErrorCode, origin: string) {
  allowFraming(c, [origin]);
  c.header("cache-control", "no-store");
  return c.html(
    renderPage(<CheckoutErrorPage code={code} origin={origin} />),
    code === "origin_not_allowed" ? 403 : 404,
  );
}

function notFound(c: Context) {
  c.header("cache-control", "no-store");
  return c.html(
    renderPage(
      <MessagePage
        title="Checkout not found"
        text="We could not find this checkout. Please reload the shop's page and try again."
      />,
    ),
    404,
  );
}
