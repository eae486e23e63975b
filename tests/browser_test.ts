/**
 * Browser tests: a real Chromium (Debian's, driven by playwright-core) through
 * the console, the demo shop, the sandbox and the docs. Screenshots of each
 * page land in test-artifacts/ for people to look at.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { HAS_CHROMIUM, launchChromium } from "../fixtures/chromium.ts";
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { hashPassword } from "../lib/auth/passwords.ts";
import { updateOperatorPassword } from "../lib/db/operators.ts";
import { startTestApp } from "../fixtures/app.ts";

const ARTIFACTS = "test-artifacts";

async function shot(page: Page, name: string) {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
}

Deno.test({
  name: "[browser] an operator signs in, manages a shop, follows a demo payment and resends its postback",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false, // Chromium's pipes outlive the test's bookkeeping
  sanitizeOps: false,
  async fn(t) {
    const app = await startTestApp({ env: { DEMO: "1" } });
    // Chromium only keeps Secure (__Host-) cookies over plain http on "localhost".
    const base = app.baseUrl.replace("127.0.0.1", "localhost");
    const { operator } = await createOperatorAccount(app.server.ctx, "ops@example.com");
    await updateOperatorPassword(app.kv, operator.id, await hashPassword("correct horse battery", 1000));
    const browser = await launchChromium();
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
        // Revoking asks first, in the browser's own dialog.
        page.once("dialog", (d) => d.accept());
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
        // Paid, or confirming while the provider's word is on its way (the redirect may come first).
        await buyer.getByRole("heading", { name: /^(Thank you!|We are confirming your payment)$/ }).waitFor();
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

/** True when the page scrolls sideways: something is wider than the viewport. */
async function widerThanViewport(page: Page): Promise<string | null> {
  return await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth <= width) return null;
    const culprit = [...document.querySelectorAll("body *")].find((el) => el.getBoundingClientRect().right > width + 1);
    return `${document.documentElement.scrollWidth} > ${width}: ${culprit?.outerHTML.slice(0, 120)}`;
  });
}

/**
 * How many presses of Tab take the keyboard from where the page put it to the button named `name`; null when `most`
 * presses do not.
 */
async function tabsToButton(page: Page, name: string, most: number): Promise<number | null> {
  // Autofocus happens at the page's first rendering: wait for two frames before pressing anything.
  await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  for (let n = 1; n <= most; n++) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      return el instanceof HTMLButtonElement ? el.textContent : null;
    });
    if (focused === name) return n;
  }
  return null;
}

/** What has the keyboard: its tag and the start of its text. */
function focusedElement(page: Page): Promise<{ tag: string; text: string }> {
  return page.evaluate(() => ({
    tag: document.activeElement?.tagName ?? "",
    text: (document.activeElement?.textContent ?? "").trim().slice(0, 200),
  }));
}

/** Clicks a form's button and reports, in the same turn, what the page shows while the form is on its way. */
function clickAndLook(b: SVGElement | HTMLElement) {
  const button = b as HTMLButtonElement;
  button.click();
  return { disabled: button.disabled, text: button.textContent, busy: button.form?.getAttribute("aria-busy") };
}

