/**
 * Hosted forms over real HTTP: created by API, portal and console; the buyer's
 * page, its submit (fiat payments through init-payment), the form token, the
 * abuse limit, framing, and a tampered post that changes nothing.
 */
import assert from "node:assert/strict";
import { getPayments, iteratePaymentIds } from "../lib/db/payments.ts";
import { getShop } from "../lib/db/shops.ts";
import type { Payment } from "../lib/payments/types.ts";
import { setEmbedOrigins } from "../lib/shops.ts";
import { searchAudit } from "../lib/db/audit.ts";
import { FORM_TOKEN_TTL_MS } from "../lib/forms/token.ts";
import { FRAMED_SUBMIT_HEADER } from "../lib/forms/types.ts";
import { buyerSettles, startTestApp, type TestApp } from "../fixtures/app.ts";
import { operatorBrowser, portalBrowser } from "../fixtures/browser.ts";
import { chainApi, readInvoice } from "../fixtures/invoices.ts";
import { listInvoices } from "../lib/db/invoices.ts";
import { DnsTimeoutError } from "../lib/relay/url_guard.ts";
import { FormCreatedResponse, FormListResponse, FormResponse } from "../lib/forms/api_schemas.ts";
import { createAccount, setAccountActive } from "../lib/accounts/mod.ts";
import { setShopRouting } from "../lib/accounts/routing.ts";

