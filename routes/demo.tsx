import { Hono } from "hono";
import type { AppContext } from "../lib/context.ts";
import {
  checkDemoRedirect,
  demoBuy,
  demoCheckoutSession,
  type DemoRedirectCheck,
  type DemoShop,
  receiveDemoPostback,
  recentDemoPostbacks,
} from "../lib/demo.ts";
import type { DemoPostback } from "../lib/db/demo.ts";
import { isPaid, type PaymentStatus } from "../lib/payments/status.ts";
import { Page, renderPage } from "../components/html.tsx";
import { checkoutScriptPath } from "./checkout/script.ts";
import { allowFrameSources, allowPopups } from "./_headers.ts";
import { requestText } from "./_body_limit.ts";

/** A tiny shop that integrates AimbrellaPay the way a real one would. */
export function demoRoutes(ctx: AppContext, demo: DemoShop, selfUrl: string) {
  const app = new Hono();
  app.get("/", async (c) => c.html(renderPage(<DemoPage postbacks={await recentDemoPostbacks(ctx)} />)));
  app.post("/buy", async (c) => c.redirect(await demoBuy(ctx, demo, selfUrl), 303));
  // The embedded variant: the session is made server-side on each visit; the page mounts it with checkout.js.
  app.get("/embedded", async (c) => {
    const session = await demoCheckoutSession(demo, selfUrl);
    c.header("cache-control", "no-store");
    // Like any shop's page that embeds the checkout, this one frames our origin (here its own).
    allowFrameSources(c, ["'self'"]);
    // And, as such a page must, it lets the checkout's payment popup reach back to the frame that opened it.
    allowPopups(c);
    return c.html(renderPage(<EmbeddedPage {...session} script={checkoutScriptPath()} />));
  });
  app.get("/result", async (c) => {
    const order = c.req.query("order") ?? "";
    const check = await checkDemoRedirect(ctx, demo, { query: new URL(c.req.url).searchParams, order, selfUrl });
    return c.html(
      renderPage(<ResultPage declined={c.req.query("outcome") === "error"} order={order} check={check} />),
    );
  });
  app.post("/postback", async (c) => {
    const verified = await receiveDemoPostback(ctx, demo, c.req.raw.headers, await requestText(c));
    return verified ? c.json({ received: true }) : c.json({ received: false, error: "bad signature" }, 400);
  });
  return app;
}

function DemoPage({ postbacks }: { postbacks: DemoPostback[] }) {
  return (
    <Page title="Demo shop · AimbrellaPay" script>
      <h1>Demo shop</h1>
      <p class="muted">
        A pretend shop using AimbrellaPay with the built-in Bansky sandbox. No money moves.
      </p>
      <div class="card">
        <p>A very fine umbrella</p>
        <form method="post" action="/demo/buy" data-busy="Starting the payment…">
          <button type="submit">Buy for 10.00 EUR</button>
        </form>
        <p class="muted">
          The buyer goes to the provider's page and comes back. Or pay without leaving the shop's page:{" "}
          <a href="/demo/embedded">embedded checkout</a>.
        </p>
      </div>
      <h2>Postbacks received</h2>
      {postbacks.length === 0 ? <p class="muted">None yet. Buy something and pay or decline it.</p> : (
        <table>
          <thead>
            <tr>
              <th>Received</th>
              <th>Event</th>
              <th>Order</th>
              <th>Signature</th>
            </tr>
          </thead>
          <tbody>
            {postbacks.map((p) => (
              <tr key={p.webhookId + p.receivedAt}>
                <td>{new Date(p.receivedAt).toISOString().replace("T", " ").slice(0, 19)}</td>
                <td>{p.type}</td>
                <td>{p.shopTxId}</td>
                <td class={p.verified ? "ok" : "bad"}>{p.verified ? "verified" : "INVALID"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Page>
  );
}

/** The demo shop's embedded checkout: our checkout framed in its page, its events listed as they arrive. */
function EmbeddedPage(props: { order: string; sessionId: string; clientSecret: string; script: string }) {
  return (
    <Page title="Demo shop · embedded checkout · AimbrellaPay">
      <h1>Demo shop</h1>
      <p class="muted">
        Order{" "}
        {props.order}, paid without leaving this page: the checkout below is AimbrellaPay's, framed by checkout.js. No
        money moves.
      </p>
      <div class="card" id="demo-checkout" data-client-secret={props.clientSecret} data-session={props.sessionId}></div>
      <h2>Events this page received</h2>
      <ol id="demo-events" aria-live="polite"></ol>
      <p>
        <a href="/demo">Back to the demo shop</a> (its postbacks are listed there)
      </p>
      <script src={props.script}></script>
      <script src="/static/demo_embed.js"></script>
    </Page>
  );
}

/** What the demo's result page tells the buyer: only what the verified redirect says, never the URL's own words. */
function resultText(declined: boolean, check: DemoRedirectCheck): { title: string; text: string } {
  // Signed by us (verified), so one of our payment statuses.
  const status = check.state === "verified" ? check.status as PaymentStatus : null;
  if (status !== null && isPaid(status)) {
    return { title: "Thank you!", text: "you paid. The shop ships on the signed postback, not on this page." };
  }
  // Unsigned or pending, "success" in the URL proves nothing (anyone can type it): the postback will tell.
  if (status === "pending" || (status === null && !declined)) {
    return { title: "We are confirming your payment", text: "the shop will know once the signed postback arrives." };
  }
  return { title: "Payment not completed", text: "the payment was declined or cancelled." };
}

const SIGNATURE_TEXT = {
  verified: "verified",
  invalid: "INVALID",
  unsigned: "not signed",
  other_order: "INVALID: another order's payment",
  unchecked: "signed, but the order could not be looked up",
} as const satisfies Record<DemoRedirectCheck["state"], string>;

function ResultPage({ declined, order, check }: { declined: boolean; order: string; check: DemoRedirectCheck }) {
  const { title, text } = resultText(declined, check);
  return (
    <Page title="Demo shop · AimbrellaPay">
      <h1>{title}</h1>
      <p>
        Order {order}: {text}
      </p>
      <p>
        Redirect signature:{" "}
        <strong class={check.state === "verified" ? "ok" : "bad"} data-redirect-signature={check.state}>
          {SIGNATURE_TEXT[check.state]}
        </strong>
        {check.state === "verified" && <>{" "}· status {check.status}</>}
      </p>
      <p>
        <a href="/demo">Back to the demo shop</a>
      </p>
    </Page>
  );
}
