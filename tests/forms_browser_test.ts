/**
 * A buyer fills a donation form in a real Chromium on a 390 px phone and
 * reaches the provider's pay page: on the form's own page, and inside an
 * iframe on the shop's site, where sending the form opens the payment as the
 * whole page.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { HAS_CHROMIUM, launchChromium } from "../fixtures/chromium.ts";
import { serveOnLoopback, startTestApp } from "../fixtures/app.ts";
import { createShop, setEmbedOrigins } from "../lib/shops.ts";
import { createPortalLink } from "../lib/auth/portal.ts";

const ARTIFACTS = "test-artifacts";

async function sideways(page: Page): Promise<number> {
  return await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

Deno.test({
  name:
    "[browser] a buyer fills a donation form on a phone, by keyboard and in a shop's iframe, and reaches the pay page",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false, // Chromium's pipes outlive the test's bookkeeping
  sanitizeOps: false,
  async fn(t) {
    const app = await startTestApp();
    // The shop's own site, on another origin, with the form in an iframe.
    let formUrl = "";
    const { server: shopSite, port: shopPort } = serveOnLoopback(() =>
      new Response(
        `<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1"></head>` +
          `<body><h1>Our shelter</h1><iframe src="${formUrl}" title="Donate" width="100%" height="600"></iframe></body></html>`,
        { headers: { "content-type": "text/html" } },
      )
    );
    const shopOrigin = `http://127.0.0.1:${shopPort}`;
    const browser = await launchChromium();
    try {
      await setEmbedOrigins(app.kv, app.shop.id, [shopOrigin], {
        actor: "test",
        now: Date.now(),
        allowLocalUrls: true,
      });
      const created = await fetch(`${app.baseUrl}/api/v1/forms`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({
          kind: "fiat",
          title: "Support the shelter",
          description: "Every euro feeds a dog for a day; a very long sentence to see that the text wraps on a phone.",
          currency: "EUR",
        }),
      });
      assert.equal(created.status, 201);
      formUrl = (await created.json()).form.url;
      const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
      page.setDefaultTimeout(5000);
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));

      await t.step("on its own page, by keyboard, with a mistake first", async () => {
        await page.goto(formUrl);
        await page.getByRole("heading", { name: "Support the shelter" }).waitFor();
        assert.equal(await page.title(), "Support the shelter · Test shop");
        assert.equal(await sideways(page), 0, "nothing wider than the phone");
        assert.equal(await page.getByLabel("Currency").count(), 0, "a fixed currency is not asked");
        await page.getByLabel("Amount (EUR)").focus();
        await page.keyboard.type("12.5.0");
        await page.keyboard.press("Tab");
        await page.keyboard.type("donor@example.com");
        await page.keyboard.press("Enter");
        await page.getByText("Enter an amount above 0").waitFor();
        assert.equal(await page.title(), "Error: Support the shelter · Test shop", "the title says it came back");
        assert.equal(await page.getByLabel("Amount (EUR)").getAttribute("aria-invalid"), "true");
        assert.equal(await page.getByLabel("Your email").inputValue(), "donor@example.com", "typed values are kept");
        await Deno.mkdir(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: `${ARTIFACTS}/forms-01-phone-error.png`, fullPage: true });
        await page.getByLabel("Amount (EUR)").fill("12.50");
        await page.getByRole("button", { name: "Continue to payment" }).click();
        await page.waitForURL(/\/sandbox\/bansky\//);
        await page.getByText(/12\.50/).first().waitFor();
        await page.screenshot({ path: `${ARTIFACTS}/forms-02-pay-page.png`, fullPage: true });
        // Paid: the form's thank-you page says what happened to this payment, not that some payment is on its way.
        await page.getByRole("button", { name: "Pay", exact: true }).focus();
        await page.keyboard.press("Enter");
        await page.waitForURL(/\/thanks\?/);
        await page.getByText("Your payment of 12.50 EUR to Test shop has been received.").waitFor();
        assert.equal(await sideways(page), 0);
        await page.screenshot({ path: `${ARTIFACTS}/forms-02c-thanks.png`, fullPage: true });
      });

      await t.step("the buyer picks the currency by typing its code; each is named, none is a fund code", async () => {
        const open = await fetch(`${app.baseUrl}/api/v1/forms`, {
          method: "POST",
          headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
          body: JSON.stringify({ kind: "fiat", title: "Pay what you like" }),
        });
        await page.goto((await open.json()).form.url);
        const currency = page.getByLabel("Currency");
        assert.equal(await sideways(page), 0, "the longest name fits the phone");
        assert.equal(await currency.locator("option", { hasText: /^BOV|^CLF|^USN|^XAU|^XDR/ }).count(), 0);
        assert.equal(await currency.locator("option", { hasText: "CHF · Swiss Franc" }).count(), 1);
        await currency.focus();
        await page.keyboard.type("EUR");
        assert.equal(await currency.inputValue(), "EUR");
        assert.equal(await currency.locator("option:checked").textContent(), "EUR · Euro");
        await page.screenshot({ path: `${ARTIFACTS}/forms-02b-open-currency.png`, fullPage: true });
      });

      await t.step(
        "inside the shop's iframe: a mistake is shown in the frame; sent right, the payment opens as the whole page",
        async () => {
          await page.goto(shopOrigin);
          const frame = page.frameLocator("iframe");
          await frame.getByRole("heading", { name: "Support the shelter" }).waitFor();
          await frame.getByLabel("Amount (EUR)").fill("5,5,5");
          await frame.getByLabel("Your email").fill("donor@example.com");
          await frame.getByRole("button", { name: "Continue to payment" }).click();
          await frame.getByText(/Use a point for decimals/).waitFor();
          assert.equal(new URL(page.url()).origin, shopOrigin, "the buyer is still on the shop's page");
          assert.equal(await frame.getByLabel("Amount (EUR)").getAttribute("aria-invalid"), "true");
          assert.equal(await frame.getByLabel("Your email").inputValue(), "donor@example.com", "typed values are kept");
          await page.screenshot({ path: `${ARTIFACTS}/forms-03-in-iframe.png`, fullPage: true });
          await frame.getByLabel("Amount (EUR)").fill("5");
          await frame.getByRole("button", { name: "Continue to payment" }).click();
          await page.waitForURL(/\/sandbox\/bansky\//);
          await page.getByText(/5\.00/).first().waitFor();
          assert.equal(await sideways(page), 0);
        },
      );
      await t.step(
        "shop staff create a form and disable it in the portal on a phone; disabling asks first",
        async () => {
          // Chromium only keeps Secure (__Host-) cookies over plain http on "localhost".
          const base = app.baseUrl.replace("127.0.0.1", "localhost");
          const link = new URL(await createPortalLink(app.server.ctx, app.shop.id, "ops@example.com"));
          await page.goto(base + link.pathname + link.search);
          await page.getByRole("button", { name: "Continue" }).click();
          await page.waitForURL(`${base}/portal`);
          await page.getByRole("navigation").getByRole("link", { name: "Forms" }).click();
          // Braces in a shop's text are not the question's fields: the form's hidden CSRF token must not show.
          await page.getByLabel("Title").fill("Summer camp deposit {_csrf} for the whole family, paid in two parts");
          await page.getByLabel("Amount (optional)").fill("150.00");
          await page.getByLabel("Currency, fiat (optional)").fill("EUR");
          await page.getByRole("button", { name: "Create form" }).click();
          await page.getByText("Form created").waitFor();
          assert.equal(await sideways(page), 0, "the list and the embed snippet fit the phone");
          await page.getByRole("button", { name: "Copy link" }).waitFor();
          await page.screenshot({ path: `${ARTIFACTS}/forms-04-portal.png`, fullPage: true });
          let asked = "";
          page.once("dialog", (d) => {
            asked = d.message();
            d.accept();
          });
          await page.getByRole("button", { name: "Disable" }).first().click();
          await page.getByText(/disabled\.$/).first().waitFor();
          assert.match(asked, /Disable the form "Summer camp deposit \{_csrf\} for the whole family/);
        },
      );
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await shopSite.shutdown();
      await app.close();
    }
  },
});

Deno.test({
  name: "[browser] a shop whose name is one long word still fits the buyer's pages on a phone",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const app = await startTestApp();
    const browser = await launchChromium();
    try {
      const { apiKey } = await createShop(app.kv, { name: "Schifffahrtsgesellschaft".repeat(4) }, {
        allowLocalUrls: true,
        now: Date.now(),
      });
      const created = await fetch(`${app.baseUrl}/api/v1/forms`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ kind: "fiat", title: "Donate", currency: "EUR" }),
      });
      assert.equal(created.status, 201);
      const formUrl: string = (await created.json()).form.url;
      const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
      // The form, and a page that names the shop in its text (the try-again page, no payment named).
      for (const url of [formUrl, `${formUrl}/not-paid`, `${formUrl}/thanks`]) {
        await page.goto(url);
        assert.ok(await sideways(page) <= 0, `${url} is ${await sideways(page)} px wider than the phone`);
      }
    } finally {
      await browser.close();
      await app.close();
    }
  },
});

Deno.test({
  name:
    "[browser] a framed form's answer with no field marked (502: the provider did not answer) puts focus on its message, as the commit says, not on the heading above it",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const app = await startTestApp({ knobs: { failureRate: 1 } });
    let formUrl = "";
    const { server: shopSite, port } = serveOnLoopback(() =>
      new Response(`<!doctype html><html><body><iframe src="${formUrl}" title="Donate"></iframe></body></html>`, {
        headers: { "content-type": "text/html" },
      })
    );
    const shopOrigin = `http://127.0.0.1:${port}`;
    const browser = await launchChromium();
    try {
      await setEmbedOrigins(app.kv, app.shop.id, [shopOrigin], {
        actor: "test",
        now: Date.now(),
        allowLocalUrls: true,
      });
      const created = await fetch(`${app.baseUrl}/api/v1/forms`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ kind: "fiat", title: "Support the shelter", currency: "EUR" }),
      });
      formUrl = (await created.json()).form.url;
      const page = await browser.newPage();
      page.setDefaultTimeout(8000);
      await page.goto(shopOrigin);
      const frame = page.frameLocator("iframe");
      await frame.getByLabel("Amount (EUR)").fill("5");
      await frame.getByLabel("Your email").fill("donor@example.com");
      await frame.getByRole("button", { name: "Continue to payment" }).click();
      await frame.getByText(/did not answer/).waitFor();
      const focused = await page.frames()[1].evaluate(() =>
        `${document.activeElement?.tagName} ${document.activeElement?.getAttribute("role") ?? ""}`.trim()
      );
      assert.equal(focused, "P alert", "focus is on the message");
    } finally {
      await browser.close();
      await shopSite.shutdown();
      await app.close();
    }
  },
});