async function api(app: TestApp, method: string, path: string, body?: unknown, key = app.shop.apiKey) {
  const res = await fetch(`${app.baseUrl}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function createForm(app: TestApp, body: Record<string, unknown>): Promise<{ id: string; url: string }> {
  const res = await api(app, "POST", "/forms", body);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  FormCreatedResponse.parse(res.body);
  return res.body.form;
}

/** The buyer opens the page: its HTML and the form token it carries. */
async function openPage(app: TestApp, formId: string) {
  const res = await fetch(`${app.baseUrl}/forms/${formId}`);
  const html = await res.text();
  return { status: res.status, html, headers: res.headers, token: tokenOf(html) };
}

function tokenOf(html: string): string {
  return html.match(/name="_token" value="([^"]+)"/)?.[1] ?? "";
}

/** Posts the page as a browser would (no cookies, our own origin), without following the redirect. */
async function submit(app: TestApp, formId: string, fields: Record<string, string>, from = app.baseUrl) {
  const res = await fetch(`${app.baseUrl}/forms/${formId}/submit`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      origin: from,
      "sec-fetch-site": from === app.baseUrl ? "same-origin" : "cross-site",
    },
    body: new URLSearchParams(fields),
    redirect: "manual",
  });
  return { status: res.status, html: await res.text(), location: res.headers.get("location"), headers: res.headers };
}

async function shopPayments(app: TestApp): Promise<Payment[]> {
  const ids: string[] = [];
  for await (const p of iteratePaymentIds(app.kv, { shopId: app.shop.id })) ids.push(p.id);
  return await getPayments(app.kv, ids);
}

/** The inputs a page asks for, by name (the token aside). */
function inputNames(html: string): string[] {
  const form = html.slice(html.indexOf("<form"), html.indexOf("</form>"));
  return [...form.matchAll(/<(?:input|select)[^>]*name="([^"]+)"/g)].map((m) => m[1]).filter((n) => n !== "_token");
}

Deno.test("[forms] the API creates, lists and disables forms; bad input names each field and creates nothing", async (t) => {
  const app = await startTestApp();
  try {
    await t.step("bad input", async () => {
      const cases: [Record<string, unknown>, string][] = [
        [{ kind: "fiat" }, "title"],
        [{ kind: "fiat", title: "x", amount: 500 }, "currency"],
        [{ kind: "fiat", title: "x", amount: "5.00", currency: "EUR" }, "amount"],
        [{ kind: "fiat", title: "x", amount: 0, currency: "EUR" }, "amount"],
        [{ kind: "fiat", title: "x", amount: app.config.maxAmount + 1, currency: "EUR" }, "amount"],
        [{ kind: "fiat", title: "x", currency: "XXZ" }, "currency"],
        [{ kind: "fiat", title: "x", coin: "USDT" }, "coin"],
        [{ kind: "fiat", title: "x", extra: 1 }, "extra"],
        [{ kind: "cash", title: "x" }, "kind"],
        [{ kind: "crypto", title: "x", currency: "EUR" }, "currency"],
        [{ kind: "fiat", title: "   " }, "title"],
      ];
      for (const [body, field] of cases) {
        const res = await api(app, "POST", "/forms", body);
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.body.error.code, "invalid_request");
        assert.ok(res.body.error.fields[field], `${JSON.stringify(body)} names ${field}: ${JSON.stringify(res.body)}`);
      }
      const raw = await fetch(`${app.baseUrl}/api/v1/forms`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "text/plain" },
        body: "kind=fiat",
      });
      assert.equal(raw.status, 415);
      // A number where a crypto amount's text belongs says what is expected, not just "invalid".
      const numeric = await api(app, "POST", "/forms", { kind: "crypto", title: "x", coin: "USDT", amount: 12.5 });
      assert.match(numeric.body.error.fields.amount, /decimal string such as "12\.50"/);
      await raw.body?.cancel();
      assert.deepEqual((await api(app, "GET", "/forms")).body.forms, []);
    });

    let donation = { id: "", url: "" };
    await t.step("create and list", async () => {
      donation = await createForm(app, { kind: "fiat", title: "Support the shelter", currency: "EUR" });
      assert.match(donation.id, /^form_[A-Za-z0-9_-]{22}$/);
      assert.equal(donation.url, `${app.baseUrl}/forms/${donation.id}`);
      const fixed = await createForm(app, {
        kind: "fiat",
        title: "Ticket",
        description: "One entry",
        amount: 1500,
        currency: "eur",
      });
      const list = await api(app, "GET", "/forms");
      assert.equal(list.status, 200);
      // The answers are those the OpenAPI document describes.
      FormListResponse.parse(list.body);
      assert.deepEqual(list.body.forms.map((f: { id: string }) => f.id), [fixed.id, donation.id]);
      const ticket = list.body.forms[0];
      assert.equal(ticket.amount, 1500);
      assert.equal(ticket.currency, "EUR");
      assert.equal(ticket.status, "active");
      assert.equal(list.body.forms[1].amount, null);
      assert.equal(list.body.forms[1].description, null);
    });

    await t.step("another shop neither sees nor disables them", async () => {
      const { createShop } = await import("../lib/shops.ts");
      const other = await createShop(app.kv, { name: "Other" }, { allowLocalUrls: true, now: Date.now() });
      assert.deepEqual((await api(app, "GET", "/forms", undefined, other.apiKey)).body.forms, []);
      const res = await api(app, "POST", `/forms/${donation.id}/disable`, undefined, other.apiKey);
      assert.equal(res.status, 404);
      assert.equal((await openPage(app, donation.id)).status, 200);
    });

    await t.step("disable, twice", async () => {
      const res = await api(app, "POST", `/forms/${donation.id}/disable`);
      assert.equal(res.status, 200);
      FormResponse.parse(res.body);
      assert.equal(res.body.form.status, "disabled");
      assert.ok(res.body.form.disabledAt);
      const again = await api(app, "POST", `/forms/${donation.id}/disable`);
      assert.equal(again.body.form.disabledAt, res.body.form.disabledAt);
      assert.equal((await api(app, "POST", "/forms/form_nope/disable")).status, 404);
      const audit = await searchAudit(app.kv, { query: donation.id, limit: 10 });
      assert.deepEqual(audit.map((a) => a.action).sort(), ["form.create", "form.disable"]);
      assert.equal(audit[0].actor, `api:${app.shop.id}`);
    });

    await t.step("no key, no forms", async () => {
      const res = await fetch(`${app.baseUrl}/api/v1/forms`);
      assert.equal(res.status, 401);
      await res.body?.cancel();
    });
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a form with several bad fields is answered with all of them at once: the schema's, the rules between fields and the return URL", async (t) => {
  const app = await startTestApp({ allowedHosts: ["127.0.0.1"] });
  try {
    const ONLY_CRYPTO = "is only for crypto forms";
    const OFF_HOSTS = "host evil.example is not in the shop's allowed hosts";
    const cases: [string, Record<string, unknown>, Record<string, string>][] = [
      [
        "a blank title, a coin on a fiat form and an ftp return URL",
        { kind: "fiat", title: "  ", coin: "USDT", returnUrl: "ftp://x" },
        { title: "must not be blank", coin: ONLY_CRYPTO, returnUrl: "must be an absolute http or https URL" },
      ],
      [
        "a bad amount, a fixed amount without its currency, and a return URL off the allowed hosts",
        { kind: "fiat", title: "Gift", amount: 0, network: "tron", returnUrl: "https://evil.example/back" },
        {
          amount: "must be more than 0",
          currency: "is required with a fixed amount (the amount is in minor units of this currency)",
          network: ONLY_CRYPTO,
          returnUrl: OFF_HOSTS,
        },
      ],
      [
        "a crypto form's fixed amount with a coin but no network, and a bad return URL",
        { kind: "crypto", title: "Tip", coin: "USDT", amount: "5", returnUrl: "https://evil.example/back" },
        { amount: "needs a network: a fixed amount is in a fixed coin on a fixed network", returnUrl: OFF_HOSTS },
      ],
      [
        "a missing title beside a crypto amount with neither coin nor network",
        { kind: "crypto", amount: "5" },
        {
          title: "is required",
          amount: "needs a coin and a network: a fixed amount is in a fixed coin on a fixed network",
        },
      ],
      [
        "a crypto form's fixed amount with a network but no coin",
        { kind: "crypto", title: "Tip", network: "tron", amount: "5" },
        { amount: "needs a coin: a fixed amount is in a fixed coin on a fixed network" },
      ],
      [
        "a coin the schema refuses is named, not said to be missing",
        { kind: "crypto", title: "Tip", coin: "X".repeat(17), network: "tron", amount: "5", currency: "EUR" },
        {
          coin: "must be at most 16 characters long",
          currency: "is only for fiat forms; a crypto form has a coin and a network",
        },
      ],
    ];
    for (const [name, body, fields] of cases) {
      await t.step(name, async () => {
        const res = await api(app, "POST", "/forms", body);
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, "invalid_request");
        assert.deepEqual(res.body.error.fields, fields);
      });
    }
    assert.deepEqual((await api(app, "GET", "/forms")).body.forms, []);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a donation form asks only for the amount and email; its submit makes that payment and goes to the pay wrapper", async () => {
  const app = await startTestApp();
  try {
    const form = await createForm(app, { kind: "fiat", title: "Support the shelter", currency: "EUR" });
    const page = await openPage(app, form.id);
    assert.equal(page.status, 200);
    assert.match(page.html, /Support the shelter/);
    assert.match(page.html, /Test shop/);
    assert.deepEqual(inputNames(page.html), ["amount", "email"]);
    assert.match(page.html, /Amount \(EUR\)/);
    assert.match(page.headers.get("cache-control")!, /no-store/);

    // A decimal comma, as many buyers write it.
    const res = await submit(app, form.id, { _token: page.token, amount: "25,50", email: "donor@example.com" });
    assert.equal(res.status, 303);
    const [payment] = await shopPayments(app);
    assert.equal(res.location, `${app.baseUrl}/integration/pay?id=${payment.id}`);
    assert.equal(payment.amount, 2550);
    assert.equal(payment.currency, "EUR");
    assert.equal(payment.email, "donor@example.com");
    assert.equal(payment.successUrl, `${form.url}/thanks`);
    assert.equal(payment.errorUrl, `${form.url}/not-paid`);

    // The buyer pays at the provider and comes back to our thank-you page.
    const back = await buyerSettles(res.location!, "paid");
    assert.ok(back.startsWith(`${form.url}/thanks`), back);
    const thanks = await fetch(back);
    assert.equal(thanks.status, 200);
    assert.match(await thanks.text(), /Thank you/);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] the pages a buyer comes back to tell the payment's real status when they know it, and claim nothing when not", async (t) => {
  const app = await startTestApp();
  try {
    const form = await createForm(app, { kind: "fiat", title: "Support the shelter", currency: "EUR" });
    const other = await createForm(app, { kind: "fiat", title: "Other", currency: "EUR" });
    const pay = async (amount: string) => {
      const page = await openPage(app, form.id);
      const res = await submit(app, form.id, { _token: page.token, amount, email: "donor@example.com" });
      assert.equal(res.status, 303);
      return res.location!;
    };
    const text = async (url: string) => {
      const res = await fetch(url.startsWith("/") ? app.baseUrl + url : url);
      assert.equal(res.status, 200, url);
      assert.match(res.headers.get("cache-control")!, /no-store/, "a status must not be cached");
      return (await res.text()).replace(/&#39;/g, "'");
    };

    await t.step("paid: received, with the amount", async () => {
      const back = await buyerSettles(await pay("25.50"), "paid");
      assert.match(back, /\/thanks\?apay_payment=pay_/);
      const html = await text(back);
      assert.match(html, /Your payment of 25\.50 EUR to Test shop has been received\./);
    });

    await t.step("sent back before the provider told us: being confirmed, with a way to check again", async () => {
      const payUrl = await pay("7");
      const paymentId = new URL(payUrl).searchParams.get("id")!;
      const html = await text(`/forms/${form.id}/thanks?apay_payment=${paymentId}`);
      assert.match(html, /<h1>Your payment is being confirmed<\/h1>/);
      assert.match(html, /has not told us the outcome of your payment of 7\.00 EUR to Test shop yet/);
      assert.ok(html.includes(`href="/forms/${form.id}/thanks?apay_payment=${paymentId}"`), "Check again");
      assert.doesNotMatch(html, /has been received|on its way/);
    });

    await t.step("declined: the try-again page says so from the payment, not from the provider's word", async () => {
      const back = await buyerSettles(await pay("3"), "declined");
      assert.match(back, /\/not-paid\?apay_payment=pay_/);
      const html = await text(back);
      assert.match(html, /Your payment of 3\.00 EUR was declined\. Nothing was charged by Test shop\./);
      assert.ok(html.includes(`href="/forms/${form.id}"`), "Try again");
      // Sent to the thank-you page anyway (a hand-made link), it does not thank for a declined payment.
      const thanks = await text(back.replace("/not-paid?", "/thanks?"));
      assert.match(thanks, /<h1>The payment did not go through<\/h1>/);
    });

    await t.step("no payment named, or one of another form: only what is true without it", async () => {
      const otherPage = await openPage(app, other.id);
      const otherPay = await submit(app, other.id, { _token: otherPage.token, amount: "5", email: "a@example.com" });
      const otherId = new URL(otherPay.location!).searchParams.get("id")!;
      for (
        const query of ["", "?apay_payment=pay_AAAAAAAAAAAAAAAAAAAAAA", `?apay_payment=${otherId}`, "?apay_payment=x"]
      ) {
        const html = await text(`/forms/${form.id}/thanks${query}`);
        assert.match(html, /You are back from the payment page\. Test shop confirms your payment once/, query);
        assert.doesNotMatch(html, /on its way|has been received|7\.00 EUR|5\.00 EUR/, query);
        // Sent back by the provider without a payment we know: nothing said of money we have not seen.
        const notPaid = await text(`/forms/${form.id}/not-paid${query}`);
        assert.match(notPaid, /sent you back without completing the payment/, query);
        assert.doesNotMatch(notPaid, /Nothing was charged/, query);
      }
    });

    await t.step("cancelled: not 'nothing was charged', since the provider may still confirm money", async () => {
      const id = new URL(await pay("4")).searchParams.get("id")!;
      const cancelled = await fetch(`${app.baseUrl}/api/v1/payments/${id}/cancel`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.shop.apiKey}` },
      });
      assert.equal(cancelled.status, 200, await cancelled.text());
      const html = await text(`/forms/${form.id}/not-paid?apay_payment=${id}`);
      assert.match(html, /4\.00 EUR to Test shop was cancelled\. If money did leave your account, Test shop sees it/);
      assert.doesNotMatch(html, /Nothing was charged/);
    });
  } finally {
    await app.close();
  }
});

