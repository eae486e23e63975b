/**
 * What a shop integrating from the public docs alone relies on: each promise
 * in the docs is checked against the running app (issue 15).
 */
import assert from "node:assert/strict";
import { callInit, paymentBody, startShopReceiver, startTestApp, type TestApp, waitFor } from "../fixtures/app.ts";
import {
  cancelInvoiceCall,
  chainApi,
  createTestInvoice,
  dropFromChain,
  readInvoice,
  shiftClock,
} from "../fixtures/invoices.ts";
import type { OpenApiDocument } from "../lib/docs/openapi.ts";
import { loadConfig } from "../lib/config.ts";
import { INVOICE_STATUS_RULES, INVOICE_STATUSES } from "../lib/invoices/status.ts";
import { PAYMENT_STATUSES } from "../lib/payments/status.ts";
import { MAX_OTHER_COIN_DEPOSITS } from "../lib/invoices/deposits.ts";

const DOCS = new URL("../docs/public/", import.meta.url);
const readDoc = (name: string) => Deno.readTextFile(new URL(name, DOCS));

Deno.test("[docs] an Idempotency-Key answers the first payment however much later, as idempotency.md and the OpenAPI say", async () => {
  const app = await startTestApp();
  const realNow = app.server.ctx.now;
  try {
    const headers = { "idempotency-key": crypto.randomUUID() };
    const first = await callInit(app, paymentBody(), { headers });
    assert.equal(first.status, 201);
    app.server.ctx.now = () => realNow() + 30 * 86_400_000;
    const later = await callInit(app, paymentBody(), { headers });
    assert.equal(later.status, 200, "thirty days on, the same key is the same payment");
    assert.equal(later.body.id, first.body.id);

    const spec: OpenApiDocument = await (await fetch(`${app.baseUrl}/openapi.json`)).json();
    const param = spec.paths["/api/v1/init-payment"].post!.parameters!.find((p) => p.name === "Idempotency-Key")!;
    assert.ok(!/24 h/.test(param.description ?? ""), param.description);
    assert.match(param.description ?? "", /do not expire/);
    assert.match(await readDoc("idempotency.md"), /keys do not expire/);
  } finally {
    app.server.ctx.now = realNow;
    await app.close();
  }
});

Deno.test("[docs] the built-in sandbox settles a payment without a browser exactly as sandbox.md shows, with no token", async () => {
  const app = await startTestApp();
  try {
    const page = await readDoc("sandbox.md");
    assert.match(page, /-X POST "\$PAY_PAGE\/paid"/);
    const init = await callInit(app, paymentBody({ id: "docs-sandbox-1", postbackUrl: "http://127.0.0.1:9/pb" }));
    // curl -w '%{redirect_url}' "$BASE/integration/pay?id=pay_..."
    const pay = await fetch(init.body.url, { redirect: "manual" });
    await pay.body?.cancel();
    const payPage = pay.headers.get("location")!;
    assert.match(payPage, /\/sandbox\/bansky\/pay\/bsk_/);
    // curl -X POST "$PAY_PAGE/paid"
    const paid = await fetch(new URL(payPage, app.baseUrl).href + "/paid", { method: "POST", redirect: "manual" });
    await paid.body?.cancel();
    assert.equal(paid.status, 303);
    assert.match(paid.headers.get("location")!, /\/integration\/success/);
    // The sandbox's webhook follows the click, as after a real buyer's.
    await waitFor("the payment to succeed", async () => {
      const status = await fetch(`${app.baseUrl}/api/v1/payments/${init.body.id}`, {
        headers: { authorization: `Bearer ${app.shop.apiKey}` },
      }).then((r) => r.json());
      return status.payment.status === "succeeded" ? true : undefined;
    });
  } finally {
    await app.close();
  }
});

