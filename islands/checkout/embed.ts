/**
 * checkout.js, the embed script shops load from our origin:
 *
 *   const checkout = AimbrellaPay.checkout({ clientSecret });
 *   checkout.on("succeeded", ({ sessionId }) => ...).mount("#pay");
 *
 * It frames our checkout page, sizes the frame to its content and passes on the page's events. It accepts
 * a message only from our origin and only from its own frame's window. No framework, no inline styles
 * (the CSSOM is not inline style to CSP), no network calls of its own: a shop's CSP needs only our origin
 * in script-src and frame-src.
 */

type EventName = "ready" | "succeeded" | "failed" | "expired";
type Handler = (detail: { sessionId: string }) => void;
const EVENTS: readonly string[] = ["ready", "succeeded", "failed", "expired"];
const SECRET = /^cs_[A-Za-z0-9_-]{22}_secret_[A-Za-z0-9_-]{43}$/;
const MIN_HEIGHT = 120;
const MAX_HEIGHT = 4000;

// Read while the script runs: our origin is wherever this script came from.
const script = document.currentScript as HTMLScriptElement | null;
const ORIGIN = new URL(script?.src || location.href).origin;

class Checkout {
  private frame: HTMLIFrameElement | null = null;
  private readonly handlers = new Map<EventName, Set<Handler>>();
  private readonly onMessage = (e: MessageEvent) => {
    // Exact checks: our origin, our own frame's window, our message shape.
    if (!this.frame || e.origin !== ORIGIN || e.source !== this.frame.contentWindow) return;
    const d = e.data;
    if (typeof d !== "object" || d === null || d.source !== "aimbrellapay") return;
    if (d.type === "resize" && typeof d.height === "number") {
      this.frame.style.height = `${Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, Math.ceil(d.height)))}px`;
    } else if (EVENTS.includes(d.type) && typeof d.sessionId === "string") {
      for (const cb of this.handlers.get(d.type) ?? []) {
        try {
          cb({ sessionId: d.sessionId });
        } catch (err) {
          console.error(err);
        }
      }
    }
  };

  constructor(private readonly clientSecret: string) {
    if (/^cs_(test|live)_/.test(clientSecret)) {
      throw new Error("AimbrellaPay: this is a Stripe client secret: mount it with Stripe.js (initEmbeddedCheckout)");
    }
    if (!SECRET.test(clientSecret)) throw new Error("AimbrellaPay: clientSecret is not a checkout client secret");
  }

  /** Frames the checkout in the element (or the first one the selector finds). */
  mount(target: string | Element): this {
    const el = typeof target === "string" ? document.querySelector(target) : target;
    if (!el) throw new Error(`AimbrellaPay: nothing matches ${String(target)}`);
    this.unmount();
    const frame = document.createElement("iframe");
    frame.src = `${ORIGIN}/checkout/frame?secret=${encodeURIComponent(this.clientSecret)}`;
    frame.title = "Payment";
    frame.allow = "payment";
    frame.style.border = "0";
    frame.style.width = "100%";
    frame.style.display = "block";
    frame.style.height = `${MIN_HEIGHT * 2}px`;
    this.frame = frame;
    addEventListener("message", this.onMessage);
    el.appendChild(frame);
    return this;
  }

  on(event: EventName, cb: Handler): this {
    if (!EVENTS.includes(event)) throw new Error(`AimbrellaPay: unknown event ${event}`);
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, set = new Set());
    set.add(cb);
    return this;
  }

  unmount(): void {
    removeEventListener("message", this.onMessage);
    this.frame?.remove();
    this.frame = null;
  }
}

(globalThis as unknown as { AimbrellaPay: unknown }).AimbrellaPay = {
  checkout: (opts: { clientSecret: string }) => new Checkout(opts?.clientSecret),
};