Deno.test("[forms] one address loading the result pages of many pending payments asks the provider at most its per-minute budget", async () => {
  // Payments from a public form cost a stranger nothing: each pending one's result page was a provider call every
  // 2 s, so an address with a few hundred of them had us call the provider hundreds of times a second.
  const app = await startTestApp({ env: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "10" } });
  try {
    const { BUYER_RECHECK_INTERVAL_MS } = await import("../lib/checkout/sessions.ts");
    // Early in a minute, so the whole test is counted in one.
    const start = Math.floor(Date.now() / 60_000) * 60_000 + 1_000;
    let clock = start;
    app.server.ctx.now = () => clock;
    const form = await createForm(app, { kind: "fiat", title: "Support the shelter", currency: "EUR" });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const page = await openPage(app, form.id);
      const res = await submit(app, form.id, { _token: page.token, amount: "5", email: "a@example.com" });
      assert.equal(res.status, 303);
      ids.push(new URL(res.location!).searchParams.get("id")!);
    }
    const before = app.sandbox.calls.status;
    const loadAll = async () => {
      for (const [i, id] of ids.entries()) {
        const res = await fetch(`${app.baseUrl}/forms/${form.id}/${i % 2 ? "thanks" : "not-paid"}?apay_payment=${id}`);
        const html = await res.text();
        assert.equal(res.status, 200);
        assert.match(html, /Your payment is being confirmed/);
      }
    };
    await loadAll();
    for (let round = 1; round <= 3; round++) {
      clock = start + round * BUYER_RECHECK_INTERVAL_MS;
      await loadAll();
    }
    assert.equal(
      app.sandbox.calls.status - before,
      10,
      "provider status calls for 40 loads by one address in a minute",
    );
    // The next minute, the address's pages ask again.
    clock = start + 60_000;
    await loadAll();
    assert.equal(app.sandbox.calls.status - before, 20);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a tampered submit pays exactly what the merchant fixed", async () => {
  const app = await startTestApp();
  try {
    const form = await createForm(app, { kind: "fiat", title: "Ticket", amount: 1500, currency: "EUR" });
    const page = await openPage(app, form.id);
    assert.deepEqual(inputNames(page.html), ["email"], "a fixed amount and currency are shown, not asked");
    assert.match(page.html, /1,500\.00 EUR|15\.00 EUR/);
    // Posted cross-site without cookies (as from a page the buyer saved or a shop's frame): the token alone decides.
    const res = await submit(app, form.id, {
      _token: page.token,
      email: "buyer@example.com",
      amount: "0.01",
      currency: "USD",
      kind: "crypto",
      title: "Free",
      shopId: "shop_someoneelse",
    }, "https://shop.example");
    assert.equal(res.status, 303);
    const payments = await shopPayments(app);
    assert.equal(payments.length, 1);
    assert.equal(payments[0].amount, 1500);
    assert.equal(payments[0].currency, "EUR");
    assert.equal(payments[0].type, "fiat");
  } finally {
    await app.close();
  }
});

