/**
 * Browser tests: a real Chromium (Debian's, driven by playwright-core) through
 * the console, the demo shop, the sandbox and the docs. Screenshots of each
 * page land in test-artifacts/ for people to look at.
 */
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { hashPassword } from "../lib/auth/passwords.ts";
import { updateOperatorPassword } from "../lib/db/operators.ts";
import { startTestApp } from "../fixtures/app.ts";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);
const ARTIFACTS = "test-artifacts";

async function launch(): Promise<Browser> {
  return await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
    ],
  });
}

async function shot(page: Page, name: string) {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
}

Deno.test({
  name: "[browser] an operator signs in, manages a shop, follows a demo payment and resends its postback",
  ignore: !hasChromium,
  sanitizeResources: false, // Chromium's pipes outlive the test's bookkeeping
  sanitizeOps: false,
  async fn(t) {
    const app = await startTestApp({ env: { DEMO: "1" } });
    // Chromium only keeps Secure (__Host-) cookies over plain http on "localhost".
    const base = app.baseUrl.replace("127.0.0.1", "localhost");
    const { operator } = await createOperatorAccount(app.server.ctx, "ops@example.com");
    await updateOperatorPassword(app.kv, operator.id, await hashPassword("correct horse battery", 1000));
    const browser = await launch();
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    try {
      await t.step("sign in", async () => {
        await page.goto(`${base}/admin`);
        assert.match(page.url(), /\/admin\/login/);
        await shot(page, "01-login");
        await page.getByLabel("Email").fill("ops@example.com");
        await page.getByLabel("Password").fill("correct horse battery");
        await page.getByRole("button", { name: "Sign in" }).click();
        await page.waitForURL(`${base}/admin`);
        await page.getByRole("heading", { name: "Overview" }).waitFor();
        await page.locator("figure.chart svg").waitFor();
        await shot(page, "02-overview");
      });

      await t.step("create a shop and a key, shown once with a copy button", async () => {
        await page.getByRole("navigation").getByRole("link", { name: "Shops" }).click();
        await page.getByLabel("Name").fill("Umbrella Store <b>");
        await page.getByLabel("Allowed hosts").fill("shop.example");
        await page.getByRole("button", { name: "Create shop" }).click();
        const key = await page.locator("code[data-secret]").first().textContent();
        assert.match(key!, /^apay_sk_/);
        await page.getByRole("button", { name: "Copy" }).first().waitFor();
        await shot(page, "03-shop-created");
        await page.getByRole("link", { name: "Go to the shop" }).click();
        await page.getByRole("heading", { name: "Umbrella Store <b>" }).waitFor();
        await page.getByRole("button", { name: "Create a key" }).click();
        assert.match((await page.locator("code[data-secret]").textContent())!, /^apay_sk_/);
        await page.getByRole("button", { name: "Revoke" }).first().click();
        await page.getByText("Key revoked").waitFor();
        await shot(page, "04-shop-detail");
      });

      await t.step("a buyer pays through the demo shop and the sandbox", async () => {
        const buyer = await browser.newPage();
        await buyer.goto(`${base}/demo`);
        await shot(buyer, "05-demo-shop");
        await buyer.getByRole("button", { name: "Buy for 10.00 EUR" }).click();
        await buyer.getByRole("heading", { name: "Bansky sandbox" }).waitFor();
        await shot(buyer, "06-sandbox-pay");
        await buyer.getByRole("button", { name: "Pay", exact: true }).click();
        await buyer.getByRole("heading", { name: "Thank you!" }).waitFor();
        // The postback arrives in the background; reload the shop's page until it shows.
        for (let i = 0; i < 100; i++) {
          await buyer.goto(`${base}/demo`);
          if (await buyer.getByText("payment.succeeded").count()) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        await buyer.getByText("payment.succeeded").waitFor({ timeout: 1000 });
        assert.equal(await buyer.locator("td.ok").first().textContent(), "verified");
        await shot(buyer, "07-demo-postback");
        await buyer.close();
      });

      await t.step("find the payment with its timeline and resend its postback", async () => {
        await page.getByRole("navigation").getByRole("link", { name: "Payments" }).click();
        await page.getByLabel("Status").selectOption("succeeded");
        await page.getByRole("button", { name: "Filter" }).click();
        await page.locator("td a code").first().click();
        await page.getByRole("heading", { name: "Timeline" }).waitFor();
        for (const text of ["created", "buyer redirected", "webhook received", "postback attempt 1"]) {
          await page.locator("ol.timeline").getByText(text).first().waitFor();
        }
        await shot(page, "08-payment-detail");
        await page.getByRole("button", { name: "Resend postback" }).click();
        await page.getByText("Postback resent and delivered.").waitFor();
        await page.locator("ol.timeline").getByText("postback attempt 2").waitFor();
      });

      await t.step("a form post without the CSRF token is refused", async () => {
        const res = await page.request.post(`${base}/admin/shops`, { form: { name: "Sneaky" } });
        assert.equal(res.status(), 403);
        await page.goto(`${base}/admin/shops`);
        assert.equal(await page.getByText("Sneaky").count(), 0);
      });

      await t.step("the stats page draws its charts in the browser", async () => {
        await page.getByRole("navigation").getByRole("link", { name: "Stats" }).click();
        await page.locator(".uplot canvas").first().waitFor();
        assert.equal(await page.locator("figure.chart").count(), 4);
        await shot(page, "09-stats");
      });

      await t.step("the audit log shows what the operator did", async () => {
        await page.getByRole("navigation").getByRole("link", { name: "Audit log" }).click();
        await page.getByRole("cell", { name: "shop.create" }).first().waitFor();
        await page.getByRole("cell", { name: "postback.resend" }).first().waitFor();
        await shot(page, "10-audit");
      });

      await t.step("sign out", async () => {
        await page.getByRole("button", { name: "Sign out" }).click();
        await page.waitForURL(/\/admin\/login/);
        await page.goto(`${base}/admin`);
        assert.match(page.url(), /\/admin\/login/);
      });
    } finally {
      await browser.close();
      await app.close();
    }
  },
});
