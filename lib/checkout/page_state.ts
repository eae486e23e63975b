import type { Payment } from "../payments/types.ts";
import type { CheckoutSession } from "./types.ts";
import { sessionStatus } from "./sessions.ts";
import { isSiteHost } from "../shops.ts";

/** What the buyer's checkout page shows, and which event it tells the embedding page. */
export type PageState = "open" | "waiting" | "complete" | "failed" | "expired";

/** The event the shop's page gets for each state (checkout.js `on`); an open page says it is ready. */
export const STATE_EVENTS = {
  open: "ready",
  waiting: null,
  complete: "succeeded",
  failed: "failed",
  expired: "expired",
} as const satisfies Record<PageState, string | null>;

/** Providers whose pay page may be framed (they send frame-ancestors for the sites we name); others open in a popup. */
const FRAMABLE_PROVIDERS: ReadonlySet<string> = new Set(["bansky"]);

export function pageState(p: Payment, now: number, returned: boolean): PageState {
  if (p.status === "failed") return "failed";
  const status = sessionStatus(p);
  if (status !== "open") return status;
  if (isPastExpiry(p, now)) {
    // The pay link no longer leads to the provider (lib/payments/query.ts), so a buyer who never went there cannot pay
    // any more. One who did may still be paying, or the provider's word has not reached us: the page waits for it, or
    // for our expiry (which stops the provider first), rather than tell the shop's page "expired" while money may come.
    return returned || p.firstRedirectAt ? "waiting" : "expired";
  }
  // Back from the provider but its word has not reached us yet: the page waits and looks again.
  return returned ? "waiting" : "open";
}

/** Whether the buyer may still start paying from our page: the pay link leads to the provider until expiresAt. */
export function isPayable(p: Payment, now: number): boolean {
  return p.status === "pending" && !isPastExpiry(p, now);
}

function isPastExpiry(p: Payment, now: number): boolean {
  return p.expiresAt !== undefined && p.expiresAt <= now;
}

/**
 * Whether the provider's pay page opens inside our frame. Only when the provider lets the shop's sites
 * frame it and it is on our own origin: the shop's CSP then needs nothing but our origin in frame-src
 * (frame-src governs every page the frame shows). Otherwise it opens in a popup.
 */
export function opensInline(p: Payment, publicBaseUrl: string): boolean {
  if (!FRAMABLE_PROVIDERS.has(p.provider) || !p.providerUrl) return false;
  try {
    return new URL(p.providerUrl).origin === new URL(publicBaseUrl).origin;
  } catch {
    return false;
  }
}

/**
 * The embedding page's origin as checkout.js names it (`origin=`), when it is a plain http(s) origin; else null (an
 * old script's frame, a sandboxed page's "null"). It only picks the page we answer: a listed origin gets the checkout,
 * whose frame-ancestors the browser still enforces, and any other gets a refusal that it alone may frame.
 */
export function embeddingOrigin(hint: string | undefined): string | null {
  if (!hint || hint.length > 300) return null;
  try {
    const url = new URL(hint);
    // The answer's CSP names it (frame-ancestors): a host no site has ("*", "a.example;sandbox") would widen or
    // rewrite that policy, so it is no origin here either.
    const plain = (url.protocol === "https:" || url.protocol === "http:") && isSiteHost(url.hostname);
    return plain && url.origin === hint ? hint : null;
  } catch {
    return null;
  }
}

/** What the page needs to render, from the session and its payment. */
export interface CheckoutPageProps {
  session: CheckoutSession;
  payment: Payment;
  state: PageState;
  shopName: string;
  payUrl: string;
  /** Whether the Pay button is shown: not once expiresAt passed, even while the page waits for the provider's word. */
  payable: boolean;
  inline: boolean;
  /** The shop's embedding sites: the only origins the page posts its events to. */
  origins: string[];
}
