import { Hono } from "hono";
import { renderSVG } from "uqr";
import type { AppContext } from "../../lib/context.ts";
import { findBuyerInvoice, findInvoice } from "../../lib/invoices/query.ts";
import { buyerStatusView, invoiceTotals, walletRequest } from "../../lib/invoices/view.ts";
import { formatBaseUnits } from "../../lib/invoices/amounts.ts";
import { NETWORKS } from "../../lib/invoices/coins.ts";
import { INVOICE_STATUS_TEXT, INVOICE_TIME_UP_TEXT, isInvoiceOpen } from "../../lib/invoices/status.ts";
import type { Invoice } from "../../lib/invoices/types.ts";
import { Page, renderPage } from "../../components/html.tsx";
import { Island } from "../../components/island.tsx";
import { publicLookup } from "../_public_lookup.ts";

/**
 * The buyer's invoice page and its JSON status route. Reachable by the
 * invoice's id alone, which holds 84 random bits after its millisecond (or is
 * an HMAC of the shop's own id under our key), so nobody finds an invoice they
 * were not given; an address that keeps trying ids is refused (publicLookup).
 */
export function invoicePageRoutes(ctx: AppContext) {
  const app = new Hono();
  app.use(async (c, next) => {
    await next();
    // The status changes by the second; a cached page or answer would show a stale one.
    c.header("cache-control", "no-store");
    c.header("referrer-policy", "no-referrer");
  });

  app.get("/:id", async (c) => {
    const { invoice, shopName } = await publicLookup(ctx, c, () => findBuyerInvoice(ctx, c.req.param("id")));
    return c.html(renderPage(<InvoicePage inv={invoice} shopName={shopName} now={ctx.now()} />));
  });

  app.get("/:id/status", async (c) => {
    const inv = await publicLookup(ctx, c, () => findInvoice(ctx, c.req.param("id")));
    return c.json(buyerStatusView(inv, ctx.now()));
  });
  return app;
}

function InvoicePage({ inv, shopName, now }: { inv: Invoice; shopName: string | null; now: number }) {
  const status = buyerStatusView(inv, now);
  const { due } = invoiceTotals(inv);
  const dueText = formatBaseUnits(due, inv.decimals);
  const wallet = walletRequest(inv);
  // Past expiresAt, money sent no longer pays for the order, though the sweep may not have recorded the expiry yet.
  const timeUp = status.expires && now >= inv.expiresAt;
  // Once the whole amount is on its way, or the time is up, there is nothing to send: no amount, no QR code.
  const open = isInvoiceOpen(inv.status) && due > 0n && !timeUp;
  const partly = due < BigInt(inv.amount);
  const network = NETWORKS[inv.network].label;
  return (
    // The tab says what the page asks now (the island reloads the page when that changes).
    <Page
      title={`${
        open ? `Pay ${dueText} ${inv.coin}` : timeUp ? INVOICE_TIME_UP_TEXT : INVOICE_STATUS_TEXT[inv.status]
      } · AimbrellaPay`}
      script
    >
      <div class="invoice">
        {shopName && <p class="muted">{shopName}</p>}
        <h1>{inv.title || "Invoice"}</h1>
        {inv.description && <p>{inv.description}</p>}
        <Island
          name="InvoiceStatus"
          props={{ statusUrl: `/invoices/${inv.id}/status`, initial: status }}
        />
        {open && (
          <>
            <div class="card">
              <p class="muted small">{partly ? "Send the rest, exactly" : "Send exactly"}</p>
              <div class="secret-row">
                <code class="invoice-amount">{dueText} {inv.coin}</code>
                <Island name="CopyButton" props={{ text: dueText, label: "Copy amount" }} />
              </div>
              <p class="muted small">
                on the {network} network to
              </p>
              <div class="secret-row">
                <code class="invoice-address">{inv.address}</code>
                <Island name="CopyButton" props={{ text: inv.address, label: "Copy address" }} />
              </div>
              <p class="muted small">
                Only {inv.coin} on {network}: anything else sent here does not pay this invoice.
              </p>
            </div>
            <figure class="qr">
              {/* uqr renders the SVG from our own data (address and amount), so it is safe to inline. */}
              <div
                role="img"
                aria-label={`QR code for paying ${dueText} ${inv.coin} to ${inv.address}`}
                dangerouslySetInnerHTML={{ __html: renderSVG(wallet.qr, { border: 2 }) }}
              />
              <figcaption class="muted small">
                {wallet.link
                  ? (
                    <>
                      Scan with your wallet, or <a href={wallet.link}>open it in your wallet app</a>.
                    </>
                  )
                  : <>Scan the address with your wallet, and send the amount above.</>}
              </figcaption>
            </figure>
            <p class="muted small">
              {status.expires && (
                <>
                  Expires at <Island name="LocalTime" props={{ at: inv.expiresAt }} inline />{" "}
                  unless your payment has arrived by then.{" "}
                </>
              )}
              <noscript>Reload the page to see news.</noscript>
            </p>
          </>
        )}
        {inv.returnUrl && (
          <p>
            {/* The shop's own URL, checked when the invoice was made (https, its allowed hosts). */}
            <a href={inv.returnUrl}>Back to {shopName ?? "the shop"}</a>
          </p>
        )}
      </div>
    </Page>
  );
}
