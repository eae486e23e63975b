import { formatAmount } from "../../lib/money.ts";
import { type CheckoutPageProps, STATE_EVENTS } from "../../lib/checkout/page_state.ts";
import type { FrameErrorCode } from "../../lib/checkout/embed_errors.ts";

const HEADINGS = {
  open: "Pay",
  waiting: "Confirming your payment…",
  complete: "Payment complete",
  failed: "Payment failed",
  expired: "This checkout has expired",
} as const;

const TEXTS = {
  open: null,
  waiting:
    "The payment provider has not confirmed it yet. This page looks again in a moment; if you did not finish paying, press Pay.",
  complete: "Thank you. The shop has been told.",
  failed: "The payment was declined. No money was taken. The shop can start a new checkout for you.",
  expired: "It can no longer be paid. The shop can start a new checkout for you.",
} as const;

/** Waiting past the session's expiry: the buyer can no longer start paying, only finish what they started. */
const CLOSING_TEXT =
  "The payment provider has not confirmed it yet. This page looks again in a moment. The checkout has expired, so it cannot be paid from here any more: if you did not pay, the shop can start a new checkout for you.";

/**
 * The buyer's checkout page, shown inside the shop's frame (or our payment popup): the order, one Pay
 * button, and the outcome. Its script (static/checkout_frame.js) tells the embedding page what happened.
 */
export function CheckoutPage(props: CheckoutPageProps) {
  const { session, state } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`Checkout · ${props.shopName}`}</title>
        <link rel="stylesheet" href="/static/style.css" />
        <script type="module" src="/static/checkout_frame.js" defer />
      </head>
      <body class="checkout">
        <main
          data-checkout={session.id}
          data-state={state}
          data-event={STATE_EVENTS[state] ?? ""}
          data-origins={JSON.stringify(props.origins)}
        >
          <h1>{HEADINGS[state]}</h1>
          <p class="muted">{props.shopName}</p>
          {session.description && <p>{session.description}</p>}
          {session.lineItems && (
            <table class="lines">
              <tbody>
                {session.lineItems.map((item, i) => (
                  <tr key={i}>
                    <td>{item.quantity} × {item.name}</td>
                    <td class="num">{formatAmount(item.unitAmount * item.quantity, session.currency)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <p class="total">
            Total <strong>{formatAmount(session.amount, session.currency)}</strong>
          </p>
          {TEXTS[state] && <p role="status">{state === "waiting" && !props.payable ? CLOSING_TEXT : TEXTS[state]}</p>}
          {(state === "open" || state === "waiting") && props.payable && (
            <>
              <p>
                <a
                  class="button"
                  href={props.payUrl}
                  target={props.inline ? "_self" : "_blank"}
                  data-pay={props.inline ? "inline" : "popup"}
                >
                  Pay {formatAmount(session.amount, session.currency)}
                </a>
              </p>
              {!props.inline && (
                <p class="muted" role="status" data-popup-note hidden>
                  The payment opens in a new window. If nothing opened, your browser blocked it: allow pop-ups for this
                  site, or press Pay again.
                </p>
              )}
            </>
          )}
        </main>
      </body>
    </html>
  );
}

/** What the buyer reads in a frame that shows no checkout; the shop's page gets the code (checkout.js `error`). */
const REFUSALS = {
  origin_not_allowed: {
    title: "This checkout cannot be shown here",
    text: "The shop has not allowed this site to show its checkout. Please tell the shop, or pay on its own site.",
  },
  session_not_found: {
    title: "Checkout not found",
    text: "We could not find this checkout. Please reload the shop's page and try again.",
  },
} as const satisfies Record<FrameErrorCode, { title: string; text: string }>;

/**
 * Our page in the shop's frame when it shows no checkout: a few words for the buyer, and its script tells the
 * embedding page (`origin`, the only one that may frame it) the code, nothing else.
 */
export function CheckoutErrorPage(props: { code: FrameErrorCode; origin: string }) {
  const { title, text } = REFUSALS[props.code];
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${title} · AimbrellaPay`}</title>
        <link rel="stylesheet" href="/static/style.css" />
        <script type="module" src="/static/checkout_frame.js" defer />
      </head>
      <body class="checkout">
        <main data-checkout-error={props.code} data-origin={props.origin}>
          <h1>{title}</h1>
          <p>{text}</p>
        </main>
      </body>
    </html>
  );
}