Deno.test("[docs] the OpenAPI document: a license, real error messages, response objects open to new fields", async () => {
  const app = await startTestApp();
  try {
    const spec = await (await fetch(`${app.baseUrl}/openapi.json`)).json();
    assert.ok(spec.info.license?.name, "a license");
    const schemas = spec.components.schemas as Record<string, { additionalProperties?: unknown }>;
    for (const name of ["Payment", "PaymentResponse", "InitPaymentResponse", "ErrorResponse", "Refund", "Postback"]) {
      assert.equal(schemas[name].additionalProperties, undefined, `${name} allows added fields`);
    }
    assert.equal(schemas.InitPaymentRequest.additionalProperties, false, "requests stay strict");
    const payment = spec.components.schemas.Payment.properties;
    for (const field of ["url", "successUrl", "errorUrl"]) assert.equal(payment[field].format, "uri", field);

    // The examples carry what the API really answers.
    const examples = spec.paths["/api/v1/payments/{id}"].get.responses;
    const example = (status: string, code: string) =>
      examples[status].content["application/json"].examples[code].value.error.message;
    const auth = { authorization: `Bearer ${app.shop.apiKey}` };
    const missing = await (await fetch(`${app.baseUrl}/api/v1/payments/pay_nope`, { headers: auth })).json();
    assert.equal(example("404", "not_found"), missing.error.message);
    const noKey = await (await fetch(`${app.baseUrl}/api/v1/payments/pay_nope`)).json();
    assert.equal(example("401", "unauthorized"), noKey.error.message);
    assert.ok(!JSON.stringify(spec).includes("A sentence for people."));

    // The field messages the OpenAPI document, init-payment.md and errors.md show are those the API answers.
    const tooMuch = await callInit(app, paymentBody({ amount: app.config.maxAmount + 1, email: "not-an-email" }));
    const fields = tooMuch.body.error.fields;
    const invalid = spec.paths["/api/v1/init-payment"].post.responses["400"].content["application/json"].examples
      .invalid_request.value.error;
    assert.deepEqual(invalid.fields, { amount: fields.amount });
    assert.ok((await readDoc("init-payment.md")).includes(`"amount": ${JSON.stringify(fields.amount)}`));
    assert.ok((await readDoc("errors.md")).includes(`"email": ${JSON.stringify(fields.email)}`));
  } finally {
    await app.close();
  }
});