Deno.test("[forms] invalid input re-renders the page with messages and creates nothing", async () => {
  const app = await startTestApp();
  try {
    const form = await createForm(app, { kind: "fiat", title: "Any amount" });
    const page = await openPage(app, form.id);
    assert.deepEqual(inputNames(page.html), ["currency", "amount", "email"]);
    assert.match(page.html, /<option value="EUR"/);
    for (
      const [fields, expect] of [
        [{ currency: "EUR", amount: "", email: "donor@example.com" }, /Enter an amount\./],
        [{ currency: "EUR", amount: "ten", email: "donor@example.com" }, /Enter an amount above 0/],
        // Each refused amount is told what is wrong with it.
        [
          { currency: "EUR", amount: "10.001", email: "donor@example.com" },
          /EUR takes at most 2 decimals: the smallest amount is 0\.01\./,
        ],
        [
          { currency: "EUR", amount: "1,000", email: "donor@example.com" },
          /Use a point for decimals and no commas as thousands separators, like 1234\.50\./,
        ],
        [{ currency: "EUR", amount: "12,505", email: "donor@example.com" }, /no commas as thousands separators/],
        [{ currency: "EUR", amount: "1 000", email: "donor@example.com" }, /no thousands separators/],
        [
          { currency: "JPY", amount: "10.5", email: "donor@example.com" },
          /JPY takes no decimals: enter a whole number, like 1234\./,
        ],
        [{ currency: "EUR", amount: "-5", email: "donor@example.com" }, /Enter an amount above 0\.</],
        [{ currency: "EUR", amount: "0.00", email: "donor@example.com" }, /Enter an amount above 0\.</],
        // Too large is said so, with the limit in the currency, however large: past 15 digits it does not parse.
        [
          { currency: "EUR", amount: "99999999999", email: "donor@example.com" },
          /That is too large: the most this form takes is 1000000\.00 EUR\./,
        ],
        [
          { currency: "EUR", amount: "99999999999999999999", email: "donor@example.com" },
          /That is too large: the most this form takes is 1000000\.00 EUR\./,
        ],
        [
          { currency: "EUR", amount: "1e30", email: "donor@example.com" },
          /That is too large: the most this form takes is 1000000\.00 EUR\./,
        ],
        [
          { currency: "JPY", amount: "99999999999999999999", email: "donor@example.com" },
          /That is too large: the most this form takes is 100000000 JPY\./,
        ],
        [{ currency: "EUR", amount: "10", email: "not an email" }, /Enter your email address/],
        [{ currency: "ZZZ", amount: "10", email: "donor@example.com" }, /Pick a currency/],
      ] as [Record<string, string>, RegExp][]
    ) {
      const res = await submit(app, form.id, { _token: page.token, ...fields });
      assert.equal(res.status, 422, JSON.stringify(fields));
      assert.match(res.html, expect);
      assert.match(res.html, /aria-invalid="true"/);
      // What the buyer typed is kept, and a fresh token comes with the page.
      if (fields.amount) assert.ok(res.html.includes(`value="${fields.amount}"`), JSON.stringify(fields));
      assert.ok(tokenOf(res.html));
    }
    assert.equal((await shopPayments(app)).length, 0);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a too-large amount is told the limit as the field takes it: typed back, it goes through", async () => {
  const app = await startTestApp();
  try {
    const form = await createForm(app, { kind: "fiat", title: "Any amount" });
    for (const currency of ["EUR", "JPY", "KWD"]) {
      const page = await openPage(app, form.id);
      const refused = await submit(app, form.id, {
        _token: page.token,
        currency,
        amount: "99999999999",
        email: "donor@example.com",
      });
      assert.equal(refused.status, 422);
      const limit = refused.html.match(/the most this form takes is ([^ ]+) ([A-Z]{3})\./);
      assert.ok(limit, refused.html);
      assert.equal(limit[2], currency);
      assert.doesNotMatch(limit[1], /,/, "no thousands separators, which the field refuses");
      const taken = await submit(app, form.id, {
        _token: tokenOf(refused.html),
        currency,
        amount: limit[1],
        email: "donor@example.com",
      });
      assert.equal(taken.status, 303, `${limit[1]} ${currency} typed back`);
    }
    assert.deepEqual((await shopPayments(app)).map((p) => p.amount).sort(), Array(3).fill(app.config.maxAmount));
  } finally {
    await app.close();
  }
});

Deno.test("[forms] an open currency is picked by code and name from money buyers hold; a fund code posted anyway is refused", async () => {
  const app = await startTestApp();
  try {
    const form = await createForm(app, { kind: "fiat", title: "Any amount" });
    const page = await openPage(app, form.id);
    const options = [...page.html.matchAll(/<option value="([A-Z]{3})"[^>]*>([^<]*)</g)];
    assert.ok(options.length > 100, `${options.length} currencies`);
    const labels = new Map(options.map(([, code, label]) => [code, label]));
    assert.equal(labels.get("EUR"), "EUR · Euro");
    assert.equal(labels.get("KZT"), "KZT · Kazakhstani Tenge");
    for (const [code, label] of labels) assert.notEqual(label, `${code} · ${code}`, `${code} is shown without a name`);
    for (const code of ["BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "UYI", "UYW", "XAU", "XDR", "XTS", "XXX"]) {
      assert.ok(!labels.has(code), `${code} is offered`);
    }
    for (const currency of ["BOV", "usn", "XAU"]) {
      const res = await submit(app, form.id, {
        _token: page.token,
        currency,
        amount: "10",
        email: "donor@example.com",
      });
      assert.equal(res.status, 422, currency);
      assert.match(res.html, /Pick a currency from the list\./);
    }
    assert.equal((await shopPayments(app)).length, 0, "nothing went to the provider");
    // A fixed currency is named the same way.
    const ticket = await createForm(app, { kind: "fiat", title: "Ticket", currency: "JPY" });
    assert.match((await openPage(app, ticket.id)).html, /<dd>JPY · Japanese Yen<\/dd>/);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a form stored with a fixed fund code before they were refused is marked out of order in the portal and the console, and tells the buyer nothing of it", async () => {
  const app = await startTestApp();
  try {
    const fixed = await createForm(app, { kind: "fiat", title: "Mvdol ticket", amount: 1000, currency: "EUR" });
    const open = await createForm(app, { kind: "fiat", title: "Mvdol gift", currency: "EUR" });
    const fine = await createForm(app, { kind: "fiat", title: "Euro gift", currency: "EUR" });
    // As the code stored them in BOV before fund codes were refused.
    for (const id of [fixed.id, open.id]) {
      const stored = (await app.kv.get<Record<string, unknown>>(["forms", id])).value!;
      await app.kv.set(["forms", id], { ...stored, currency: "BOV" });
    }
    const mark = "out of order: BOV is a fund code, not a currency buyers pay in; disable it and make a new one";
    const rowOf = (html: string, id: string) =>
      html.match(new RegExp(`<tr(?:(?!</tr>)[\\s\\S])*${id}(?:(?!</tr>)[\\s\\S])*</tr>`))?.[0] ?? "";
    const portal = await portalBrowser(app);
    const operator = await operatorBrowser(app);
    const lists = { portal: await portal.get("/portal/forms"), console: await operator.get("/admin/forms") };
    for (const [who, list] of Object.entries(lists)) {
      assert.equal(list.status, 200, who);
      assert.ok(rowOf(list.text, fixed.id).includes(mark), `${who}: ${rowOf(list.text, fixed.id)}`);
      assert.ok(rowOf(list.text, fixed.id).includes("10.00 BOV"), who);
      assert.ok(rowOf(list.text, open.id).includes(mark), who);
      assert.doesNotMatch(rowOf(list.text, fine.id), /out of order/, who);
    }

    // The buyer's page and its submit say only what any form out of order says.
    const page = await openPage(app, fixed.id);
    assert.equal(page.status, 200);
    assert.doesNotMatch(page.html, /out of order|fund code/i);
    const { result: res, logged } = await capturingWarnings(() =>
      submit(app, fixed.id, { _token: page.token, email: "donor@example.com" })
    );
    assert.equal(res.status, 503);
    assert.match(res.html, /This form cannot take payments right now\./);
    assert.doesNotMatch(res.html, /fund code/i);
    assert.match(logged, /form submit refused.*is a fund code/);

    // Disabled, it is no longer marked.
    await portal.get("/portal/forms");
    assert.equal((await portal.post(`/portal/forms/${fixed.id}/disable`, { confirm: "yes" })).status, 303);
    const after = rowOf((await portal.get("/portal/forms")).text, fixed.id);
    assert.match(after, /disabled/);
    assert.doesNotMatch(after, /out of order/);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a forged, moved or expired token is refused with a message; a double submit makes one payment", async (t) => {
  let clock = Date.now();
  const app = await startTestApp();
  const realNow = app.server.ctx.now;
  app.server.ctx.now = () => clock;
  try {
    const form = await createForm(app, { kind: "fiat", title: "Support", currency: "EUR" });
    const other = await createForm(app, { kind: "fiat", title: "Other", currency: "EUR" });
    const fields = { amount: "10", email: "donor@example.com" };

    await t.step("forged and moved tokens", async () => {
      const page = await openPage(app, form.id);
      const [exp, nonce, mac] = page.token.split(".");
      for (
        const token of [
          "",
          "garbage",
          `${Number(exp) + 3600}.${nonce}.${mac}`,
          `${exp}.${nonce.replace(/^./, (ch) => (ch === "A" ? "B" : "A"))}.${mac}`,
          (await openPage(app, other.id)).token,
        ]
      ) {
        const res = await submit(app, form.id, { _token: token, ...fields });
        assert.equal(res.status, 403, token);
        assert.match(res.html, /We could not verify this page/);
        assert.ok(res.html.includes('value="10"'), "the buyer's values are kept");
      }
      assert.equal((await shopPayments(app)).length, 0);
    });

    await t.step("an expired token", async () => {
      const page = await openPage(app, form.id);
      clock += FORM_TOKEN_TTL_MS + 1000;
      const res = await submit(app, form.id, { _token: page.token, ...fields });
      assert.equal(res.status, 403);
      assert.match(res.html, /open for too long/);
      assert.equal((await shopPayments(app)).length, 0);
      // The re-rendered page's own token works.
      const retry = await submit(app, form.id, { _token: tokenOf(res.html), ...fields });
      assert.equal(retry.status, 303);
      assert.equal((await shopPayments(app)).length, 1);
    });

    await t.step("double submit", async () => {
      const page = await openPage(app, form.id);
      const before = (await shopPayments(app)).length;
      const [a, b] = await Promise.all([
        submit(app, form.id, { _token: page.token, ...fields }),
        submit(app, form.id, { _token: page.token, ...fields }),
      ]);
      const c = await submit(app, form.id, { _token: page.token, ...fields });
      assert.deepEqual([a.status, b.status, c.status], [303, 303, 303]);
      assert.equal(a.location, b.location);
      assert.equal(a.location, c.location);
      assert.equal((await shopPayments(app)).length, before + 1);
      // The same page sent again with another amount is not a second payment either.
      const changed = await submit(app, form.id, { _token: page.token, amount: "11", email: "donor@example.com" });
      assert.equal(changed.status, 409);
      assert.match(changed.html, /already sent this page/);
      assert.equal((await shopPayments(app)).length, before + 1);
    });
  } finally {
    app.server.ctx.now = realNow;
    await app.close();
  }
});

/** Gives the test shop a default postback URL (its host resolving to loopback) and these allowed hosts. */
async function setDefaultPostbackUrl(app: TestApp, url: string, allowedHosts: string[]) {
  const { updateShopSettings } = await import("../lib/shops.ts");
  await updateShopSettings(app.kv, app.shop.id, { name: "Test shop", allowedHosts, defaultPostbackUrl: url }, {
    actor: "test",
    allowLocalUrls: true,
    now: Date.now(),
    resolve: () => Promise.resolve(["127.0.0.1"]),
  });
}

Deno.test("[forms] when the shop's postback host cannot be looked up in time, the buyer is asked to send again", async () => {
  const app = await startTestApp();
  try {
    await setDefaultPostbackUrl(app, "http://hooks.shop.example/postbacks", ["hooks.shop.example", "localhost"]);
    app.server.ctx.resolve = (host) => Promise.reject(new DnsTimeoutError(host, 5_000));
    const form = await createForm(app, { kind: "fiat", title: "Support", currency: "EUR" });
    const page = await openPage(app, form.id);
    const res = await submit(app, form.id, { _token: page.token, amount: "5", email: "donor@example.com" });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "5");
    assert.match(res.html, /Nothing was charged; please send the form again in a few seconds/);
    assert.match(res.html, /value="donor@example.com"/, "what the buyer typed is kept");
    assert.ok(!res.html.includes("hooks.shop.example"), "the shop's own host is not shown to its buyers");
    assert.equal((await shopPayments(app)).length, 0);
    assert.equal(app.sandbox.calls.create, 0);
  } finally {
    await app.close();
  }
});

/** Runs `fn` with the warnings and errors the app logs (console.error) captured; answers them as text. */
async function capturingWarnings<T>(fn: () => Promise<T>): Promise<{ result: T; logged: string }> {
  const lines: string[] = [];
  const saved = console.error;
  console.error = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    return { result: await fn(), logged: lines.join("\n") };
  } finally {
    console.error = saved;
  }
}

Deno.test("[forms] a submit the shop's set-up refuses tells the buyer only that the form cannot take payments now; the reason goes to the log", async (t) => {
  const app = await startTestApp();
  const ctx = app.server.ctx;
  try {
    const account = await createAccount(ctx, {
      provider: "bansky",
      label: "Second merchant",
      orgId: "891027350515",
      currencies: ["EUR", "USD"],
      credentials: { apiUrl: app.sandboxUrl, apiToken: "token-second", webhookSecret: "whsec-second" },
    }, { actor: "test" });
    await setShopRouting(ctx, app.shop.id, { rules: [], defaultAccountId: account.id }, { actor: "test" });
    const form = await createForm(app, { kind: "fiat", title: "Support", currency: "EUR" });
    const fields = { amount: "10", email: "donor@example.com" };
    const before = app.sandbox.calls.create;

    const cases: [string, () => Promise<unknown>, RegExp][] = [
      [
        "the shop's account is disabled",
        () => setAccountActive(ctx, account.id, false, { actor: "test" }),
        /the account its routes pick is disabled/,
      ],
      [
        "the shop's account takes no such currency",
        async () => {
          await setAccountActive(ctx, account.id, true, { actor: "test" });
          const usdOnly = await createAccount(ctx, {
            provider: "bansky",
            label: "Dollars only",
            orgId: "991011000048",
            currencies: ["USD"],
            credentials: { apiUrl: app.sandboxUrl, apiToken: "token-usd", webhookSecret: "whsec-usd" },
          }, { actor: "test" });
          await setShopRouting(ctx, app.shop.id, {
            rules: [{ accountId: usdOnly.id, currency: "EUR", type: null }],
            defaultAccountId: account.id,
          }, { actor: "test" });
        },
        /the account its routes pick takes no EUR/,
      ],
    ];
    for (const [name, breakSetUp, reason] of cases) {
      await t.step(name, async () => {
        const page = await openPage(app, form.id);
        await breakSetUp();
        const { result: res, logged } = await capturingWarnings(() =>
          submit(app, form.id, { _token: page.token, ...fields })
        );
        assert.equal(res.status, 503, res.html);
        const shown = res.html.match(/<p class="flash bad" role="alert">([^<]*)<\/p>/)?.[1] ?? "";
        assert.equal(
          shown,
          "This form cannot take payments right now. Nothing was charged. Please try again later, or contact Test shop.",
        );
        assert.doesNotMatch(res.html, /route|disabled|account|no_route|takes no/i, "nothing of the shop's set-up");
        assert.ok(res.html.includes('value="10"') && res.html.includes('value="donor@example.com"'), "values kept");
        assert.ok(tokenOf(res.html), "a fresh page to send again later");
        // The operator reads why in the log, with the form and shop to look at.
        const line = logged.split("\n").map((l) => JSON.parse(l)).find((l) => l.msg === "form submit refused");
        assert.ok(line, logged);
        assert.equal(line.formId, form.id);
        assert.equal(line.shopId, app.shop.id);
        assert.equal(line.code, "no_route");
        assert.match(line.reason, reason);
        assert.equal((await shopPayments(app)).length, 0, "nothing was made");
        assert.equal(app.sandbox.calls.create, before, "the provider was not asked");
      });
    }
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a shop with a default postback URL hears about a form's payment by its form-derived id", async () => {
  const app = await startTestApp();
  try {
    await setDefaultPostbackUrl(app, "http://localhost:9/postbacks", ["shop.example", "localhost"]);
    const form = await createForm(app, { kind: "fiat", title: "Support", currency: "EUR" });
    const page = await openPage(app, form.id);
    const res = await submit(app, form.id, { _token: page.token, amount: "5", email: "donor@example.com" });
    assert.equal(res.status, 303, res.html);
    const [payment] = await shopPayments(app);
    assert.match(payment.shopTxId!, new RegExp(`^form:${form.id}:`));
    assert.equal(payment.postbackUrl, "http://localhost:9/postbacks");
    // Our result pages (on 127.0.0.1) pass the shop's host limits (shop.example and localhost only).
    assert.equal(payment.successUrl, `${form.url}/thanks`);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a disabled form shows a friendly page and refuses submits", async () => {
  const app = await startTestApp();
  try {
    const form = await createForm(app, { kind: "fiat", title: "Support", currency: "EUR" });
    const page = await openPage(app, form.id);
    assert.equal((await api(app, "POST", `/forms/${form.id}/disable`)).status, 200);
    const closed = await openPage(app, form.id);
    assert.equal(closed.status, 410);
    assert.match(closed.html, /This form is closed/);
    assert.equal(closed.token, "");
    const res = await submit(app, form.id, { _token: page.token, amount: "10", email: "donor@example.com" });
    assert.equal(res.status, 410);
    assert.match(res.html, /This form is closed/);
    assert.equal((await shopPayments(app)).length, 0);
    // A disabled shop's forms close with it.
    const { setShopStatus } = await import("../lib/shops.ts");
    const other = await createForm(app, { kind: "fiat", title: "Other", currency: "EUR" });
    await setShopStatus(app.kv, app.shop.id, "disabled", { actor: "test", now: Date.now() });
    assert.equal((await openPage(app, other.id)).status, 410);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a link to no form says what happened and what to do in the buyer's words, on each of its pages", async () => {
  const app = await startTestApp();
  try {
    for (
      const path of [
        "/forms/form_AAAAAAAAAAAAAAAAAAAAAA",
        "/forms/form_AAAAAAAAAAAAAAAAAAAAAA/thanks",
        "/forms/form_AAAAAAAAAAAAAAAAAAAAAA/not-paid",
        // Cut short in an email: not even the shape of a form's id.
        "/forms/form_AAAAAAAAAA",
      ]
    ) {
      const res = await fetch(app.baseUrl + path);
      assert.equal(res.status, 404, path);
      const html = await res.text();
      assert.match(html, /<h1>Payment form not found<\/h1>/, path);
      assert.match(html, /Check that you opened the whole link the shop gave you/, path);
      assert.doesNotMatch(html, /Unknown form|<h1>Not found/, path);
    }
    const res = await fetch(`${app.baseUrl}/forms/form_AAAAAAAAAAAAAAAAAAAAAA/submit`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: app.baseUrl },
      body: "email=donor%40example.com",
    });
    assert.equal(res.status, 404);
    assert.match(await res.text(), /Payment form not found/);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] submits are limited per client address: over the limit answers 429 with a page", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "3" } });
  try {
    const form = await createForm(app, { kind: "fiat", title: "Support", currency: "EUR" });
    const page = await openPage(app, form.id);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await submit(app, form.id, { _token: page.token, amount: "", email: "x" })).status);
    }
    assert.deepEqual(statuses, [422, 422, 422, 429]);
    const last = await submit(app, form.id, { _token: page.token, amount: "10", email: "donor@example.com" });
    assert.equal(last.status, 429);
    assert.ok(Number(last.headers.get("retry-after")) > 0);
    assert.match(last.html, /Too many tries.*Please wait \d+ seconds, then try again\./s);
    assert.equal((await shopPayments(app)).length, 0);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] only the form page names the shop's embedding sites as frame ancestors", async () => {
  const app = await startTestApp();
  try {
    await setEmbedOrigins(app.kv, app.shop.id, ["https://shop.example", "http://127.0.0.1:4000"], {
      actor: "test",
      now: Date.now(),
      allowLocalUrls: true,
    });
    const form = await createForm(app, { kind: "fiat", title: "Support", currency: "EUR" });
    const page = await openPage(app, form.id);
    assert.match(
      page.headers.get("content-security-policy")!,
      /frame-ancestors https:\/\/shop\.example http:\/\/127\.0\.0\.1:4000(;|$)/,
    );
    assert.equal(page.headers.get("x-frame-options"), null);
    assert.match(page.html, /target="_top"/, "the payment opens as the whole page, not in the frame");
    // The re-rendered page with messages too.
    const invalid = await submit(app, form.id, { _token: page.token, amount: "", email: "x" });
    assert.equal(invalid.status, 422);
    assert.match(invalid.headers.get("content-security-policy")!, /frame-ancestors https:\/\/shop\.example/);
    assert.equal(invalid.headers.get("x-frame-options"), null);
    // A closed form's page and a framed submit's answer are shown in the frame too.
    const framed = await fetch(`${app.baseUrl}/forms/${form.id}/submit`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", [FRAMED_SUBMIT_HEADER]: "1" },
      body: new URLSearchParams({ _token: page.token, amount: "", email: "x" }),
    });
    await framed.body?.cancel();
    assert.equal(framed.headers.get("x-frame-options"), null);
    assert.match(framed.headers.get("content-security-policy")!, /frame-ancestors https:\/\/shop\.example/);
    // Nothing else: the thanks page, another shop's form, the console.
    const thanks = await fetch(`${form.url}/thanks`);
    await thanks.body?.cancel();
    const { createShop } = await import("../lib/shops.ts");
    const other = await createShop(app.kv, { name: "Other" }, { allowLocalUrls: true, now: Date.now() });
    const otherForm = (await api(app, "POST", "/forms", { kind: "fiat", title: "x" }, other.apiKey)).body.form;
    const otherPage = await openPage(app, otherForm.id);
    const login = await fetch(`${app.baseUrl}/admin/login`);
    await login.body?.cancel();
    for (const res of [thanks.headers, otherPage.headers, login.headers]) {
      assert.match(res.get("content-security-policy")!, /frame-ancestors 'none'/);
    }
    assert.equal((await getShop(app.kv, app.shop.id))!.embedOrigins!.length, 2);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] shop staff create, list and disable their forms in the portal; an operator does in the console", async (t) => {
  const app = await startTestApp();
  try {
    await t.step("portal", async () => {
      const b = await portalBrowser(app);

      const empty = await b.get("/portal/forms");
      assert.equal(empty.status, 200);
      assert.match(empty.text, /No forms yet/);
      const bad = await b.post("/portal/forms", { kind: "fiat", title: "", amount: "5", currency: "" });
      assert.equal(bad.status, 400);
      assert.match(bad.text, /is required with a fixed amount/);
      // A fixed amount over the limit is told so in the currency's units the person typed, not in minor units.
      for (const amount of ["2000000", "99999999999999999999", "1e30"]) {
        const huge = await b.post("/portal/forms", { kind: "fiat", title: "Huge", amount, currency: "EUR" });
        assert.equal(huge.status, 400, amount);
        assert.match(huge.text, /is too large: the most is 1000000\.00 EUR/, amount);
      }
      const created = await b.post("/portal/forms", {
        kind: "fiat",
        title: "Gift card",
        amount: "20.00",
        currency: "EUR",
        returnUrl: "https://shop.example/gift-cards",
      });
      assert.equal(created.status, 303);
      const formId = new URL(created.location!, app.baseUrl).searchParams.get("created")!;
      const list = await b.get(created.location!);
      assert.match(list.text, /Gift card/);
      assert.match(list.text, /20\.00 EUR/);
      assert.ok(list.text.includes(`&lt;iframe src=&quot;${app.baseUrl}/forms/${formId}&quot;`), "the embed snippet");
      const apiView = (await api(app, "GET", "/forms")).body.forms[0];
      assert.equal(apiView.amount, 2000);
      assert.equal(apiView.returnUrl, "https://shop.example/gift-cards");

      // Disabling asks first when the page's script did not.
      const ask = await b.post(`/portal/forms/${formId}/disable`, {});
      assert.equal(ask.status, 200);
      assert.match(ask.text, /Disable this form\?/);
      assert.equal((await api(app, "GET", "/forms")).body.forms[0].status, "active");
      const done = await b.post(`/portal/forms/${formId}/disable`, { confirm: "yes" });
      assert.equal(done.status, 303);
      assert.match((await b.get("/portal/forms")).text, /Form &quot;Gift card&quot; disabled/);
      assert.equal((await api(app, "GET", "/forms")).body.forms[0].status, "disabled");
      const audit = await searchAudit(app.kv, { query: formId, limit: 10 });
      assert.ok(audit.every((a) => a.actor.startsWith(`portal:${app.shop.id}:pses_`)), JSON.stringify(audit));

      // Another shop's form is not found from this portal.
      const { createShop } = await import("../lib/shops.ts");
      const other = await createShop(app.kv, { name: "Other" }, { allowLocalUrls: true, now: Date.now() });
      const theirs = (await api(app, "POST", "/forms", { kind: "fiat", title: "Theirs" }, other.apiKey)).body.form;
      assert.ok(!(await b.get("/portal/forms")).text.includes(theirs.id));
      assert.equal((await b.post(`/portal/forms/${theirs.id}/disable`, { confirm: "yes" })).status, 404);
    });

    await t.step("console", async () => {
      const b = await operatorBrowser(app);
      const page = await b.get("/admin/forms");
      assert.equal(page.status, 200);
      assert.match(page.text, /Gift card/, "every shop's forms");
      assert.match(page.text, /Theirs/);
      // A shop id typed by hand that cannot be one (longer than KV takes in a key) is no shop: the form page again,
      // the shop field marked, nothing made.
      const formsBefore = (await api(app, "GET", "/forms")).body.forms.length;
      await b.get("/admin/forms");
      const noShop = await b.post("/admin/forms", {
        shopId: "shop_" + "x".repeat(3000),
        kind: "fiat",
        title: "No shop",
      });
      assert.equal(noShop.status, 400);
      assert.match(noShop.text, /The form was not created: see the fields below/);
      assert.match(noShop.text, /pick a shop/);
      assert.equal((await api(app, "GET", "/forms")).body.forms.length, formsBefore);
      assert.equal((await searchAudit(app.kv, { query: "No shop", limit: 10 })).length, 0);

      const created = await b.post("/admin/forms", { shopId: app.shop.id, kind: "fiat", title: "Console made" });
      assert.equal(created.status, 303);
      const formId = new URL(created.location!, app.baseUrl).searchParams.get("created")!;
      const res = await b.post(`/admin/forms/${formId}/disable`, { confirm: "yes" });
      assert.equal(res.status, 303);
      const forms = (await api(app, "GET", "/forms")).body.forms;
      assert.equal(forms.find((f: { id: string }) => f.id === formId).status, "disabled");
      const audit = await searchAudit(app.kv, { query: formId, limit: 10 });
      assert.ok(audit.every((a) => a.actor === "ops@example.com"));
    });
  } finally {
    await app.close();
  }
});

