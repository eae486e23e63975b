/**
 * The embedded checkout in a real Chromium: a shop's page on another origin (another loopback port) with
 * a strict CSP frames our checkout; the buyer pays inside it and the shop's page hears the outcome.
 */
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { HAS_CHROMIUM, launchChromium } from "../fixtures/chromium.ts";
import {
  buyerSettles,
  serveOnLoopback,
  startShopReceiver,
  startTestApp,
  type TestApp,
  type TestAppOptions,
} from "../fixtures/app.ts";
import { createShopKey, setEmbedOrigins } from "../lib/shops.ts";
import { verifyWebhook } from "../lib/relay/signing.ts";

const ARTIFACTS = "test-artifacts";
const NONCE = "c2hvcC1ub25jZQ";

interface ShopSite {
  origin: string;
  close(): Promise<void>;
}

/**
 * A shop's site: its server creates a checkout session with its secret key on every page load and renders
 * a page whose CSP allows scripts and frames only from AimbrellaPay (plus its own nonce'd glue code).
 * `/forged` also frames a page of `evilOrigin`, which posts fake outcomes to it.
 */
function startShopSite(app: TestApp, opts: { postbackUrl: string; evilOrigin?: string }): ShopSite {
  const ours = new URL(app.baseUrl).origin;
  let order = 0;
  const { server, port } = serveOnLoopback(async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/favicon.ico") return new Response(null, { status: 404 });
    const res = await fetch(`${app.baseUrl}/api/v1/checkout/sessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        id: `order-${++order}`,
        lineItems: [{ name: "Umbrella", unitAmount: 1250, quantity: 2 }],
        currency: "EUR",
        customerEmail: "buyer@example.com",
        postbackUrl: opts.postbackUrl,
      }),
    });
    const made = await res.json();
    const sessionId = made.sessionId;
    // `/unknown`: a client secret of the right shape that no session has (one mistyped into the page, say).
    const clientSecret = url.pathname === "/unknown"
      ? `cs_${"A".repeat(22)}_secret_${"B".repeat(43)}`
      : made.clientSecret;
    const forged = url.pathname === "/forged" && opts.evilOrigin;
    const frameSrc = forged ? `${ours} ${opts.evilOrigin}` : ours;
    const html = `<!doctype html><html><head><title>Shop</title></head><body>
<h1>The umbrella shop</h1><div id="pay"></div><ol id="events"></ol>
${forged ? `<iframe src="${opts.evilOrigin}/evil"></iframe>` : ""}
<script src="${ours}/checkout.js"></script>
<script nonce="${NONCE}">
  window.shopEvents = [];
  const log = (name) => (detail) => {
    // An error's code goes with its name: "error:load_failed".
    const said = detail.code ? name + ":" + detail.code : name;
    window.shopEvents.push([said, detail.sessionId]);
    const li = document.createElement("li");
    li.textContent = said + " " + detail.sessionId;
    document.getElementById("events").append(li);
  };
  window.checkout = AimbrellaPay.checkout({ clientSecret: ${JSON.stringify(clientSecret)} });
  for (const e of ["ready", "succeeded", "failed", "expired", "error", "recovered"]) window.checkout.on(e, log(e));
  window.checkout.mount("#pay");
  window.sessionId = ${JSON.stringify(sessionId)};
</script></body></html>`;
    return new Response(html, {
      headers: {
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": `default-src 'none'; script-src ${ours} 'nonce-${NONCE}'; frame-src ${frameSrc}`,
      },
    });
  });
  return { origin: `http://127.0.0.1:${port}`, close: () => server.shutdown() };
}

/**
 * A site nobody allowed: it frames a checkout it got hold of (`/`), or frames our checkout page itself naming
 * a listed site as its origin (`/lying?as=ORIGIN`), and posts fake outcomes to its parent.
 */
function startEvilSite(app: TestApp): ShopSite {
  const { server, port } = serveOnLoopback(async (req) => {
    const url = new URL(req.url);
    // Posted now and twice more, so some land after the shop's page is listening.
    const fake = `<script>for (const ms of [0, 200, 400]) setTimeout(() => { for (const type of ["ready", "succeeded"])
      parent.postMessage({ source: "aimbrellapay", type, sessionId: "cs_forged" }, "*"); }, ms);</script>`;
    if (url.pathname === "/evil") return new Response(fake, { headers: { "content-type": "text/html" } });
    const res = await fetch(`${app.baseUrl}/api/v1/checkout/sessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ amount: 500, currency: "EUR", customerEmail: "buyer@example.com" }),
    });
    const { clientSecret, sessionId } = await res.json();
    const claimed = url.searchParams.get("as");
    const html = claimed
      ? `<!doctype html><iframe src="${app.baseUrl}/checkout/frame?secret=${encodeURIComponent(clientSecret)}&origin=${
        encodeURIComponent(claimed)
      }"></iframe><script>window.shopEvents = [];
      addEventListener("message", (e) => window.shopEvents.push([e.data?.type, JSON.stringify(e.data)]));</script>`
      : `<!doctype html><div id="pay"></div><script src="${app.baseUrl}/checkout.js"></script><script>
      window.shopEvents = [];
      window.sessionId = ${JSON.stringify(sessionId)};
      const record = (name) => (d) => window.shopEvents.push([d.code ? name + ":" + d.code : name, d.sessionId]);
      AimbrellaPay.checkout({ clientSecret: ${JSON.stringify(clientSecret)} })
        .on("ready", record("ready")).on("error", record("error")).mount("#pay");
    </script>`;
    return new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
  });
  return { origin: `http://127.0.0.1:${port}`, close: () => server.shutdown() };
}

async function shopEvents(page: Page): Promise<[string, string][]> {
  return await page.evaluate(() => (globalThis as unknown as { shopEvents: [string, string][] }).shopEvents);
}

async function waitForEvent(page: Page, name: string): Promise<string> {
  await page.locator("#events li", { hasText: name }).first().waitFor({ timeout: 10_000 });
  return (await shopEvents(page)).find(([n]) => n === name)![1];
}

async function withCheckout(
  appOpts: TestAppOptions,
  fn: (
    ctx: {
      app: TestApp;
      browser: Browser;
      shop: ShopSite;
      evil: ShopSite;
      receiver: ReturnType<typeof startShopReceiver>;
    },
  ) => Promise<void>,
) {
  const app = await startTestApp(appOpts);
  const receiver = startShopReceiver();
  const evil = startEvilSite(app);
  const shop = startShopSite(app, { postbackUrl: receiver.url, evilOrigin: evil.origin });
  await setEmbedOrigins(app.kv, app.shop.id, [shop.origin], { actor: "test", now: Date.now(), allowLocalUrls: true });
  const browser = await launchChromium();
  try {
    await fn({ app, browser, shop, evil, receiver });
  } finally {
    await browser.close();
    await shop.close();
    await evil.close();
    await receiver.close();
    await app.close();
  }
}

Deno.test({
  name: "[browser] embedded checkout: the buyer pays inside the shop's page, which hears the outcome and never moves",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await withCheckout({}, async ({ app, browser, shop, evil, receiver }) => {
      const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      page.setDefaultTimeout(10_000);
      const topNavigations: string[] = [];
      page.on("framenavigated", (f) => f === page.mainFrame() && topNavigations.push(f.url()));
      const cspErrors: string[] = [];
      page.on("console", (m) => /Content Security Policy/.test(m.text()) && cspErrors.push(m.text()));

      await t.step("the shop's page frames the checkout, which says it is ready and fits its content", async () => {
        await page.goto(`${shop.origin}/`);
        const sessionId = await waitForEvent(page, "ready");
        assert.equal(sessionId, await page.evaluate(() => (globalThis as unknown as { sessionId: string }).sessionId));
        const frame = page.frameLocator("#pay iframe");
        await frame.getByText("2 × Umbrella").waitFor();
        const height = await page.locator("#pay iframe").evaluate((el) => el.getBoundingClientRect().height);
        const content = await frame.locator("body").evaluate((el) => el.getBoundingClientRect().height);
        assert.ok(Math.abs(height - content) <= 2, `frame ${height}px, content ${content}px`);
        await Deno.mkdir(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: `${ARTIFACTS}/checkout-01-mounted.png`, fullPage: true });
      });

      await t.step("the buyer pays inside the frame; the page gets succeeded; confirm and postback agree", async () => {
        const frame = page.frameLocator("#pay iframe");
        await frame.getByRole("link", { name: "Pay 25.00 EUR" }).click();
        await frame.getByRole("heading", { name: "Bansky sandbox" }).waitFor();
        // The provider's page cannot tell us its height: the frame makes room for it rather than cut it off.
        const cut = await frame.locator("html").evaluate((el) => el.scrollHeight - el.clientHeight);
        assert.ok(cut <= 0, `the provider's page is cut off by ${cut}px in the frame`);
        await page.screenshot({ path: `${ARTIFACTS}/checkout-02-provider-in-frame.png`, fullPage: true });
        await frame.getByRole("button", { name: "Pay", exact: true }).click();
        const sessionId = await waitForEvent(page, "succeeded");
        await frame.getByRole("heading", { name: "Payment complete" }).waitFor();
        await page.screenshot({ path: `${ARTIFACTS}/checkout-03-paid.png`, fullPage: true });
        assert.deepEqual(topNavigations, [`${shop.origin}/`], "the shop's page never navigated");
        assert.equal(page.url(), `${shop.origin}/`);
        assert.deepEqual(cspErrors, [], "the shop's strict CSP let everything through");
        assert.deepEqual((await shopEvents(page)).filter(([n]) => n.startsWith("error")), [], "no error events");

        const confirm = await fetch(`${app.baseUrl}/api/v1/checkout/confirm`, {
          method: "POST",
          headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
          body: JSON.stringify({ sessionId }),
        });
        const confirmed = await confirm.json();
        assert.equal(confirmed.session.status, "complete");
        assert.equal(confirmed.session.amount, 2500);
        const deadline = Date.now() + 10_000;
        while (!receiver.received.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        const postback = receiver.received[0];
        assert.ok(postback, "a postback arrived");
        assert.ok(
          verifyWebhook(app.shop.webhookSecret, postback.headers, postback.body, Math.floor(Date.now() / 1000)),
        );
        const data = JSON.parse(postback.body).data;
        assert.equal(data.checkoutSessionId, sessionId);
        assert.equal(data.status, "succeeded");
      });

      await t.step("a declined payment gives failed", async () => {
        await page.goto(`${shop.origin}/`);
        await waitForEvent(page, "ready");
        const frame = page.frameLocator("#pay iframe");
        await frame.getByRole("link", { name: /^Pay / }).click();
        await frame.getByRole("button", { name: "Decline" }).click();
        const sessionId = await waitForEvent(page, "failed");
        await frame.getByRole("heading", { name: "Payment failed" }).waitFor();
        assert.equal((await shopEvents(page)).filter(([n]) => n === "succeeded").length, 0);
        const res = await fetch(`${app.baseUrl}/api/v1/checkout/confirm`, {
          method: "POST",
          headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
          body: JSON.stringify({ sessionId }),
        });
        const confirmed = await res.json();
        assert.equal(confirmed.session.status, "expired");
        assert.equal(confirmed.session.paymentStatus, "failed");
      });

      await t.step("a forged postMessage from another origin is ignored", async () => {
        await page.goto(`${shop.origin}/forged`);
        await waitForEvent(page, "ready");
        // The evil frame has posted by now; give a late message time to arrive all the same.
        await page.frameLocator(`iframe[src^="${evil.origin}"]`).locator("script").waitFor({ state: "attached" });
        await page.evaluate(() =>
          postMessage({ source: "aimbrellapay", type: "succeeded", sessionId: "cs_forged_by_the_page" }, "*")
        );
        await new Promise((r) => setTimeout(r, 800));
        const events = await shopEvents(page);
        assert.deepEqual(events.map(([n]) => n), ["ready"], JSON.stringify(events));
        assert.ok(events.every(([, id]) => !id.startsWith("cs_forged")));
      });

      await t.step(
        "a page on a site the shop did not allow gets no checkout, only error origin_not_allowed",
        async () => {
          const other = await browser.newPage();
          await other.goto(`${evil.origin}/`);
          await other.frameLocator("iframe").getByRole("heading", { name: "This checkout cannot be shown here" })
            .waitFor();
          const sessionId = await other.evaluate(() => (globalThis as unknown as { sessionId: string }).sessionId);
          const deadline = Date.now() + 5_000;
          while (!(await shopEvents(other)).length && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 50));
          }
          assert.deepEqual(await shopEvents(other), [["error:origin_not_allowed", sessionId]]);
          const frame = other.frameLocator("iframe");
          assert.equal(await frame.getByRole("link", { name: /^Pay / }).count(), 0);
          // Nothing of the session: not its amount, nor the shop's name.
          assert.doesNotMatch(await frame.locator("body").innerText(), /5\.00|EUR|Test shop/i);
          await other.close();
        },
      );

      await t.step("a page that names a listed site as its origin is still refused by the browser", async () => {
        const other = await browser.newPage();
        const blocked: string[] = [];
        other.on("console", (m) => /frame-ancestors/.test(m.text()) && blocked.push(m.text()));
        await other.goto(`${evil.origin}/lying?as=${encodeURIComponent(shop.origin)}`);
        const deadline = Date.now() + 5_000;
        while (!blocked.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        assert.ok(blocked.length, "Chromium refused the frame for its frame-ancestors");
        await new Promise((r) => setTimeout(r, 300));
        assert.deepEqual(await shopEvents(other), []);
        assert.equal(await other.frameLocator("iframe").getByRole("link", { name: /^Pay / }).count(), 0);
        await other.close();
      });

      await t.step("a client secret no session has gives error session_not_found", async () => {
        const other = await browser.newPage();
        await other.goto(`${shop.origin}/unknown`);
        const sessionId = await waitForEvent(other, "error:session_not_found");
        assert.equal(sessionId, `cs_${"A".repeat(22)}`);
        await other.frameLocator("#pay iframe").getByRole("heading", { name: "Checkout not found" }).waitFor();
        await other.close();
      });

      await t.step("a frame that cannot load (a network error) gives error load_failed", async () => {
        const other = await browser.newPage();
        await other.route(/\/checkout\/frame/, (route) => route.abort("connectionrefused"));
        await other.goto(`${shop.origin}/`);
        const sessionId = await waitForEvent(other, "error:load_failed");
        assert.equal(sessionId, await other.evaluate(() => (globalThis as unknown as { sessionId: string }).sessionId));
        assert.deepEqual((await shopEvents(other)).map(([n]) => n), ["error:load_failed"]);
        await other.close();
      });

      await t.step(
        "a frame slower than checkout.js waits for gives load_failed, then recovered once it shows",
        async () => {
          const other = await browser.newPage();
          // The page's clock, so its 20 s wait passes at once; the frame's answer is held until then.
          await other.clock.install();
          const requested = other.waitForRequest(/\/checkout\/frame/, { timeout: 10_000 });
          let release!: () => void;
          const held = new Promise<void>((resolve) => release = resolve);
          await other.route(/\/checkout\/frame/, async (route) => {
            await held;
            await route.continue();
          });
          // Not "load": the page's load waits for its frame, which is held.
          await other.goto(`${shop.origin}/`, { waitUntil: "domcontentloaded" });
          await requested;
          await other.clock.runFor(20_001);
          await waitForEvent(other, "error:load_failed");
          release();
          const sessionId = await waitForEvent(other, "recovered");
          assert.equal(
            sessionId,
            await other.evaluate(() => (globalThis as unknown as { sessionId: string }).sessionId),
          );
          await waitForEvent(other, "ready");
          await other.frameLocator("#pay iframe").getByRole("link", { name: "Pay 25.00 EUR" }).waitFor();
          assert.deepEqual((await shopEvents(other)).map(([n]) => n), ["error:load_failed", "recovered", "ready"]);
          await other.close();
        },
      );
    });
  },
});

Deno.test({
  name: "[browser] embedded checkout: a provider on another origin opens in a popup; a blocked popup is explained",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    // The standalone sandbox is on its own origin, which the shop's CSP (our origin only) would not frame.
    await withCheckout({ standaloneSandbox: true }, async ({ browser, shop }) => {
      const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      page.setDefaultTimeout(10_000);
      const topNavigations: string[] = [];
      page.on("framenavigated", (f) => f === page.mainFrame() && topNavigations.push(f.url()));

      await t.step("with popups blocked, the frame says so and keeps the Pay button", async () => {
        await page.goto(`${shop.origin}/`);
        await waitForEvent(page, "ready");
        const inner = page.frames().find((f) => f.url().includes("/checkout/frame"))!;
        await inner.evaluate(() => (globalThis as unknown as { open: () => null }).open = () => null);
        const frame = page.frameLocator("#pay iframe");
        await frame.getByRole("link", { name: "Pay 25.00 EUR" }).click();
        await frame.getByText("your browser blocked it").waitFor();
        await page.screenshot({ path: `${ARTIFACTS}/checkout-04-popup-blocked.png`, fullPage: true });
      });

      await t.step("the buyer pays in the popup; it closes and the shop's page gets succeeded", async () => {
        await page.goto(`${shop.origin}/`);
        await waitForEvent(page, "ready");
        const frame = page.frameLocator("#pay iframe");
        const popupOpened = page.waitForEvent("popup");
        await frame.getByRole("link", { name: "Pay 25.00 EUR" }).click();
        const popup = await popupOpened;
        await popup.getByRole("heading", { name: "Bansky sandbox" }).waitFor();
        const closed = popup.waitForEvent("close");
        await popup.getByRole("button", { name: "Pay", exact: true }).click();
        await closed;
        await waitForEvent(page, "succeeded");
        await frame.getByRole("heading", { name: "Payment complete" }).waitFor();
        assert.equal((await shopEvents(page)).filter(([n]) => n === "succeeded").length, 1);
        assert.deepEqual(topNavigations, [`${shop.origin}/`, `${shop.origin}/`], "only the test's own page loads");
      });
    });
  },
});

Deno.test({
  name: "[browser] the demo shop's embedded checkout: pay inside its page, then see the verified postback",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const app = await startTestApp({ env: { DEMO: "1" } });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      page.setDefaultTimeout(10_000);
      await page.goto(`${app.baseUrl}/demo`);
      await page.getByRole("link", { name: "embedded checkout" }).click();
      await page.locator("#demo-events li", { hasText: "ready" }).waitFor();
      const url = page.url();
      const frame = page.frameLocator("#demo-checkout iframe");
      // By keyboard: the Pay link, styled as a button, takes Space as a button does.
      await frame.getByRole("link", { name: "Pay 10.00 EUR" }).focus();
      await page.keyboard.press("Space");
      await frame.getByRole("button", { name: "Pay", exact: true }).click();
      await page.locator("#demo-events li", { hasText: "succeeded" }).waitFor();
      assert.equal(page.url(), url);
      await page.screenshot({ path: `${ARTIFACTS}/checkout-05-demo.png`, fullPage: true });
      for (let i = 0; i < 50; i++) {
        await page.goto(`${app.baseUrl}/demo`);
        if (await page.getByText("payment.succeeded").count()) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(await page.locator("td.ok").first().textContent(), "verified");
    } finally {
      await browser.close();
      await app.close();
    }
  },
});

