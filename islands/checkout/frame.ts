// Browser code: window.parent, window.opener and window.open are the point here, not Deno globals.
// deno-lint-ignore-file no-window no-window-prefix
/**
 * The script of our checkout page (static/checkout_frame.js). Inside the shop's frame it tells the
 * embedding page what happened and how tall it is; in our payment popup it tells the frame that opened it
 * and closes. Messages go only to the shop's embedding sites (each named exactly; the browser delivers a
 * message only to a parent of that origin) or, from the popup, only to our own origin.
 */

/** Room made for the provider's pay page in the frame: it cannot tell us its height, as our own pages do. */
const PROVIDER_HEIGHT = 640;

const root = document.querySelector<HTMLElement>("[data-checkout]");
if (root) run(root);
const refusal = document.querySelector<HTMLElement>("[data-checkout-error]");
if (refusal) tellRefusal(refusal);

/**
 * Our page that shows no checkout (a site the shop has not listed, a session we do not know) tells the embedding page
 * why, so it can say something to its buyer: the code alone, and only to the origin the page named, which is the only
 * one allowed to frame this page.
 */
function tellRefusal(el: HTMLElement) {
  const origin = el.dataset.origin;
  if (window.parent === window || !origin) return;
  window.parent.postMessage({ source: "aimbrellapay", type: "error", code: el.dataset.checkoutError }, origin);
}

function run(root: HTMLElement) {
  const sessionId = root.dataset.checkout!;
  const state = root.dataset.state;
  const event = root.dataset.event;
  const origins: string[] = JSON.parse(root.dataset.origins ?? "[]");
  const framed = window.parent !== window;

  // Where the frame's messages may go: the parent's own origin where the browser tells it, else every
  // allowed site (only the one that is the parent receives it).
  const ancestor = (location as Location & { ancestorOrigins?: DOMStringList }).ancestorOrigins?.[0];
  const targets = ancestor ? origins.filter((o) => o === ancestor) : origins;
  const post = (msg: Record<string, unknown>) => {
    for (const origin of targets) window.parent.postMessage({ source: "aimbrellapay", sessionId, ...msg }, origin);
  };

  if (!framed) {
    // Our payment popup, back from the provider: let the frame that opened it look again, then close.
    if (window.opener && state !== "open") {
      try {
        window.opener.postMessage({ source: "aimbrellapay-popup", sessionId }, location.origin);
      } catch {
        // The opener is gone (the shop's page was closed): nothing to tell.
      }
      if (state !== "waiting") window.close();
    }
  } else {
    // The body, not the document: the document is never shorter than the frame, so it could only grow.
    const report = () => post({ type: "resize", height: document.body.getBoundingClientRect().height });
    new ResizeObserver(report).observe(document.body);
    report();
    if (event) post({ type: event });
    // The provider's page comes next in this frame and would be cut off at our page's height: make room first.
    // Our return page reports its own height again.
    for (const link of root.querySelectorAll<HTMLAnchorElement>("a[data-pay=inline]")) {
      link.addEventListener("click", () => {
        post({ type: "resize", height: Math.max(document.body.getBoundingClientRect().height, PROVIDER_HEIGHT) });
      });
    }
  }

  // Waiting for the provider's word: look again shortly (a load of this page asks the provider), for a minute at
  // most; after that the page keeps its Pay button for a buyer who came back without paying. Each look loads the
  // page in the background and shows it only once its state has moved: reloading the page every 1.5 s moved a
  // screen reader's place back to the top each time.
  if (state === "waiting") lookAgainLater(Number(new URLSearchParams(location.search).get("look") ?? 0));

  // The Pay link looks like a button, so it answers Space as a button does (a link alone answers only Enter).
  for (const link of root.querySelectorAll<HTMLAnchorElement>("a[data-pay]")) {
    link.addEventListener("keydown", (e) => {
      if (e.key !== " ") return;
      e.preventDefault();
      link.click();
    });
  }

  const pay = root.querySelector<HTMLAnchorElement>("a[data-pay=popup]");
  if (pay) {
    let popup: Window | null = null;
    let watch: ReturnType<typeof setInterval> | undefined;
    // Once: the popup's message and its closing both mean "look again".
    const lookAgain = () => {
      clearInterval(watch);
      popup = null;
      location.reload();
    };
    pay.addEventListener("click", (e) => {
      e.preventDefault();
      popup = window.open(pay.href, "aimbrellapay_payment", "popup,width=520,height=720");
      const note = root.querySelector<HTMLElement>("[data-popup-note]");
      if (note) note.hidden = popup !== null;
      if (!popup) return;
      clearInterval(watch);
      watch = setInterval(() => popup?.closed && lookAgain(), 500);
    });
    addEventListener("message", (e) => {
      if (e.origin !== location.origin || !popup || e.source !== popup) return;
      if (e.data?.source === "aimbrellapay-popup" && e.data.sessionId === sessionId) lookAgain();
    });
  }
}

/** Looks at the checkout again in 1.5 s, up to the 40th look, and shows it once it is no longer waiting. */
function lookAgainLater(looks: number) {
  if (looks >= 40) return;
  setTimeout(async () => {
    const next = new URL(location.href);
    next.searchParams.set("look", String(looks + 1));
    try {
      const res = await fetch(next, { credentials: "same-origin" });
      // An error page has no state to read: nothing new yet (a page in its place would leave no way to pay).
      const page = res.ok ? await res.text() : null;
      const moved = page &&
        new DOMParser().parseFromString(page, "text/html").querySelector<HTMLElement>("[data-checkout]")?.dataset.state;
      if (moved && moved !== "waiting") return location.replace(next);
    } catch {
      // Offline for a moment: the next look tries again.
    }
    lookAgainLater(looks + 1);
  }, 1500);
}
