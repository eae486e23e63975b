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
import { EMBED_ERROR_CODES, type EmbedErrorCode } from "../../lib/checkout/embed_errors.ts";

type EventName = "ready" | "succeeded" | "failed" | "expired" | "error" | "recovered";
type Handler = (detail: { sessionId: string; code?: EmbedErrorCode }) => void;
/** The events our frame says, each naming its session; the others the script says itself. */
const FRAME_EVENTS: readonly string[] = ["ready", "succeeded", "failed", "expired"];
const EVENTS: readonly string[] = [...FRAME_EVENTS, "error", "recovered"];
const ERROR_CODES: readonly string[] = EMBED_ERROR_CODES;
const SECRET = /^(cs_[A-Za-z0-9_-]{22})_secret_[A-Za-z0-9_-]{43}$/;
const MIN_HEIGHT = 120;
const MAX_HEIGHT = 4000;
/**
 * How long the frame has to say anything before the page gets `error` with `load_failed`: from mount (a server that
 * never answers), and once the frame has loaded (our page speaks as it loads, so a loaded frame that said nothing is
 * a browser's error page, or a page the browser would not frame).
 */
const LOAD_TIMEOUT_MS = 20_000;
const SILENT_AFTER_LOAD_MS = 2_000;

// Read while the script runs: our origin is wherever this script came from.
const script = document.currentScript as HTMLScriptElement | null;
const ORIGIN = new URL(script?.src || location.href).origin;

class Checkout {
  private frame: HTMLIFrameElement | null = null;
  private readonly handlers = new Map<EventName, Set<Handler>>();
  private readonly sessionId: string;
  /** Set while the frame has said nothing yet: fires `load_failed` (see LOAD_TIMEOUT_MS). */
  private silence: ReturnType<typeof setTimeout> | undefined;
  /** Set once the page was told `load_failed` and the frame has said nothing since. */
  private toldLoadFailed = false;
  private readonly onMessage = (e: MessageEvent) => {
    // Exact checks: our origin, our own frame's window, our message shape.
    if (!this.frame || e.origin !== ORIGIN || e.source !== this.frame.contentWindow) return;
    const d = e.data;
    if (typeof d !== "object" || d === null || d.source !== "aimbrellapay") return;
    // A frame slower than our wait (a slow network, a slow device), not a broken one: the page that was told it
    // failed hears that it shows after all. Not for a refusal, which is an error of its own.
    if (this.heard() && d.type !== "error") this.emit("recovered", { sessionId: this.sessionId });
    if (d.type === "resize" && typeof d.height === "number") {
      this.frame.style.height = `${Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, Math.ceil(d.height)))}px`;
    } else if (d.type === "error" && ERROR_CODES.includes(d.code)) {
      // The session is the one this page mounted: the frame's error message names none.
      this.emit("error", { sessionId: this.sessionId, code: d.code });
    } else if (FRAME_EVENTS.includes(d.type) && typeof d.sessionId === "string") {
      this.emit(d.type, { sessionId: d.sessionId });
    }
  };

  constructor(private readonly clientSecret: string) {
    if (/^cs_(test|live)_/.test(clientSecret)) {
      throw new Error("AimbrellaPay: this is a Stripe client secret: mount it with Stripe.js (initEmbeddedCheckout)");
    }
    const match = SECRET.exec(clientSecret);
    if (!match) throw new Error("AimbrellaPay: clientSecret is not a checkout client secret");
    this.sessionId = match[1];
  }

  private emit(event: EventName, detail: Parameters<Handler>[0]) {
    for (const cb of this.handlers.get(event) ?? []) {
      try {
        cb(detail);
      } catch (err) {
        console.error(err);
      }
    }
  }

  /** Waits `ms` more for the frame's first word, then tells the page it failed to load. */
  private awaitWord(ms: number) {
    clearTimeout(this.silence);
    this.silence = setTimeout(() => {
      this.silence = undefined;
      this.toldLoadFailed = true;
      this.emit("error", { sessionId: this.sessionId, code: "load_failed" });
    }, ms);
  }

  /** The frame said something (or is gone): no more waiting. True when the page was told `load_failed` meanwhile. */
  private heard(): boolean {
    clearTimeout(this.silence);
    this.silence = undefined;
    const late = this.toldLoadFailed;
    this.toldLoadFailed = false;
    return late;
  }

  /** Frames the checkout in the element (or the first one the selector finds). */
  mount(target: string | Element): this {
    const el = typeof target === "string" ? document.querySelector(target) : target;
    if (!el) throw new Error(`AimbrellaPay: nothing matches ${String(target)}`);
    this.unmount();
    const frame = document.createElement("iframe");
    // Our page's origin, so that a site the shop has not listed is told so (origin_not_allowed) instead of getting a
    // frame the browser refuses. Only a hint: the browser still enforces the shop's list (frame-ancestors).
    frame.src = `${ORIGIN}/checkout/frame?secret=${encodeURIComponent(this.clientSecret)}&origin=${
      encodeURIComponent(location.origin)
    }`;
    frame.title = "Payment";
    frame.allow = "payment";
    frame.style.border = "0";
    frame.style.width = "100%";
    frame.style.display = "block";
    frame.style.height = `${MIN_HEIGHT * 2}px`;
    this.frame = frame;
    addEventListener("message", this.onMessage);
    // Only the first page counts: the provider's pay page that follows in the frame says nothing to us.
    let loaded = false;
    frame.addEventListener("load", () => {
      if (!loaded && this.silence !== undefined) this.awaitWord(SILENT_AFTER_LOAD_MS);
      loaded = true;
    });
    this.awaitWord(LOAD_TIMEOUT_MS);
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
    this.heard();
    removeEventListener("message", this.onMessage);
    this.frame?.remove();
    this.frame = null;
  }
}

(globalThis as unknown as { AimbrellaPay: unknown }).AimbrellaPay = {
  checkout: (opts: { clientSecret: string }) => new Checkout(opts?.clientSecret),
};