Deno.test({
  name:
    "[browser] on a 390 px phone no page is wider than the screen; slow actions show progress; risky ones ask first",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const { callInit, paymentBody, buyerSettles, waitFor } = await import("../fixtures/app.ts");
    const { createPortalLink } = await import("../lib/auth/portal.ts");
    const app = await startTestApp({ env: { DEMO: "1", POSTBACK_SCHEDULE: "0,60" } });
    const base = app.baseUrl.replace("127.0.0.1", "localhost");
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closed = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const ids: string[] = [];
    for (const [i, currency] of ["EUR", "USD", "JPY", "KWD", "GBP", "CHF"].entries()) {
      const init = await callInit(
        app,
        paymentBody({
          id: `phone-order-with-a-long-reference-${i}`,
          amount: 98765432,
          currency,
          email: `a.rather.long.buyer.address.${i}@example-shop-with-a-long-domain.com`,
          postbackUrl: `http://127.0.0.1:${closed}/postbacks`,
        }),
      );
      assert.equal(init.status, 201, JSON.stringify(init.body));
      ids.push(init.body.id);
      if (i < 3) await buyerSettles(init.body.url, i === 1 ? "declined" : "paid");
    }
    // Two refunds, so the payment's page has its refunds table too.
    for (const amount of [1000, 2000]) {
      const refunded = await fetch(`${app.baseUrl}/api/v1/payments/${ids[0]}/refunds`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({
          amount,
          id: `return-${amount}`,
          reason: "the buyer sent the umbrella back, with a long note about why",
        }),
      });
      assert.equal(refunded.status, 201, await refunded.text());
    }
    const { describePayment } = await import("../lib/payments/admin.ts");
    await waitFor("a refused postback", async () => {
      const { deliveries } = await describePayment(app.server.ctx, ids[0]);
      return deliveries[0]?.attempts ? true : undefined;
    });
    const { operator } = await createOperatorAccount(app.server.ctx, "ops@example.com");
    await updateOperatorPassword(app.kv, operator.id, await hashPassword("correct horse battery", 1000));
    // A long address on the operators page, and a row with a Disable button.
    await createOperatorAccount(
      app.server.ctx,
      "a.rather.long.operator.address@example-company-with-a-long-domain.com",
    );
    // An account, so the accounts page has a row beside the default one and the note of a new account's webhook URL.
    const { createAccount } = await import("../lib/accounts/mod.ts");
    const account = await createAccount(app.server.ctx, {
      provider: "bansky",
      label: "An organisation with a rather long name",
      orgId: "891027350515",
      credentials: { apiUrl: "https://bansky.example", apiToken: "t", webhookSecret: "w" },
    }, { actor: "test" });
    // Two paid orphans with long references, one waiting with its form and one handled with its note.
    const { recordPaidOrphanSighting, getPaidOrphan } = await import("../lib/db/paid_orphans.ts");
    const { markOrphanHandled } = await import("../lib/payments/orphans.ts");
    const orphanRef = (n: number) => `cs_test_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4y5Z6${n}`;
    for (const n of [1, 2]) {
      await recordPaidOrphanSighting(app.kv, {
        provider: "bansky",
        accountId: "default",
        ref: orphanRef(n),
        paymentId: ids[n],
        paymentStored: true,
        storedRef: (await describePayment(app.server.ctx, ids[n])).payment.providerRef,
        claimed: "succeeded",
        lastEventId: `evt_phone_${n}`,
      }, Date.now());
    }
    await markOrphanHandled(app.server.ctx, {
      accountId: "default",
      ref: orphanRef(2),
      note: "Refunded in Bansky's dashboard on 2026-11-30 after a call with the buyer, who had paid twice by mistake",
    }, { actor: "ops@example.com" });
    const browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    page.setDefaultTimeout(5000);
    try {
      await t.step("sign in on the phone", async () => {
        await page.goto(`${base}/admin/login`);
        await page.getByLabel("Email").fill("ops@example.com");
        await page.getByLabel("Password").fill("correct horse battery");
        await page.getByRole("button", { name: "Sign in" }).click();
        await page.waitForURL(`${base}/admin`);
      });

      await t.step("every console page fits the screen", async () => {
        const pages = [
          "/admin",
          "/admin/shops",
          `/admin/shops/${app.shop.id}`,
          "/admin/payments",
          `/admin/payments/${ids[0]}`,
          "/admin/deliveries",
          "/admin/invoices",
          `/admin/accounts?created=${account.id}`,
          "/admin/stats",
          "/admin/audit",
          "/admin/operators",
          "/admin/paid-orphans",
          "/admin/no-such-page",
          "/demo",
        ];
        for (const path of pages) {
          await page.goto(base + path);
          if (path === "/admin/stats") await page.locator(".uplot canvas").first().waitFor();
          assert.equal(await widerThanViewport(page), null, path);
          await shot(page, `phone${path.replace(/\?.*/, "").replaceAll("/", "-")}`.slice(0, 60));
        }
        // Another operator's row has its Disable button on the screen, and the question comes first.
        await page.goto(`${base}/admin/operators`);
        const disable = page.getByRole("row", { name: /a\.rather\.long/ }).getByRole("button", { name: "Disable" });
        const box = await disable.boundingBox();
        assert.ok(box && box.x >= 0 && box.x + box.width <= 390, JSON.stringify(box));
        assert.match((await disable.evaluate((b) => (b as HTMLButtonElement).form?.dataset.confirm))!, /^Disable /);
        // A refund's own id stays in the value column, under ours, not under the label.
        await page.goto(`${base}/admin/payments/${ids[0]}`);
        const ours = await page.locator('td[data-label="Refund"] code').first().boundingBox();
        const theirs = await page.locator('td[data-label="Refund"] .shop-refund-id').first().boundingBox();
        assert.ok(ours && theirs && theirs.x >= ours.x - 1 && theirs.y > ours.y, JSON.stringify({ ours, theirs }));
        // The payments list is a stack of rows: every cell says what it is, the Shop column included.
        await page.goto(`${base}/admin/payments`);
        assert.equal(await page.locator("table.stack-phone thead").isVisible(), false);
        await page.locator('td[data-label="Shop"]').first().waitFor();
        // The stats page draws one volume chart per currency.
        await page.goto(`${base}/admin/stats`);
        await page.getByText("Succeeded volume per day, EUR").waitFor();
        await page.getByText("Succeeded volume per day, JPY").waitFor();
      });

      await t.step(
        "the shop's API keys read on the phone: each hint and each Revoke on one line, inside the card",
        async () => {
          const { createShopKey } = await import("../lib/shops.ts");
          await createShopKey(app.kv, app.shop.id, { now: Date.now(), actor: "test", kind: "publishable" });
          await page.goto(`${base}/admin/shops/${app.shop.id}`);
          assert.equal(await widerThanViewport(page), null);
          const card = page.locator("section.card", { has: page.getByRole("heading", { name: "API keys" }) });
          await card.screenshot({ path: `${ARTIFACTS}/phone-admin-shop-keys.png` });
          const measured = await card.evaluate((section) => {
            const cardBox = section.getBoundingClientRect();
            // How many lines an element's text takes: the height of its text over its font size (a line is 1 to 1.5).
            const lines = (el: Element) => {
              const text = document.createRange();
              text.selectNodeContents(el);
              return Math.round(text.getBoundingClientRect().height / parseFloat(getComputedStyle(el).fontSize) / 1.2);
            };
            // Elements with a box of their own (a hidden input has none).
            const shown = [...section.querySelectorAll("*")].filter((el) => el.getClientRects().length);
            const outside = shown.filter((el) => {
              const box = el.getBoundingClientRect();
              return box.left < cardBox.left - 1 || box.right > cardBox.right + 1 ||
                el.scrollWidth > el.clientWidth + 1;
            }).map((el) => el.outerHTML.slice(0, 80));
            return {
              outside,
              revoke: [...section.querySelectorAll("button")].filter((b) => b.textContent === "Revoke").map(lines),
              hints: [...section.querySelectorAll("td code")].filter((c) => c.textContent!.endsWith("…")).map(lines),
            };
          });
          assert.deepEqual(measured.outside, [], "nothing sticks out of the card or is cut off");
          assert.deepEqual(measured.revoke, [1, 1], "each Revoke button on one line");
          assert.deepEqual(measured.hints, [1], "the secret key's hint on one line");
        },
      );

      await t.step(
        "taking embedding sites away asks first in the browser, naming them; adding asks nothing",
        async () => {
          const { getShop } = await import("../lib/db/shops.ts");
          const sites = async () => (await getShop(app.kv, app.shop.id))!.embedOrigins ?? [];
          await page.goto(`${base}/admin/shops/${app.shop.id}`);
          const box = page.getByLabel("Sites (origins)");
          const save = page.getByRole("button", { name: "Save embedding sites" });
          const questions: string[] = [];
          page.on("dialog", (d) => {
            questions.push(d.message());
            questions.length === 1 ? d.dismiss() : d.accept();
          });
          try {
            await box.fill("https://a.example\nhttps://b.example");
            await save.click();
            await page.getByText("Embedding sites saved.").waitFor();
            assert.equal(questions.length, 0, "adding asks nothing");
            // Cleared: asked first, naming both.
            await box.fill("");
            await save.click();
            await waitFor("the question", () => questions[0]);
            assert.equal(
              questions[0],
              "Stop https://a.example, https://b.example from showing this shop's checkout and forms? Buyers on those " +
                "pages can no longer pay there.",
            );
            assert.match(page.url(), new RegExp(`/admin/shops/${app.shop.id}$`), "answered no: nothing was sent");
            assert.deepEqual(await sites(), ["https://a.example", "https://b.example"]);
            // One taken away, from the keyboard; the other kept, typed in capitals (the same origin, not a removal).
            await box.fill("HTTPS://A.EXAMPLE");
            await box.press("Tab");
            await page.keyboard.press("Enter");
            await page.getByText("Embedding sites saved.").waitFor();
            assert.equal(questions[1], questions[0].replace("https://a.example, ", ""), "names only what goes");
            assert.deepEqual(await sites(), ["https://a.example"]);
          } finally {
            page.removeAllListeners("dialog");
          }
          page.once("dialog", (d) => d.accept());
          await box.fill("");
          await save.click();
          await page.getByText("No site may frame this shop's pages now.").waitFor();
          assert.deepEqual(await sites(), []);
        },
      );

      await t.step("a paid orphan is marked handled from the keyboard, after the question", async () => {
        await page.goto(`${base}/admin/paid-orphans`);
        const note = page.getByLabel("What was done");
        assert.equal(await note.count(), 1, "only the waiting one has a form");
        const box = await page.getByRole("button", { name: "Mark handled" }).boundingBox();
        assert.ok(box && box.x >= 0 && box.x + box.width <= 390, JSON.stringify(box));
        const questions: string[] = [];
        page.on("dialog", (d) => {
          questions.push(d.message());
          questions.length === 1 ? d.dismiss() : d.accept();
        });
        try {
          await note.fill("Refunded at Bansky");
          await note.press("Tab");
          await page.keyboard.press("Enter");
          await waitFor("the question", () => questions[0]);
          assert.match(
            questions[0],
            new RegExp(`^Mark Bansky's payment ${orphanRef(1)} .* Note: “Refunded at Bansky”`),
          );
          assert.equal((await getPaidOrphan(app.kv, "default", orphanRef(1)))?.handled, null, "answered no");
          await page.getByRole("button", { name: "Mark handled" }).focus();
          await page.keyboard.press("Enter");
          await page.getByText("Marked handled").waitFor();
        } finally {
          page.removeAllListeners("dialog");
        }
        assert.equal((await getPaidOrphan(app.kv, "default", orphanRef(1)))?.handled?.note, "Refunded at Bansky");
        assert.equal(await widerThanViewport(page), null);
      });

      await t.step("the shop's portal fits the screen too", async () => {
        const link = new URL(await createPortalLink(app.server.ctx, app.shop.id, "test"));
        const staff = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
        try {
          await staff.goto(base + link.pathname + link.search);
          await staff.getByRole("button", { name: "Continue" }).click();
          await staff.waitForURL(`${base}/portal`);
          const paths = ["/portal", "/portal/payments", `/portal/payments/${ids[0]}`, "/portal/deliveries"];
          for (const path of [...paths, "/portal/settings"]) {
            await staff.goto(base + path);
            assert.equal(await widerThanViewport(staff), null, path);
          }
          // The embedding sites, typed and sent from the keyboard (Enter in the box starts a new line; Tab reaches
          // the button).
          await staff.getByLabel("Sites (origins)").fill("https://shop.example");
          await staff.getByLabel("Sites (origins)").press("Tab");
          await staff.keyboard.press("Enter");
          await staff.waitForURL(/done=embed-saved/);
          await staff.getByText("Embedding sites saved.").waitFor();
          // Taking it away again asks first, in the shop's words.
          let question = "";
          staff.once("dialog", (d) => {
            question = d.message();
            d.dismiss();
          });
          await staff.getByLabel("Sites (origins)").fill("");
          await staff.getByRole("button", { name: "Save embedding sites" }).click();
          await waitFor("the question", () => question || undefined);
          assert.match(question, /^Stop https:\/\/shop\.example from showing your checkout and forms\?/);
          await staff.goto(`${base}/portal/payments`);
          await shot(staff, "phone-portal-payments");
        } finally {
          await staff.close();
        }
      });

      await t.step("Resend disables its button and says it is working", async () => {
        await page.goto(`${base}/admin/payments/${ids[0]}`);
        // Clicked from inside the page, and looked at in the same turn, before the answer replaces the page.
        const state = await page.getByRole("button", { name: "Resend postback" }).evaluate(clickAndLook);
        assert.deepEqual(state, { disabled: true, text: "Resending…", busy: "true" });
        await page.waitForURL(/done=resend-/);
      });

      await t.step(
        "settling a refund stuck at the provider by hand asks first, from the keyboard, fits the phone and shows progress",
        async () => {
          const { getRefund } = await import("../lib/db/refunds.ts");
          // Bansky holds this one pending for an hour: the console offers to settle it by hand.
          Object.assign(app.sandbox.knobs, { asyncRefunds: true, webhookDelayMs: 3_600_000 });
          const asked = await fetch(`${app.baseUrl}/api/v1/payments/${ids[0]}/refunds`, {
            method: "POST",
            headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
            body: JSON.stringify({ amount: 500 }),
          });
          Object.assign(app.sandbox.knobs, { asyncRefunds: false, webhookDelayMs: 0 });
          const { refund } = await asked.json();
          assert.equal(refund.status, "pending");
          await page.goto(`${base}/admin/payments/${ids[0]}`);
          const form = page.locator(`form[action$="/refunds/${refund.id}/settle"]`);
          assert.equal(await widerThanViewport(page), null, "the payment's page with its settle form");
          await form.screenshot({ path: `${ARTIFACTS}/phone-admin-refund-settle.png` });
          const questions: string[] = [];
          page.on("dialog", (d) => {
            questions.push(d.message());
            d.dismiss();
          });
          try {
            // No outcome is taken for granted: without one the browser asks for it, and nothing is sent.
            await form.getByLabel("Note (how you know)").fill("Bansky support confirmed no refund on 2026-11-30");
            await form.getByRole("button", { name: "Record outcome" }).press("Enter");
            const outcome = form.getByLabel("What the provider did");
            assert.equal(await outcome.evaluate((el) => (el as HTMLSelectElement).validity.valueMissing), true);
            assert.equal(questions.length, 0);
            await outcome.focus();
            await outcome.selectOption({
              label: "The provider made no refund: it fails, and its amount can be refunded again",
            });
            await form.getByRole("button", { name: "Record outcome" }).press("Enter");
            await waitFor("the question", () => questions[0]);
            assert.equal(
              questions[0],
              `Record this for refund ${refund.id} of 5.00 EUR? The provider made no refund: it fails, and its amount ` +
                "can be refunded again. Note: “Bansky support confirmed no refund on 2026-11-30”. The shop is told at " +
                "once, and this cannot be undone.",
            );
            assert.match(page.url(), new RegExp(`/admin/payments/${ids[0]}$`), "answered no: nothing was sent");
            assert.equal((await getRefund(app.kv, refund.id))!.status, "pending");
          } finally {
            page.removeAllListeners("dialog");
          }
          page.once("dialog", (d) => d.accept());
          // Clicked from inside the page, and looked at in the same turn, before the answer replaces the page.
          const state = await form.getByRole("button", { name: "Record outcome" }).evaluate(clickAndLook);
          assert.deepEqual(state, { disabled: true, text: "Recording…", busy: "true" });
          await page.waitForURL(/done=settled-failed/);
          await page.getByText("Recorded: the refund failed").waitFor();
          assert.equal((await getRefund(app.kv, refund.id))!.status, "failed");
        },
      );

      await t.step(
        "a confirmation page starts the keyboard on its question: Tab reaches its button at once",
        async () => {
          // The refund's own confirmation page.
          await page.goto(`${base}/admin/payments/${ids[0]}`);
          await page.getByRole("button", { name: "Refund…" }).click();
          await page.getByRole("button", { name: "Confirm refund" }).waitFor();
          assert.equal(await tabsToButton(page, "Confirm refund", 2), 1, "one Tab, not the whole menu first");
          await page.goBack();
          await page.getByRole("button", { name: "Refund…" }).click();
          await page.getByRole("button", { name: "Confirm refund" }).waitFor();
          await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
          const start = await focusedElement(page);
          assert.notEqual(start.tag, "BUTTON", "never on the button itself: Enter on arrival confirms nothing");
          assert.match(start.text, /^Refund .* of payment pay_/, "the question is what is read first");
          await shot(page, "phone-admin-refund-confirm");
          // A ConfirmStep page (the shop's Disable without the page's script: form.submit() skips its question).
          await page.goto(`${base}/admin/shops/${app.shop.id}`);
          await page.locator(`form[action="/admin/shops/${app.shop.id}/status"]`).evaluate((f) =>
            (f as HTMLFormElement).submit()
          );
          await page.getByRole("heading", { name: "Please confirm" }).waitFor();
          assert.equal(await tabsToButton(page, "Disable shop", 2), 1);
          await page.keyboard.press("Tab");
          assert.equal((await focusedElement(page)).text, "Cancel", "then Cancel");
          await page.keyboard.press("Enter");
          await page.waitForURL(`${base}/admin/shops/${app.shop.id}`);
          await page.getByRole("button", { name: "Disable shop" }).waitFor();
        },
      );

      await t.step("Disable shop asks first: cancelling changes nothing, confirming disables", async () => {
        await page.goto(`${base}/admin/shops/${app.shop.id}`);
        let question = "";
        page.once("dialog", (d) => {
          question = d.message();
          d.dismiss();
        });
        await page.getByRole("button", { name: "Disable shop" }).click();
        assert.match(question, /Disable Test shop\?/);
        assert.match(page.url(), new RegExp(`/admin/shops/${app.shop.id}$`));
        await page.getByRole("button", { name: "Disable shop" }).waitFor();
        page.once("dialog", (d) => d.accept());
        await page.getByRole("button", { name: "Disable shop" }).click();
        await page.getByText("Shop disabled").waitFor();
        await page.getByRole("button", { name: "Enable shop" }).click();
        await page.getByText("Shop enabled").waitFor();
      });

      await t.step("three signing keys fit the phone; ending the overlap from the keyboard asks first", async () => {
        const { rotateShopSecret, switchShopSigning } = await import("../lib/shops.ts");
        await switchShopSigning(app.kv, app.shop.id, { actor: "test", now: Date.now(), scheme: "ed25519" });
        await rotateShopSecret(app.kv, app.shop.id, { actor: "test", now: Date.now() });
        await page.goto(`${base}/admin/shops/${app.shop.id}`);
        await page.getByText("3 secrets or keys sign at once").waitFor();
        assert.equal(await page.getByText(/^Previous$/).count(), 2);
        assert.equal(await widerThanViewport(page), null, "the signatures card with a public key in its list");
        await shot(page, "phone-admin-shop-signing-overlap");
        const end = page.getByRole("button", { name: "End the overlap now" });
        const questions: string[] = [];
        page.on("dialog", (d) => {
          questions.push(d.message());
          questions.length === 1 ? d.dismiss() : d.accept();
        });
        try {
          await end.focus();
          await page.keyboard.press("Enter");
          await waitFor("the question", () => questions[0]);
          assert.match(
            questions[0],
            /^End the overlap now\? The key pair \(v1a\) that signs until .* UTC and the shared secret \(v1\) ending in …\S{4} that/,
          );
          assert.match(page.url(), new RegExp(`/admin/shops/${app.shop.id}$`), "answered no: nothing was sent");
          assert.equal(await page.getByText(/^Previous$/).count(), 2);
          await end.focus();
          await page.keyboard.press("Enter");
          await page.getByText("Overlap ended: only the current secret or key signs").waitFor();
        } finally {
          page.removeAllListeners("dialog");
        }
        assert.equal(await page.getByText(/^Previous$/).count(), 0);
        assert.equal(await page.getByRole("button", { name: "Rotate secret" }).count(), 1);
      });

      await t.step(
        "Replay takes no shop for granted; its question names the shop and the time, from the keyboard",
        async () => {
          await page.goto(`${base}/admin/deliveries`);
          const form = page.locator('form[action="/admin/deliveries/replay"]');
          const shop = form.getByLabel("Shop");
          assert.equal(await shop.inputValue(), "", "no shop is chosen for the operator");
          await form.getByLabel("Failed since (UTC)").fill("2026-01-02T03:04");
          const questions: string[] = [];
          page.on("dialog", (d) => {
            questions.push(d.message());
            d.dismiss();
          });
          // Without a shop the browser asks for one: no question, nothing sent.
          await form.getByRole("button", { name: "Replay" }).press("Enter");
          assert.equal(await shop.evaluate((el) => (el as HTMLSelectElement).validity.valueMissing), true);
          await shop.focus();
          await shop.selectOption({ label: "Test shop" });
          await form.getByRole("button", { name: "Replay" }).press("Enter");
          await waitFor("the question", () => questions[0]);
          assert.deepEqual(questions, [
            "Send the failed and retrying postbacks of Test shop whose last attempt failed since 2026-01-02 03:04 UTC now? Those it refused with 410 Gone are left alone.",
          ]);
          page.removeAllListeners("dialog");
          assert.match(page.url(), /\/admin\/deliveries$/, "answered no: nothing was sent");
        },
      );

      await t.step("rotating an account's credentials shows its API URL, filled in, and fits the screen", async () => {
        const { createAccount } = await import("../lib/accounts/mod.ts");
        const apiUrl = `https://bansky-api.${"long-subdomain-".repeat(4)}example.com/merchant/v2`;
        const account = await createAccount(app.server.ctx, {
          provider: "bansky",
          label: "Org on the phone",
          orgId: "891027350515",
          credentials: { apiUrl, apiToken: "token-on-the-phone", webhookSecret: "secret-on-the-phone" },
        }, { actor: "test" });
        await page.goto(`${base}/admin/accounts`);
        await page.locator(`form[action="/admin/accounts/${account.id}/rotate"] button`).click();
        await page.getByRole("button", { name: "Enter new credentials" }).click();
        await page.getByRole("button", { name: "Replace credentials" }).waitFor();
        assert.equal(await page.getByLabel("API URL").inputValue(), apiUrl);
        assert.equal(await widerThanViewport(page), null, "the rotation form");
        assert.doesNotMatch(await page.content(), /token-on-the-phone|secret-on-the-phone/);
        await shot(page, "phone-admin-accounts-rotate");
      });

      await t.step("the demo's Buy button shows progress while the payment starts", async () => {
        const buyer = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
        try {
          await buyer.goto(`${base}/demo`);
          const state = await buyer.getByRole("button", { name: "Buy for 10.00 EUR" }).evaluate(clickAndLook);
          assert.deepEqual(state, { disabled: true, text: "Starting the payment…", busy: "true" });
          await buyer.getByRole("heading", { name: "Bansky sandbox" }).waitFor();
          assert.equal(await widerThanViewport(buyer), null, "the sandbox pay page");
        } finally {
          await buyer.close();
        }
      });
    } finally {
      await browser.close();
      await app.close();
    }
  },
});
