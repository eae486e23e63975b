/**
 * What a shop integrating from the public docs alone relies on: each promise
 * in the docs is checked against the running app (issue 15).
 */
import assert from "node:assert/strict";
import { callInit, paymentBody, startTestApp, waitFor } from "../fixtures/app.ts";
import type { OpenApiDocument } from "../lib/docs/openapi.ts";

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