Deno.test("[docs] error tables list each row once; retry advice names only what a shop gets; Retry-After means not before", async () => {
  const errors = await readDoc("errors.md");
  for (const table of errors.split(/\n(?=## )/)) {
    const rows = table.split("\n").filter((l) => /^\| \d{3}/.test(l)).map((l) => l.split("|").slice(1, 3).join("|"));
    assert.equal(new Set(rows).size, rows.length, `a status and code appear once per table: ${rows.join("; ")}`);
  }
  assert.ok(!/after `Retry-After`/.test(errors));
  const idempotency = await readDoc("idempotency.md");
  const advice = idempotency.slice(idempotency.indexOf("## A simple retry policy"));
  assert.ok(!/^Retry[^.]*`409`/m.test(advice), "init-payment never answers 409");
  assert.match(await readDoc("postbacks.md"), /not before that time/);
});

Deno.test("[docs] the quick start runs the CLI through the npm-installed Deno against the server's DENO_KV_PATH", async () => {
  for (
    const text of [await readDoc("quick-start.md"), await Deno.readTextFile(new URL("../README.md", import.meta.url))]
  ) {
    assert.match(text, /npx deno task shop create --name "My shop"/);
    assert.ok(!/(^|[^x] )deno task shop create/m.test(text.replace(/npx deno task/g, "")), "no bare deno task shop");
    assert.match(text, /same `DENO_KV_PATH`/);
  }
  // The README's two quick-start commands stay as they were.
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  assert.match(readme, /npm install && npm start/);
  assert.match(readme, /npm install && npm test/);
});

Deno.test("[docs] the quick start's payment, copied as it stands, is refused as the page says, and goes through with a local postbackUrl", async () => {
  // No DNS here: shop.example resolves to nothing, as it does for a reader.
  const app = await startTestApp({ resolve: () => Promise.resolve([]) });
  try {
    const page = await readDoc("quick-start.md");
    const body = JSON.parse(page.match(/init-payment" \\\n(?:.*\n)*?\s+-d '(\{[^']*\})'/)![1]);
    assert.equal(body.postbackUrl, "https://shop.example/postbacks");
    const copied = await callInit(app, body);
    assert.equal(copied.status, 400);
    const said = page.replace(/\n */g, " ");
    assert.ok(
      said.includes(`"postbackUrl": ${JSON.stringify(copied.body.error.fields.postbackUrl)}`),
      "the page quotes the answer",
    );
    const local = said.match(/such as `(http:\/\/localhost:\d+\/postbacks)`/)![1];
    const own = await callInit(app, { ...body, postbackUrl: local });
    assert.equal(own.status, 201, JSON.stringify(own.body));
  } finally {
    await app.close();
  }
});

Deno.test("[docs] every init-payment and checkout session example with an id is taken, as written, by a shop without a default postback URL", async () => {
  // shop.example stands for the reader's own site: here it resolves to a public address.
  const app = await startTestApp({ resolve: () => Promise.resolve(["93.184.215.14"]) });
  try {
    const examples: { page: string; body: Record<string, unknown> }[] = [];
    for await (const file of Deno.readDir(DOCS)) {
      if (!file.name.endsWith(".md")) continue;
      const page = await readDoc(file.name);
      for (const [, block] of page.matchAll(/```sh\n([\s\S]*?)```/g)) {
        if (!block.includes("/api/v1/init-payment")) continue;
        const data = block.match(/-d '(\{[^']*\})'/);
        if (data) examples.push({ page: file.name, body: JSON.parse(data[1]) });
      }
    }
    assert.ok(examples.filter((e) => e.body.id).length >= 3, "the examples with an id are found");
    for (const { page, body } of examples) {
      const answer = await callInit(app, { ...body, id: body.id && `${page}:${body.id}` });
      assert.equal(answer.status, 201, `${page}: ${JSON.stringify(answer.body)}`);
    }
    // The embedded checkout's server code, as Node.js or Deno would run it.
    const checkout = await readDoc("embedded-checkout.md");
    const code = checkout.match(/body: JSON\.stringify\((\{[\s\S]*?\})\),\n/)![1];
    const order = { id: "embedded-checkout.md:order-1", email: "buyer@example.com" };
    const session = await fetch(`${app.baseUrl}/api/v1/checkout/sessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify(new Function("order", `return (${code});`)(order)),
    });
    assert.equal(session.status, 201, await session.text());
  } finally {
    await app.close();
  }
});

Deno.test("[docs] the invoice and checkout session examples show every field the API answers", async () => {
  const app = await startTestApp();
  try {
    const examples = async (name: string) =>
      [...(await readDoc(name)).matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]));
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${app.baseUrl}/api/v1/${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 201);
      return await res.json();
    };
    const keys = (o: object) => Object.keys(o).sort();

    const invoice = await post("invoices", { coin: "USDT", network: "tron", amount: "12.50", title: "Order 17" });
    const invoices = await examples("invoices.md");
    assert.deepEqual(keys(invoices.find((e) => e.invoice).invoice), keys(invoice.invoice), "the create answer");
    assert.deepEqual(keys(invoices.find((e) => e.type).data), keys(invoice.invoice), "the postback's data");

    const session = await post("checkout/sessions", { amount: 2500, currency: "EUR", customerEmail: "b@example.com" });
    const sessions = await examples("embedded-checkout.md");
    assert.deepEqual(keys(sessions.find((e) => e.sessionId)), keys(session));
  } finally {
    await app.close();
  }
});

Deno.test("[docs] the API reference says postbackUrl is required with id when the shop has no default, as the API answers", async () => {
  const app = await startTestApp();
  try {
    const refused = await callInit(app, paymentBody({ id: "no-postback-url" }));
    assert.equal(refused.status, 400);
    assert.match(refused.body.error.fields.postbackUrl, /required when id is given and the shop has no default/);
    const spec = await (await fetch(`${app.baseUrl}/openapi.json`)).json();
    for (const schema of ["InitPaymentRequest", "CheckoutSessionRequest"]) {
      const said = spec.components.schemas[schema].properties.postbackUrl.description;
      assert.match(said, /required with `id` when the shop has no default/, schema);
    }
  } finally {
    await app.close();
  }
});

Deno.test("[docs] the payment status tables of how-it-works.md and payment-status.md list every status a payment can have", async () => {
  for (const name of ["how-it-works.md", "payment-status.md"]) {
    const page = await readDoc(name);
    const table = page.slice(page.indexOf("| status"));
    const listed = [...table.matchAll(/^\| `([a-z_]+)` /gm)].map((m) => m[1]);
    assert.deepEqual(listed, [...PAYMENT_STATUSES], name);
  }
});

/** Waits until the invoice reaches `status` (notices are handled in the background). */
function invoiceStatus(app: TestApp, id: string, status: string) {
  return waitFor(`invoice ${id} to be ${status}`, async () => {
    const inv = await readInvoice(app, id);
    return inv.status === status ? inv : undefined;
  });
}

Deno.test("[docs] invoices: a skipped payment_accepted, steps back, a cancel's refund and an expired invoice's money are as invoices.md and postbacks.md say", async (t) => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  const shop = startShopReceiver();
  const invoices = (await readDoc("invoices.md")).replace(/\n */g, " ");
  const postbacks = (await readDoc("postbacks.md")).replace(/\n */g, " ");
  const chain = chainApi(app);
  const postbacksOf = (id: string) =>
    shop.received.map((r) => JSON.parse(r.body)).filter((b: { data: { id: string } }) => b.data.id === id) as {
      type: string;
      timestamp: string;
      data: { id: string; shopInvoiceId: string | null; status: string };
    }[];
  try {
    await t.step(
      "several blocks at once: payment_confirmation to finished, no payment_accepted; ship on either",
      async () => {
        // Without `id`: invoices get postbacks all the same, `data.id` ours and `shopInvoiceId` null.
        const inv = await createTestInvoice(app, { amount: "3", postbackUrl: shop.url });
        await chain.deposit(inv.address, "3000000");
        await invoiceStatus(app, inv.id, "payment_confirmation");
        await chain.mine(40, "tron");
        await invoiceStatus(app, inv.id, "finished");
        const sent = await waitFor("two postbacks", () => {
          const got = postbacksOf(inv.id);
          return got.length >= 2 ? got : undefined;
        });
        assert.deepEqual(sent.map((p) => p.type), ["invoice.payment_confirmation", "invoice.finished"]);
        assert.deepEqual(sent.map((p) => p.data.shopInvoiceId), [null, null]);
        assert.match(inv.id, /^inv_/);
        assert.match(invoices, /Ship the order on `payment_accepted` or `finished`, whichever comes first/);
        assert.match(
          invoices,
          /\| `invoice.finished` +\| final: ship the order if `invoice.payment_accepted` did not come/,
        );
        assert.ok(!/You may ship;/.test(invoices));
        assert.match(postbacks, /ship on `invoice.payment_accepted` or `invoice.finished`, whichever comes first/);
        assert.match(
          postbacks,
          /on `invoice.\*` postbacks `data.id` is our invoice id \(`inv_...`\) and your order is `data.shopInvoiceId`/,
        );
        assert.match(
          postbacks,
          /A crypto \[invoice\]\(invoices.md#postbacks\) gets a postback at each status change, with or without your `id`/,
        );
      },
    );

    await t.step(
      "statuses step back: partially_paid, payment_confirmation, partially_paid again; timestamps tell the order",
      async () => {
        const inv = await createTestInvoice(app, { amount: "3", postbackUrl: shop.url, id: crypto.randomUUID() });
        await chain.deposit(inv.address, "1000000");
        await chain.mine(20, "tron");
        await invoiceStatus(app, inv.id, "partially_paid");
        const topUp = await chain.deposit(inv.address, "2000000");
        await invoiceStatus(app, inv.id, "payment_confirmation");
        await dropFromChain(app, inv.id, topUp.txid);
        await invoiceStatus(app, inv.id, "partially_paid");
        const sent = await waitFor("three postbacks", () => {
          const got = postbacksOf(inv.id);
          return got.length >= 3 ? got : undefined;
        });
        sent.sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
        assert.deepEqual(sent.map((p) => p.data.status), ["partially_paid", "payment_confirmation", "partially_paid"]);
        assert.equal(sent[0].data.shopInvoiceId, inv.shopInvoiceId);
        // Every step back the status table allows is named, and the old promise of a one-way order is gone.
        for (const from of INVOICE_STATUSES) {
          for (const to of INVOICE_STATUS_RULES[from].next) {
            if (INVOICE_STATUSES.indexOf(to) < INVOICE_STATUSES.indexOf(from)) {
              assert.ok(invoices.includes(`- \`${from}\` → \`${to}\`:`), `${from} → ${to}`);
            }
          }
        }
        assert.ok(invoices.includes("`partially_paid` → `payment_confirmation` → `partially_paid`"));
        assert.ok(!/statuses' order above/.test(invoices) && !/comes only from dropped deposits/.test(invoices));
        assert.match(invoices, /ignore one with an earlier `timestamp`/);
        assert.match(invoices, /Or read the invoice \(`GET \/api\/v1\/invoices\/\{id\}`\)/);
        shiftClock(app, 0);
      },
    );

    await t.step("a cancel with money confirming: refund paidAmount plus lateAmount", async () => {
      const inv = await createTestInvoice(app, { amount: "3" });
      await chain.deposit(inv.address, "1000000");
      await chain.mine(20, "tron");
      await invoiceStatus(app, inv.id, "partially_paid");
      await chain.deposit(inv.address, "500000");
      await invoiceStatus(app, inv.id, "payment_confirmation");
      const cancelled = (await cancelInvoiceCall(app, inv.id)).body.invoice;
      assert.equal(cancelled.status, "cancelled");
      assert.deepEqual([cancelled.paidAmount, cancelled.lateAmount], ["1", "0.5"], "1.5 USDT came: both to refund");
      assert.match(invoices, /refund `paidAmount` plus `lateAmount`/);
      assert.ok(!/what it received stays on it \(`paidAmount`\) for you to refund/.test(invoices));
    });

    await t.step("an expired invoice can carry dust paid in time and late money", async () => {
      const inv = await createTestInvoice(app, { amount: "3", expiresIn: 60 });
      await chain.deposit(inv.address, "10000"); // 0.01 USDT: under a hundredth of 3
      await chain.mine(20, "tron");
      await invoiceStatus(app, inv.id, "partially_paid");
      await chain.deposit(inv.address, "15000"); // 0.025 USDT in all: still dust
      await invoiceStatus(app, inv.id, "payment_confirmation");
      shiftClock(app, 61_000);
      await app.server.runner.sweep();
      const expired = await invoiceStatus(app, inv.id, "expired");
      assert.deepEqual([expired.paidAmount, expired.lateAmount], ["0.01", "0.015"]);
      assert.match(invoices, /`expired`: no money that keeps it open arrived by `expiresAt`: nothing, or only dust/);
      assert.match(invoices, /`paidAmount` is dust confirmed by the expiry, and `lateAmount` is dust still confirming/);
      assert.ok(!/nothing arrived in time/.test(invoices));
      shiftClock(app, 0);
    });

    await t.step("index.md: invoices take the same steps, and wait an hour by default", async () => {
      const index = (await readDoc("index.md")).replace(/\n */g, " ");
      assert.match(
        index,
        /A \[crypto invoice\]\(invoices.md\) takes the same four steps: create it with `POST \/api\/v1\/invoices`/,
      );
      assert.equal(loadConfig({}).paymentTtlMs, 86_400_000);
      assert.match(index, /a payment waits a day for the buyer/);
      assert.equal(loadConfig({}).invoiceTtlMs, 3_600_000);
      assert.match(index, /An invoice waits an hour for its deposit by default/);
    });

    await t.step("forms.md: shops set their embedding sites themselves in the portal's Settings", async () => {
      const forms = (await readDoc("forms.md")).replace(/\n */g, " ");
      assert.match(forms, /yourself on your portal's \*\*Settings\*\* page/);
      assert.ok(!/tell us your site's origin/.test(forms));
      const portal = await Deno.readTextFile(new URL("../routes/portal/mod.tsx", import.meta.url));
      assert.match(portal, /app\.post\("\/settings\/embed"/, "the portal's Settings page saves embedding sites");
    });
  } finally {
    shiftClock(app, 0);
    await shop.close();
    await app.close();
  }
});

