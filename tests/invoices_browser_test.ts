/**
 * The buyer's invoice page in a real Chromium on a 390 px phone: amount,
 * address, QR code and countdown, and the status changing while the page is
 * open as the chain simulator sees the deposit and mines its confirmations.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { HAS_CHROMIUM, launchChromium } from "../fixtures/chromium.ts";
import { startTestApp, type TestApp, waitFor } from "../fixtures/app.ts";
import { chainApi, createTestInvoice, readInvoice, shiftClock } from "../fixtures/invoices.ts";
import { LOCAL } from "../islands/local_time.tsx";

/** A test with the app, its chain simulator and a page on a 390 px phone in Chromium. */
function phoneTest(
  name: string,
  fn: (t: { app: TestApp; chain: ReturnType<typeof chainApi>; page: Page }) => Promise<void>,
) {
  Deno.test({
    name,
    ignore: !HAS_CHROMIUM,
    sanitizeResources: false, // Chromium's pipes outlive the test's bookkeeping
    sanitizeOps: false,
    async fn() {
      const app = await startTestApp();
      const browser = await launchChromium();
      try {
        const page = await browser.newPage({
          viewport: { width: 390, height: 844 },
          isMobile: true,
          permissions: ["clipboard-read", "clipboard-write"],
          // A buyer far from UTC, so a time shown in UTC and one in the buyer's own zone differ.
          locale: "en-US",
          timezoneId: "Asia/Tokyo",
        });
        await fn({ app, chain: chainApi(app), page });
      } finally {
        await browser.close();
        await app.close();
      }
    },
  });
}