Deno.test({
  name:
    "[browser] the demo shop's embedded checkout with a provider that opens in a popup: the popup closes, the page hears succeeded",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // The standalone sandbox is on its own origin: the checkout frame cannot show it, so it opens a popup.
    const app = await startTestApp({ env: { DEMO: "1" }, standaloneSandbox: true });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      page.setDefaultTimeout(10_000);
      const res = await page.goto(`${app.baseUrl}/demo/embedded`);
      // same-origin would cut the popup off from the frame that opened it.
      assert.equal(res!.headers()["cross-origin-opener-policy"], "same-origin-allow-popups");
      await page.locator("#demo-events li", { hasText: "ready" }).waitFor();
      const frame = page.frameLocator("#demo-checkout iframe");
      const popupOpened = page.waitForEvent("popup");
      await frame.getByRole("link", { name: "Pay 10.00 EUR" }).click();
      const popup = await popupOpened;
      const closed = popup.waitForEvent("close");
      await popup.getByRole("button", { name: "Pay", exact: true }).click();
      await closed;
      await page.locator("#demo-events li", { hasText: "succeeded" }).waitFor();
    } finally {
      await browser.close();
      await app.close();
    }
  },
});

Deno.test({
  name:
    "[browser] a shop's page on another site reads the checkout's config and mounts a session with its publishable key",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const app = await startTestApp();
    const { apiKey: pk } = await createShopKey(app.kv, app.shop.id, { now: Date.now(), kind: "publishable" });
    const created = await fetch(`${app.baseUrl}/api/v1/checkout/sessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ amount: 1250, currency: "EUR", customerEmail: "buyer@example.com" }),
    }).then((r) => r.json());
    const { server, port } = serveOnLoopback(() =>
      new Response("<!doctype html><title>Shop</title><h1>Shop</h1>", { headers: { "content-type": "text/html" } })
    );
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${port}/`);
      const got = await page.evaluate(async ({ api, pk, clientSecret }) => {
        const call = (method: string, path: string, body?: unknown) =>
          fetch(api + path, {
            method,
            headers: { authorization: `Bearer ${pk}`, ...(body ? { "content-type": "application/json" } : {}) },
            body: body ? JSON.stringify(body) : undefined,
          }).then(async (r) => ({ status: r.status, body: await r.json() }), (e) => ({ status: 0, body: String(e) }));
        return {
          config: await call("GET", "/checkout/config"),
          mount: await call("POST", "/checkout/sessions/mount", { clientSecret }),
          // Not a browser route: the browser itself refuses to let the page see the answer.
          sessions: await call("POST", "/checkout/sessions", { amount: 100, currency: "EUR" }),
        };
      }, { api: `${app.baseUrl}/api/v1`, pk, clientSecret: created.clientSecret });
      assert.equal(got.config.status, 200, JSON.stringify(got.config));
      assert.equal(got.config.body.publishableKey, pk);
      assert.equal(got.mount.status, 200, JSON.stringify(got.mount));
      assert.equal(got.mount.body.session.amount, 1250);
      assert.equal(got.sessions.status, 0, JSON.stringify(got.sessions));
    } finally {
      await browser.close();
      await server.shutdown();
      await app.close();
    }
  },
});