Deno.test("[docs] invoices.md on other coins: listed apart, never counted, bounded as it says; updatedAt orders with the postbacks' timestamps", async () => {
  const app = await startTestApp();
  const shop = startShopReceiver();
  try {
    const invoices = (await readDoc("invoices.md")).replace(/\n */g, " ");
    assert.ok(invoices.includes(`An invoice lists at most ${MAX_OTHER_COIN_DEPOSITS} such transfers, the first`));
    // The polls of a closed invoice wait for its other coins' transfers too (nextCheck), as the shop waits to return them.
    assert.ok(invoices.includes("while a deposit or another coin's transfer it lists is not yet final"));
    assert.match(invoices, /\*\*Return it yourself, by hand\*\*/);
    assert.ok(!/is not listed on the invoice; we log it for our operators/.test(invoices), "the old promise is gone");
    assert.match(invoices, /A postback's `data.updatedAt` is its `timestamp`/);

    const chain = chainApi(app);
    const inv = await createTestInvoice(app, { coin: "USDT", network: "ethereum", amount: "5", postbackUrl: shop.url });
    await chain.deposit(inv.address, "2000000000000000", undefined, "ETH");
    await chain.deposit(inv.address, "5000000", undefined, "USDT");
    const confirming = await waitFor("both seen", async () => {
      const read = await readInvoice(app, inv.id);
      return read.status === "payment_confirmation" && read.otherCoinDeposits.length === 1 ? read : undefined;
    });
    assert.equal(confirming.pendingAmount, "5", "the ETH is in no amount");
    assert.equal(confirming.otherCoinDeposits[0].amount, "0.002");
    const postback = await waitFor("the postback", () => shop.received.find((r) => r.body.includes(inv.id)));
    const body = JSON.parse(postback.body);
    assert.equal(body.data.updatedAt, body.timestamp);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[docs] idempotency.md's retry policy names every status init-payment can answer that errors.md says to retry", async () => {
  const app = await startTestApp();
  try {
    const spec: OpenApiDocument = await (await fetch(`${app.baseUrl}/openapi.json`)).json();
    const responses = spec.paths["/api/v1/init-payment"].post!.responses as Record<
      string,
      { content?: Record<string, { examples?: Record<string, unknown> }> }
    >;
    const answered = new Set(
      Object.values(responses).flatMap((r) => Object.keys(r.content?.["application/json"]?.examples ?? {})),
    );
    const errors = await readDoc("errors.md");
    const shopTable = errors.slice(errors.indexOf("## Codes of the shop's API"), errors.indexOf("## Rate limits"));
    const retried = shopTable.split("\n")
      .map((line) => line.match(/^\| (\d{3}) +\| `([a-z_]+)` +\|[^|]*\| yes/))
      .filter((m) => m !== null && answered.has(m[2]))
      .map((m) => [m![1], m![2]]);
    assert.ok(retried.length >= 5, `read the table: ${JSON.stringify(retried)}`);
    const idempotency = await readDoc("idempotency.md");
    const advice = idempotency.slice(idempotency.indexOf("## A simple retry policy"));
    for (const [status, code] of retried) {
      // A status retried whatever its code (`502`), or this code alone (`400 body_unreadable`).
      assert.ok(
        advice.includes(`\`${status}\``) || advice.includes(`\`${status} ${code}\``),
        `the retry policy names ${status} ${code}`,
      );
    }
  } finally {
    await app.close();
  }
});

Deno.test("[docs] errors.md: a body not read as a JSON object has no fields, and a field given twice is named alone", async () => {
  const app = await startTestApp();
  try {
    const send = async (raw: string) => {
      const res = await fetch(`${app.baseUrl}/api/v1/init-payment`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.shop.apiKey}`, "content-type": "application/json" },
        body: raw,
      });
      return { status: res.status, error: (await res.json()).error };
    };
    for (const raw of ['{"amount":', "[]"]) {
      const answer = await send(raw);
      assert.equal(answer.status, 400);
      assert.equal(answer.error.code, "invalid_request");
      assert.equal(answer.error.fields, undefined, raw);
    }
    const twice = await send('{"amount":1000,"amount":1000,"email":"not-an-email"}');
    assert.equal(twice.status, 400);
    assert.deepEqual(twice.error.fields, { amount: "duplicated" });
    assert.ok((await readDoc("errors.md")).includes('(`"amount": "duplicated"`)'));
  } finally {
    await app.close();
  }
});