phoneTest(
  "[browser] the invoice page on a phone shows what to pay and follows the status live while it is open",
  async ({ app, chain, page }) => {
    const inv = await createTestInvoice(app, { title: "Umbrella, large", amount: "25" });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(inv.checkoutUrl);
    await page.getByRole("heading", { name: "Umbrella, large" }).waitFor();
    // Whom the buyer pays, as a form's and a checkout's pages say.
    assert.equal(await page.locator(".invoice > p.muted").first().textContent(), "Test shop");
    assert.equal(await page.getByText(/Reload the page/).count(), 0, "no words for browsers without JavaScript");
    assert.equal(await page.locator(".invoice-amount").textContent(), "25 USDT");
    assert.equal(await page.locator(".invoice-address").textContent(), inv.address);
    await page.getByRole("button", { name: "Copy amount" }).waitFor();
    // Copying is told to a screen reader too (a button's changed text alone is not announced), by keyboard.
    await page.getByRole("button", { name: "Copy address" }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("status").getByText("Copied", { exact: true }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), inv.address);
    // A browser that refuses the clipboard: the buyer is told to copy by hand, not left believing it worked.
    await page.evaluate(() => navigator.clipboard.writeText = () => Promise.reject(new DOMException("denied")));
    await page.getByRole("button", { name: "Copy amount" }).click();
    await page.getByRole("status").getByText("Not copied: select the text and copy it yourself").waitFor();
    assert.equal(await page.locator("figure.qr svg").count(), 1);
    await page.getByText(/Time left: (\d+:)?\d+:\d\d/).waitFor();
    assert.equal(await page.locator("[aria-live]").getByText(/Time left/).count(), 0, "the countdown is not announced");
    await page.locator("[aria-live]").getByText("Waiting for your payment").waitFor();
    // The expiry in the buyer's own time zone; the page as sent (what a browser without JavaScript shows) says UTC.
    const expiresAt = Date.parse(inv.expiresAt);
    const utc = new Date(expiresAt).toISOString().slice(0, 16).replace("T", " ") + " UTC";
    assert.ok((await (await fetch(inv.checkoutUrl)).text()).includes(`>${utc}</time>`), "UTC without JavaScript");
    const tokyo = await page.evaluate(
      ([at, options]) => new Intl.DateTimeFormat("en-US", { ...options, timeZone: "Asia/Tokyo" }).format(at),
      [expiresAt, LOCAL] as const,
    );
    await page.locator("time", { hasText: tokyo }).waitFor();
    assert.match(tokyo, /GMT\+9/);
    assert.equal(await page.locator("time").getAttribute("datetime"), new Date(expiresAt).toISOString());
    assert.equal(await page.getByText(/Expires at .+ unless your payment has arrived by then\./).count(), 1);
    await page.getByText("Waiting for your payment").waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than the phone`);
    await Deno.mkdir("test-artifacts", { recursive: true });
    await page.screenshot({ path: "test-artifacts/invoice-waiting.png", fullPage: true });

    await chain.deposit(inv.address, "25000000");
    await page.getByText("Payment seen, waiting for confirmations").waitFor({ timeout: 15_000 });
    await page.getByText("On its way: 25 USDT (0 of 20 confirmations, about a minute on Tron)").waitFor();
    await chain.mine(40, "tron");
    await page.getByText("Paid. Thank you!").waitFor({ timeout: 15_000 });
    await page.getByText("Received: 25 of 25 USDT").waitFor();
    await page.screenshot({ path: "test-artifacts/invoice-finished.png", fullPage: true });
    assert.deepEqual(errors, []);
  },
);

phoneTest(
  "[browser] a partly paid invoice asks for the rest, and one whose whole amount is on its way asks for nothing",
  async ({ app, chain, page }) => {
    // On Ethereum, whose wallets take a payment URI for a token's transfer (on Tron the code is the bare address).
    const inv = await createTestInvoice(app, { amount: "2.5", network: "ethereum" });
    await page.goto(inv.checkoutUrl);
    await chain.deposit(inv.address, "1000000", undefined, "USDT");
    await chain.mine(12, "ethereum");
    // Live: the page loads itself again when what is due changes, and its amount, copy button and wallet link ask
    // for the rest only.
    await page.getByText("Partly paid: please send the rest").waitFor({ timeout: 15_000 });
    await page.getByText("Still to send: 1.5 USDT").waitFor();
    await page.getByText("Send the rest, exactly").waitFor();
    assert.equal(await page.locator(".invoice-amount").textContent(), "1.5 USDT");
    assert.match(
      (await page.locator("figure.qr a").getAttribute("href"))!,
      /\/transfer\?address=0x\w+&uint256=1500000$/,
    );

    await chain.deposit(inv.address, "1500000", undefined, "USDT");
    await page.getByText("Payment seen, waiting for confirmations").waitFor({ timeout: 15_000 });
    await page.getByText("On its way: 1.5 USDT").waitFor();
    await page.locator(".invoice-amount").waitFor({ state: "detached" });
    assert.equal(await page.locator("figure.qr").count(), 0);

    // The longest amount we take still fits the phone.
    const huge = await createTestInvoice(app, { amount: `${"9".repeat(30)}.123456` });
    const wider = () => page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    await page.goto(huge.checkoutUrl);
    await page.getByText("Waiting for your payment").waitFor();
    assert.ok(await wider() <= 0, `waiting, the page is ${await wider()} px wider than the phone`);
    await chain.deposit(huge.address, "1");
    await chain.mine(20, "tron");
    await page.getByText("Still to send").waitFor({ timeout: 15_000 });
    assert.ok(await wider() <= 0, `partly paid, the page is ${await wider()} px wider than the phone`);
  },
);

phoneTest(
  "[browser] an expired invoice's page still learns of money sent late, without a reload",
  async ({ app, chain, page }) => {
    const inv = await createTestInvoice(app, { expiresIn: 60 });
    shiftClock(app, 61_000);
    await app.server.runner.sweep();
    // The page's timers run on a clock the test moves.
    await page.clock.install();
    await page.goto(inv.checkoutUrl);
    await page.getByText("This invoice expired").waitFor();
    await chain.deposit(inv.address, "12500000");
    // Once we have recorded it (its notice is handled in the background), the page's next ask finds it.
    await waitFor(
      "the late deposit recorded",
      async () => (await readInvoice(app, inv.id)).lateAmount === "12.5" || undefined,
    );
    await page.clock.fastForward(16_000);
    await page.getByText("12.5 USDT came too late to count for this invoice, which expired").waitFor({
      timeout: 10_000,
    });
  },
);

phoneTest(
  "[browser] the invoice page stops asking for money once its time is up, before the sweep records the expiry",
  async ({ app, page }) => {
    const inv = await createTestInvoice(app, { expiresIn: 60 });
    // The page's timers run on a clock the test moves.
    await page.clock.install();
    await page.goto(inv.checkoutUrl);
    await page.locator(".invoice-address").waitFor();
    // Past expiresAt, money sent is late and pays nothing, though the sweep (every minute or so) has not come by.
    shiftClock(app, 61_000);
    await page.clock.fastForward(62_000);
    await page.getByText("Time is up").waitFor({ timeout: 10_000 });
    await page.getByText("Do not send anything for this invoice now").waitFor();
    // The island says "Time is up" at once; the address and QR code, drawn by the server, go when it loads the page
    // again a second later, which a loaded machine can take a while over: their going is waited for, not read at once.
    await page.locator(".invoice-address").waitFor({ state: "detached", timeout: 10_000 });
    await page.locator("figure.qr").waitFor({ state: "detached", timeout: 10_000 });
    assert.equal(await page.getByRole("button", { name: "Copy amount" }).count(), 0);
    assert.equal((await readInvoice(app, inv.id)).status, "waiting_for_deposit", "not yet recorded as expired");
    await page.screenshot({ path: "test-artifacts/invoice-time-up.png", fullPage: true });

    await app.server.runner.sweep();
    await page.clock.fastForward(4_000);
    await page.getByText("This invoice expired").waitFor({ timeout: 10_000 });
    await page.getByText("Do not send anything for this invoice now").waitFor();
  },
);