Deno.test("[forms] crypto forms: the buyer fills what is open, the invoice takes what is fixed, a double submit makes one", async (t) => {
  const app = await startTestApp();
  const invoiceIdOf = (location: string | null) => {
    const m = location?.match(/\/invoices\/(inv_[A-Za-z0-9_-]{22})$/);
    assert.ok(m, `an invoice page: ${location}`);
    return m[1];
  };
  try {
    await t.step("bad crypto forms", async () => {
      const cases: [Record<string, unknown>, string][] = [
        [{ kind: "crypto", title: "x", coin: "DOGE" }, "coin"],
        [{ kind: "crypto", title: "x", network: "solana" }, "network"],
        [{ kind: "crypto", title: "x", coin: "BTC", network: "tron" }, "network"],
        [{ kind: "crypto", title: "x", amount: "1" }, "amount"],
        [{ kind: "crypto", title: "x", coin: "USDT", network: "tron", amount: 5 }, "amount"],
        [{ kind: "crypto", title: "x", coin: "USDT", network: "tron", amount: "1.1234567" }, "amount"],
        [{ kind: "crypto", title: "x", coin: "USDT", network: "tron", amount: "0" }, "amount"],
      ];
      for (const [body, field] of cases) {
        const res = await api(app, "POST", "/forms", body);
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.ok(res.body.error.fields[field], `${JSON.stringify(body)} names ${field}: ${JSON.stringify(res.body)}`);
      }
    });

    await t.step("a tip jar in USDT on Tron: the buyer types the amount", async () => {
      const form = await createForm(app, { kind: "crypto", title: "Tip jar", coin: "usdt", network: "tron" });
      const page = await openPage(app, form.id);
      assert.deepEqual(inputNames(page.html), ["amount", "email"]);
      assert.match(page.html, /Amount \(USDT\)/);
      const bad = await submit(app, form.id, { _token: page.token, amount: "1.1234567", email: "fan@example.com" });
      assert.equal(bad.status, 422);
      assert.match(bad.html, /USDT takes at most 6 decimals: the smallest amount is 0\.000001\./);
      const res = await submit(app, form.id, { _token: page.token, amount: "12.5", email: "fan@example.com" });
      assert.equal(res.status, 303, res.html);
      const invoice = await readInvoice(app, invoiceIdOf(res.location));
      assert.equal(res.location, invoice.checkoutUrl);
      assert.deepEqual([invoice.coin, invoice.network, invoice.amount, invoice.title], [
        "USDT",
        "tron",
        "12.5",
        "Tip jar",
      ]);
      assert.equal(invoice.status, "waiting_for_deposit");
      // The shop can reach the buyer, and tell which form and submit the invoice came from.
      assert.equal(invoice.email, "fan@example.com");
      assert.match(invoice.shopInvoiceId, new RegExp(`^form:${form.id}:[\\w-]+$`));
      const again = await submit(app, form.id, { _token: page.token, amount: "12.5", email: "fan@example.com" });
      assert.equal(again.location, res.location, "the same page sent twice names one invoice");
    });

    await t.step("a fixed BTC amount: a tampered post changes nothing", async () => {
      const form = await createForm(app, {
        kind: "crypto",
        title: "Course",
        coin: "BTC",
        network: "bitcoin",
        amount: "0.0015",
      });
      assert.equal((await api(app, "GET", "/forms")).body.forms[0].amount, "0.0015");
      const page = await openPage(app, form.id);
      assert.deepEqual(inputNames(page.html), ["email"]);
      assert.match(page.html, /0\.0015 BTC/);
      const res = await submit(app, form.id, {
        _token: page.token,
        email: "student@example.com",
        amount: "0.00000001",
        coin: "USDT:tron",
        network: "tron",
      });
      assert.equal(res.status, 303, res.html);
      const invoice = await readInvoice(app, invoiceIdOf(res.location));
      assert.deepEqual([invoice.coin, invoice.network, invoice.amount], ["BTC", "bitcoin", "0.0015"]);
    });

    await t.step("an open BTC amount: a refused one is told what is wrong with it", async () => {
      const form = await createForm(app, { kind: "crypto", title: "Tip in BTC", coin: "BTC", network: "bitcoin" });
      const page = await openPage(app, form.id);
      const says: [string, RegExp][] = [
        ["0.123456789", /BTC takes at most 8 decimals: the smallest amount is 0\.00000001\./],
        ["0,001", /Use a point, not a comma: 0\.001\./],
        ["0,123456789", /Use a point, not a comma, and at most 8 decimals for BTC\./],
        ["1,000", /Use a point for decimals and no commas as thousands separators/],
        ["0", /Enter an amount above 0\.</],
        ["0012", /Leave out the zeros in front: 12\./],
        ["abc", /Enter an amount above 0\. Use digits with an optional decimal point \(at most 8 decimals\)/],
        ["9".repeat(31), /That is too large: an amount of BTC has at most 30 digits before the point\./],
      ];
      for (const [amount, expect] of says) {
        const res = await submit(app, form.id, { _token: page.token, amount, email: "fan@example.com" });
        assert.equal(res.status, 422, amount);
        assert.match(res.html, expect, amount);
        assert.ok(res.html.includes(`value="${amount}"`), `${amount} is kept`);
      }
      const ok = await submit(app, form.id, { _token: page.token, amount: "0.001", email: "fan@example.com" });
      assert.equal(ok.status, 303, ok.html);
    });

    await t.step("coin and network left open: the buyer picks from the list, nothing else", async () => {
      const form = await createForm(app, { kind: "crypto", title: "Anything", coin: "USDT" });
      const page = await openPage(app, form.id);
      assert.deepEqual(inputNames(page.html), ["coin", "amount", "email"]);
      assert.match(page.html, /value="USDT:tron"/);
      assert.match(page.html, /value="USDT:ethereum"/);
      assert.ok(!page.html.includes('value="BTC:bitcoin"'), "only the merchant's coin is offered");
      const refused = await submit(app, form.id, {
        _token: page.token,
        coin: "BTC:bitcoin",
        amount: "1",
        email: "a@b.example",
      });
      assert.equal(refused.status, 422);
      assert.match(refused.html, /Pick a coin/);
      const res = await submit(app, form.id, {
        _token: page.token,
        coin: "USDT:ethereum",
        amount: "3",
        email: "a@b.example",
      });
      assert.equal(res.status, 303, res.html);
      const invoice = await readInvoice(app, invoiceIdOf(res.location));
      assert.deepEqual([invoice.coin, invoice.network, invoice.amount], ["USDT", "ethereum", "3"]);
    });
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a crypto form sent in a burst that takes every address on offer asks the buyer to send it again (409, values and page kept); sent again, each page makes one invoice", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "100000" } });
  try {
    const form = await createForm(app, { kind: "crypto", title: "Drop", coin: "USDT", network: "tron", amount: "5" });
    // A slow address service: the burst waits on its batches of new addresses, and a submit that saw every address
    // of the batches it waited for go to others gives up (lib/invoices/pool.ts), as the invoice API answers 409.
    await chainApi(app).knobs({ addressDelayMs: 500 });
    const pages = await Promise.all(Array.from({ length: 100 }, () => openPage(app, form.id)));
    const fields = (i: number) => ({ email: `buyer${i}@example.com` });
    const first = await Promise.all(pages.map((p, i) => submit(app, form.id, { _token: p.token, ...fields(i) })));
    const statuses = new Set(first.map((r) => r.status));
    assert.deepEqual([...statuses].sort(), [303, 409], "some go through, the rest are asked to send again");

    const refused = first.flatMap((r, i) => (r.status === 409 ? [i] : []));
    for (const i of refused) {
      const res = first[i];
      assert.match(res.html, /role="alert">[^<]*Nothing was charged; please send the form again\./);
      assert.ok(res.html.includes(`value="buyer${i}@example.com"`), "what the buyer typed is kept");
      assert.equal(tokenOf(res.html), pages[i].token, "the same page: sent again, it names the same invoice");
      assert.equal(res.headers.get("retry-after"), "1");
    }
    assert.equal((await listInvoices(app.kv, { shopId: app.shop.id, limit: 200 })).length, 100 - refused.length);

    await chainApi(app).knobs({ addressDelayMs: 0 });
    // Sent again (twice at once for the first, a double click): each page makes its invoice, once.
    const [again, twice] = await Promise.all([
      Promise.all(refused.map((i) => submit(app, form.id, { _token: pages[i].token, ...fields(i) }))),
      submit(app, form.id, { _token: pages[refused[0]].token, ...fields(refused[0]) }),
    ]);
    for (const res of again) assert.equal(res.status, 303, res.html);
    assert.equal(twice.location, again[0].location);
    const done = first.flatMap((r, i) => (r.status === 303 ? [i] : []));
    const repeat = await submit(app, form.id, { _token: pages[done[0]].token, ...fields(done[0]) });
    assert.equal(repeat.location, first[done[0]].location, "a page that went through names its invoice again");
    const invoices = await listInvoices(app.kv, { shopId: app.shop.id, limit: 200 });
    assert.equal(invoices.length, 100, "one invoice per page");
    assert.equal(new Set(invoices.map((inv) => inv.email)).size, 100);
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a form's return URL leads the buyer back to the shop from every page after the form", async (t) => {
  const app = await startTestApp();
  const back = (html: string) => html.match(/<a[^>]*href="([^"]*)"[^>]*>Back to Test shop<\/a>/)?.[1] ?? null;
  const page = async (url: string) => await (await fetch(url.startsWith("/") ? app.baseUrl + url : url)).text();
  const returnUrl = "https://shop.example/donate?from=form";
  try {
    await t.step("judged as a payment's success URL is: https, on the shop's allowed hosts", async () => {
      const before = (await getShop(app.kv, app.shop.id))!;
      await setDefaultPostbackUrl(app, "https://shop.example/postbacks", ["shop.example"]);
      for (const bad of ["https://elsewhere.example/", "javascript:alert(1)", "/donate", 7]) {
        const res = await api(app, "POST", "/forms", { kind: "fiat", title: "x", currency: "EUR", returnUrl: bad });
        assert.equal(res.status, 400, JSON.stringify(bad));
        assert.ok(res.body.error.fields.returnUrl, JSON.stringify(res.body));
      }
      assert.equal((await api(app, "GET", "/forms")).body.forms.length, 0, "nothing was made");
      await setDefaultPostbackUrl(app, before.defaultPostbackUrl!, before.allowedHosts);
    });

    await t.step("a fiat form: the thank-you and try-again pages link back; the API shows it", async () => {
      const form = await createForm(app, { kind: "fiat", title: "Support the shelter", currency: "EUR", returnUrl });
      const list = (await api(app, "GET", "/forms")).body;
      FormListResponse.parse(list);
      assert.equal(list.forms.find((f: { id: string }) => f.id === form.id).returnUrl, returnUrl);
      for (const [amount, outcome] of [["9", "paid"], ["3", "declined"]] as const) {
        const { token } = await openPage(app, form.id);
        const res = await submit(app, form.id, { _token: token, amount, email: "donor@example.com" });
        const landed = await buyerSettles(res.location!, outcome);
        assert.equal(back(await page(landed)), returnUrl, landed);
      }
      // Without a payment named (signed redirects off), the pages still lead back.
      assert.equal(back(await page(`/forms/${form.id}/thanks`)), returnUrl);
      assert.equal(back(await page(`/forms/${form.id}/not-paid`)), returnUrl);
      // A form without one has no such link.
      const plain = await createForm(app, { kind: "fiat", title: "Plain", currency: "EUR" });
      assert.equal(back(await page(`/forms/${plain.id}/thanks`)), null);
      assert.equal((await api(app, "GET", "/forms")).body.forms[0].returnUrl, null);
    });

    await t.step("a crypto form: its invoice's page links back", async () => {
      const form = await createForm(app, {
        kind: "crypto",
        title: "Tip jar",
        coin: "USDT",
        network: "tron",
        returnUrl,
      });
      const { token } = await openPage(app, form.id);
      const res = await submit(app, form.id, { _token: token, amount: "5", email: "fan@example.com" });
      assert.equal(res.status, 303, res.html);
      assert.equal(back(await page(res.location!)), returnUrl);
    });

    await t.step("a disabled form's page links back", async () => {
      const form = await createForm(app, { kind: "fiat", title: "Old", currency: "EUR", returnUrl });
      assert.equal((await api(app, "POST", `/forms/${form.id}/disable`)).status, 200);
      assert.equal(back(await page(`/forms/${form.id}`)), returnUrl);
    });
  } finally {
    await app.close();
  }
});

Deno.test("[forms] a submit sent by the page's script from a shop's frame is answered where to go next, or with the page and its messages", async () => {
  const app = await startTestApp();
  try {
    const send = async (formId: string, fields: Record<string, string>) => {
      const res = await fetch(`${app.baseUrl}/forms/${formId}/submit`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          origin: app.baseUrl,
          "sec-fetch-site": "same-origin",
          [FRAMED_SUBMIT_HEADER]: "1",
        },
        body: new URLSearchParams(fields),
        redirect: "manual",
      });
      return { status: res.status, type: res.headers.get("content-type") ?? "", text: await res.text() };
    };
    const fiat = await createForm(app, { kind: "fiat", title: "Donate", currency: "EUR" });
    const { token } = await openPage(app, fiat.id);
    const bad = await send(fiat.id, { _token: token, amount: "5,5,5", email: "donor@example.com" });
    assert.equal(bad.status, 422);
    assert.match(bad.type, /^text\/html/);
    assert.match(bad.text, /Use a point for decimals/);
    assert.equal((await shopPayments(app)).length, 0, "nothing was made");
    const good = await send(fiat.id, { _token: token, amount: "5", email: "donor@example.com" });
    assert.equal(good.status, 200, good.text);
    const [payment] = await shopPayments(app);
    assert.deepEqual(JSON.parse(good.text), { next: `${app.baseUrl}/integration/pay?id=${payment.id}` });
    // The same page sent again (the plain post, should the script's request have failed) names the same payment.
    const plain = await submit(app, fiat.id, { _token: token, amount: "5", email: "donor@example.com" });
    assert.equal(plain.location, JSON.parse(good.text).next);

    const crypto = await createForm(app, { kind: "crypto", title: "Tips", coin: "USDT", network: "tron" });
    const page = await openPage(app, crypto.id);
    const made = await send(crypto.id, { _token: page.token, amount: "3", email: "fan@example.com" });
    assert.equal(made.status, 200, made.text);
    assert.match(JSON.parse(made.text).next, /\/invoices\/inv_/);
  } finally {
    await app.close();
  }
});