Deno.test({
  name:
    "[browser] a checkout waiting for the provider's word looks again in the background, without reloading the page under a screen reader, and shows the outcome once it comes",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const app = await startTestApp();
    const api = (path: string, body: unknown) =>
      fetch(`${app.baseUrl}/api/v1${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then((r) => r.json());
    const created = await api("/checkout/sessions", { amount: 1250, currency: "EUR", customerEmail: "b@example.com" });
    const confirmed = await api("/checkout/confirm", { sessionId: created.sessionId });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      page.setDefaultTimeout(15_000);
      // Back from the provider, the buyer's payment not known yet: the page waits.
      await page.goto(`${app.baseUrl}/checkout/return/${created.sessionId}`);
      await page.getByText("Confirming your payment…").waitFor();
      await page.evaluate(() => ((globalThis as { stayed?: boolean }).stayed = true));
      // Several looks later (one each 1.5 s) it is the same page: nothing reloaded.
      await new Promise((r) => setTimeout(r, 4_000));
      assert.equal(await page.evaluate(() => (globalThis as { stayed?: boolean }).stayed), true);
      // A look answered with an error page (here: the session gone for a moment) shows nothing new, not that page.
      const sessionKey = ["checkout_sessions", created.sessionId];
      const stored = await app.kv.get(sessionKey);
      await app.kv.delete(sessionKey);
      await new Promise((r) => setTimeout(r, 3_000));
      assert.equal(await page.evaluate(() => (globalThis as { stayed?: boolean }).stayed), true, "an error page shown");
      await app.kv.set(sessionKey, stored.value);
      // The buyer's payment reaches the provider: the next look shows it.
      await buyerSettles(`${app.baseUrl}/integration/pay?id=${confirmed.session.paymentId}`, "paid");
      await page.getByText("Payment complete").waitFor();
    } finally {
      await browser.close();
      await app.close();
    }
  },
});
