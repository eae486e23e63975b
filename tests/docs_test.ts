/**
 * Documentation: the public pages over HTTP, the internal handbook's routes,
 * the safe Markdown renderer, the generated OpenAPI document (valid, complete,
 * matching the handlers' answers) and the postback verification snippets,
 * run against signatures made by lib/relay/signing.ts.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { Validator } from "@seriousme/openapi-schema-validator";
import { callInit, paymentBody, startTestApp } from "../fixtures/app.ts";
import { INTERNAL_DOCS, PUBLIC_DOCS } from "../lib/docs/catalog.ts";
import { DocLibrary, DOCS_ROOT } from "../lib/docs/library.ts";
import { escapeHtml, renderMarkdown, safeHref } from "../lib/docs/markdown.ts";
import { buildOpenApi, HTTP_METHODS, type OpenApiDocument } from "../lib/docs/openapi.ts";
import { ProviderWebhookResponse } from "../lib/payments/api_schemas.ts";
import { parseSequence } from "../lib/docs/sequence.ts";
import {
  API_ERRORS,
  ErrorResponse,
  InitPaymentResponse,
  PaymentResponse,
  PaymentView,
  PostbackBody,
} from "../lib/payments/api_schemas.ts";
import { postbackBody } from "../lib/payments/view.ts";
import { PaymentNotCancellableError } from "../lib/payments/cancel.ts";
import { storedPayment } from "../fixtures/payments.ts";
import {
  AmountNotAcceptedError,
  AppError,
  ConflictError,
  IdempotencyMismatchError,
  NotFoundError,
  UnauthorizedError,
  UpstreamError,
  ValidationError,
} from "../lib/errors.ts";
import { newMessageId, newWebhookSecret, webhookHeaders } from "../lib/relay/signing.ts";
import { internalDocsRoutes } from "../routes/docs/internal.tsx";
import { docLibrary } from "../routes/docs/_shared.tsx";
import { NoRouteError } from "../lib/accounts/routing.ts";
import { verifyPostback as verifyWithNodeSnippet } from "../docs/snippets/verify_node.mjs";
import { verifyPostback as verifyWithStandardWebhooks } from "../docs/snippets/verify_standardwebhooks.ts";

const REPO = new URL("../", import.meta.url);
const SNIPPETS = new URL("snippets/", DOCS_ROOT);

/** The `<title>` of a page, unescaped enough to compare with a plain title. */
function titleOf(html: string): string {
  const raw = html.match(/<title>(.*?)<\/title>/s)?.[1] ?? "";
  return raw.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

/** What every docs page must be: no script, no inline style (the CSP forbids both), nothing dead. */
function assertCleanPage(html: string, where: string) {
  assert.ok(html.startsWith("<!doctype html>"), `${where}: a full page`);
  assert.ok(!/<script/i.test(html), `${where}: no script`);
  assert.ok(!/\sstyle=/i.test(html), `${where}: no inline style attribute`);
  assert.ok(!html.includes("dead-link"), `${where}: every link resolves`);
  assert.ok(html.includes('href="/static/docs.css"'), `${where}: the docs stylesheet`);
}

async function pageTitle(library: DocLibrary, slug: string): Promise<string> {
  if (slug === "api-reference") return "API reference";
  const page = await library.page(slug);
  assert.ok(page, `page ${slug} exists`);
  return page.title;
}

Deno.test("[docs] the public pages and /openapi.json over HTTP", async (t) => {
  const app = await startTestApp();
  try {
    const library = docLibrary(PUBLIC_DOCS);

    await t.step("every page answers 200 with its title, the navigation and no script", async () => {
      for (const entry of PUBLIC_DOCS.entries) {
        const path = library.href(entry.slug);
        const res = await fetch(app.baseUrl + path);
        const html = await res.text();
        assert.equal(res.status, 200, path);
        assert.match(res.headers.get("content-type") ?? "", /text\/html/);
        assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'none'/);
        const title = await pageTitle(library, entry.slug);
        assert.equal(titleOf(html), `${title} · AimbrellaPay Docs`, path);
        assert.ok(html.includes(`<h1`) && html.includes(escapeHtml(title)), `${path}: its heading`);
        for (const item of library.nav()) {
          assert.ok(html.includes(`href="${item.href}"`), `${path}: nav to ${item.href}`);
        }
        assert.ok(html.includes(`href="${path}" aria-current="page"`), `${path}: marked current in the nav`);
        assertCleanPage(html, path);
      }
    });

    await t.step("an unknown page answers the designed 404 with the navigation", async () => {
      for (const path of ["/docs/no-such-page", "/docs/postbacks/extra", "/docs/%3Cscript%3E"]) {
        const res = await fetch(app.baseUrl + path);
        const html = await res.text();
        assert.equal(res.status, 404, path);
        assert.equal(titleOf(html), "Page not found · AimbrellaPay Docs");
        assert.ok(html.includes('href="/docs/quick-start"'), "the navigation stays");
        assert.ok(!html.includes("<script"), "nothing from the address is echoed as markup");
      }
      const slash = await fetch(`${app.baseUrl}/docs/`, { redirect: "manual" });
      await slash.body?.cancel();
      assert.equal(slash.status, 301);
      assert.equal(slash.headers.get("location"), "/docs");
    });

    await t.step("the docs stylesheet is served from /static", async () => {
      const res = await fetch(`${app.baseUrl}/static/docs.css`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /text\/css/);
      assert.ok((await res.text()).includes(".docs-nav"));
    });

    await t.step("the internal handbook is not served without operator auth", async () => {
      for (const path of ["/internal", "/internal/deploy"]) {
        const res = await fetch(app.baseUrl + path, { redirect: "manual" });
        const html = await res.text();
        assert.notEqual(res.status, 200, `${path} must not be public`);
        assert.ok(!html.includes("Operator handbook"), `${path} must not show the handbook`);
      }
    });

    let spec: OpenApiDocument;
    await t.step("/openapi.json is valid OpenAPI 3.1 by a standard validator", async () => {
      const res = await fetch(`${app.baseUrl}/openapi.json`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /application\/json/);
      assert.equal(res.headers.get("access-control-allow-origin"), "*");
      spec = await res.json();
      assert.equal(spec.openapi, "3.1.0");
      const validator = new Validator();
      const result = await validator.validate(structuredClone(spec) as unknown as Record<string, unknown>);
      assert.deepEqual(result.errors, undefined);
      assert.equal(result.valid, true);
      assert.equal(validator.version, "3.1");
      // The validator is not a rubber stamp: a document without `info` fails.
      const broken: Record<string, unknown> = structuredClone(spec) as unknown as Record<string, unknown>;
      delete broken.info;
      assert.equal((await new Validator().validate(broken)).valid, false);
    });

    await t.step("the spec carries the handler's init-payment schema, security and every path", () => {
      const request = spec.paths["/api/v1/init-payment"].post!.requestBody!.content["application/json"].schema;
      assert.deepEqual(request, { $ref: "#/components/schemas/InitPaymentRequest" });
      const schema = spec.components.schemas.InitPaymentRequest as {
        properties: Record<string, Record<string, unknown>>;
        required: string[];
        additionalProperties: unknown;
        oneOf: { required: string[] }[];
      };
      for (const field of ["amount", "currency", "email"]) assert.ok(schema.properties[field], field);
      assert.equal(schema.additionalProperties, false);
      assert.deepEqual([...schema.required].sort(), ["amount", "currency", "email", "errorUrl"]);
      assert.equal(schema.properties.amount.type, "integer");
      assert.equal(schema.properties.amount.maximum, app.config.maxAmount, "the deployment's MAX_AMOUNT");
      assert.equal(schema.properties.currency.pattern, "^[A-Za-z]{3}$", "the input side of the currency transform");
      // `type` is optional for clients: no schema default, which generators would turn into a required field.
      assert.equal(schema.properties.type.default, undefined);
      assert.ok(!schema.required.includes("type"));
      for (const field of ["successUrl", "errorUrl", "postbackUrl"]) {
        assert.equal(schema.properties[field].format, "uri");
      }
      // The superRefine (one of the two spellings) is added by hand: both fields must still exist.
      assert.deepEqual(schema.oneOf.map((o) => o.required[0]).sort(), ["successUrl", "sussessUrl"]);
      for (const o of schema.oneOf) assert.ok(schema.properties[o.required[0]], o.required[0]);

      assert.deepEqual(spec.components.securitySchemes.bearerAuth.scheme, "bearer");
      assert.deepEqual(spec.paths["/api/v1/init-payment"].post!.security, [{ bearerAuth: [] }]);
      assert.deepEqual(spec.paths["/api/payment-verify"].post!.security, []);
      assert.equal(spec.paths["/api/payment-verify"].post!["x-audience"], "provider");
      assert.deepEqual(Object.keys(spec.paths).sort(), [
        "/api/admin/v1/accounts",
        "/api/admin/v1/operations",
        "/api/admin/v1/shops/{id}/routing",
        "/api/chain-notify",
        "/api/payment-verify",
        "/api/payment-verify/{accountId}",
        "/api/v1/checkout/config",
        "/api/v1/checkout/confirm",
        "/api/v1/checkout/sessions",
        "/api/v1/checkout/sessions/mount",
        "/api/v1/forms",
        "/api/v1/forms/{id}/disable",
        "/api/v1/init-payment",
        "/api/v1/invoices",
        "/api/v1/invoices/{id}",
        "/api/v1/invoices/{id}/cancel",
        "/api/v1/options",
        "/api/v1/payments",
        "/api/v1/payments/{id}",
        "/api/v1/payments/{id}/cancel",
        "/api/v1/payments/{id}/refunds",
        "/forms/{id}",
        "/forms/{id}/submit",
        "/integration/error",
        "/integration/pay",
        "/integration/success",
      ]);
      assert.ok(spec.paths["/api/v1/payments"].get!.parameters!.some((p) => p.name === "shopTxId" && p.required));
      assert.ok(spec.webhooks.postback.post, "postbacks to shops are documented as a webhook");
      assert.ok(spec.webhooks.refundPostback.post, "refund postbacks too");
      assert.deepEqual(spec.paths["/api/v1/payments/{id}/refunds"].post!.security, [{ bearerAuth: [] }]);
      // The admin API: its own tag and the operator token, never a shop's key.
      for (const [path, item] of Object.entries(spec.paths).filter(([p]) => p.startsWith("/api/admin/"))) {
        for (const op of Object.values(item)) {
          assert.deepEqual(op.tags, ["Admin"], path);
          assert.deepEqual(op.security, [{ operatorToken: [] }], path);
        }
      }
      assert.equal(spec.components.securitySchemes.operatorToken.bearerFormat, "apay_ot_...");
      assert.equal(spec.servers[0].url, app.baseUrl);
    });

    await t.step("the API reference page lists every path and webhook of the spec", async () => {
      const res = await fetch(`${app.baseUrl}/docs/api-reference`);
      const html = await res.text();
      assert.equal(res.status, 200);
      let operations = 0;
      for (const [name, item] of [...Object.entries(spec.paths), ...Object.entries(spec.webhooks)]) {
        for (const method of HTTP_METHODS) {
          const op = item[method];
          if (!op) continue;
          operations++;
          assert.ok(html.includes(`id="op-${op.operationId}"`), `${method} ${name} has a section`);
          const section = html.slice(html.indexOf(`id="op-${op.operationId}"`));
          assert.ok(section.includes(`<code>${escapeHtml(name)}</code>`), `${name} is shown`);
          assert.ok(section.includes(`>${method.toUpperCase()}</span>`), `${method} of ${name} is shown`);
        }
      }
      assert.equal(operations, 33);
      for (const name of Object.keys(spec.components.schemas)) assert.ok(html.includes(`id="schema-${name}"`), name);
      // The request fields are rendered from the schema, not written by hand.
      for (const field of ["amount", "currency", "email", "sussessUrl"]) {
        assert.ok(html.includes(`<code>${field}</code>`));
      }
      assert.ok(html.includes(`≤ ${app.config.maxAmount}`));
    });

    await t.step("the handlers' real answers match the response schemas", async () => {
      const created = await callInit(app, paymentBody({ id: "docs-order-1", postbackUrl: "http://127.0.0.1:9/pb" }));
      assert.equal(created.status, 201);
      InitPaymentResponse.strict().parse(created.body);

      const auth = { authorization: `Bearer ${app.shop.apiKey}` };
      for (const path of [`/api/v1/payments/${created.body.id}`, "/api/v1/payments?shopTxId=docs-order-1"]) {
        const res = await fetch(app.baseUrl + path, { headers: auth });
        const body = await res.json();
        assert.equal(res.status, 200, path);
        PaymentResponse.strict().parse(body);
        assert.deepEqual(
          Object.keys(body.payment).sort(),
          Object.keys(PaymentView.shape).sort(),
          "no field undocumented",
        );
      }

      const bad = await callInit(app, { ...paymentBody(), amount: -1, colour: "red" });
      assert.equal(bad.status, 400);
      ErrorResponse.parse(bad.body);
      const missing = await fetch(`${app.baseUrl}/api/v1/payments/pay_nope`, { headers: auth });
      assert.equal(missing.status, 404);
      ErrorResponse.parse(await missing.json());
    });
  } finally {
    await app.close();
  }
});

Deno.test("[docs] the provider webhook's 200 names every outcome it is answered with, news that changes nothing included", () => {
  const spec = buildOpenApi({ maxAmount: 1_000_000, publicBaseUrl: "https://pay.example" });
  for (const path of ["/api/payment-verify", "/api/payment-verify/{accountId}"]) {
    const description = spec.paths[path].post!.responses["200"].description;
    for (const outcome of ProviderWebhookResponse.shape.outcome.options) {
      assert.ok(description.includes(`\`${outcome}\``), `${path}: ${outcome} in "${description}"`);
    }
  }
});

Deno.test("[docs] the postback body matches its documented schema", () => {
  const now = Date.parse("2026-11-23T12:01:10.000Z");
  const payment = storedPayment(now - 70_000, {
    id: "pay_1",
    seq: "01K",
    shopId: "shop_1",
    shopTxId: "order-1",
    errorUrl: "https://shop.example/no",
    postbackUrl: "https://shop.example/pb",
    status: "succeeded",
    providerRef: "bsk_1",
    providerUrl: "https://bansky.example/pay/bsk_1",
    updatedAt: now,
    finalizedAt: now,
  });
  const body = JSON.parse(postbackBody(payment, "payment.succeeded", now));
  PostbackBody.strict().parse(body);
  assert.deepEqual(Object.keys(body.data).sort(), Object.keys(PostbackBody.shape.data.shape).sort());
});

Deno.test("[docs] the error catalogue covers every code the API answers, and the errors page lists them", async () => {
  const known = new Set(API_ERRORS.map((e) => `${e.status} ${e.code}`));
  const thrown: AppError[] = [
    new ValidationError("x"),
    new UnauthorizedError(),
    new NotFoundError(),
    new ConflictError(),
    new IdempotencyMismatchError("x"),
    new PaymentNotCancellableError("succeeded"),
    new NoRouteError("EUR", "crypto"),
    new AmountNotAcceptedError("MGA", 100, "x"),
    new UpstreamError(true, "x"),
    new UpstreamError(false, "x"),
  ];
  for (const e of thrown) assert.ok(known.has(`${e.status} ${e.code}`), `${e.name}: ${e.status} ${e.code}`);

  // Codes written inline where the shop API and the provider webhook throw or answer them.
  const files = [
    "routes/mod.tsx",
    "routes/api/v1.ts",
    "routes/webhooks/mod.ts",
    "routes/_body_limit.ts",
    "lib/auth/api_keys.ts",
    "lib/auth/rate_limit.ts",
    "lib/json_body.ts",
    "lib/validation.ts",
    "lib/payments/init.ts",
    "lib/payments/query.ts",
    "lib/payments/webhook.ts",
    "lib/refunds/create.ts",
    "lib/refunds/settle.ts",
    "lib/invoices/create.ts",
    "lib/invoices/cancel.ts",
    "lib/invoices/deposits.ts",
    "lib/providers/bansky.ts",
    "lib/providers/stripe.ts",
  ];
  let found = 0;
  for (const file of files) {
    const source = await Deno.readTextFile(new URL(file, REPO));
    for (const m of source.matchAll(/new AppError\(\s*(\d{3}),\s*"([a-z_]+)"/g)) {
      found++;
      assert.ok(known.has(`${m[1]} ${m[2]}`), `${file}: ${m[1]} ${m[2]}`);
    }
    for (const m of source.matchAll(/new ConflictError\([^;]*?,\s*"([a-z_]+)",?\s*\)/g)) {
      found++;
      assert.ok(known.has(`409 ${m[1]}`), `${file}: 409 ${m[1]}`);
    }
    for (const m of source.matchAll(/code: "([a-z_]+)"/g)) {
      found++;
      assert.ok(API_ERRORS.some((e) => e.code === m[1]), `${file}: ${m[1]}`);
    }
  }
  assert.ok(found >= 8, `the scan finds the inline codes (found ${found})`);

  const errorsPage = await Deno.readTextFile(new URL("public/errors.md", DOCS_ROOT));
  for (const e of API_ERRORS) assert.ok(errorsPage.includes(`\`${e.code}\``), `errors.md lists ${e.code}`);
});

Deno.test("[docs] the Markdown renderer neutralises raw HTML, scripts and unsafe links", () => {
  const md = [
    "# Title <script>alert(1)</script>",
    "",
    "<script>alert(2)</script>",
    "",
    '<div onclick="alert(3)">block</div>',
    "",
    "Inline <img src=x onerror=alert(4)> and <b>bold</b>.",
    "",
    "[a](javascript:alert(5)) [b](JAVASCRIPT:alert(6)) [c](data:text/html,x) [d](//evil.example/x)",
    "",
    '[e](https://example.com "t\\"itle") [f](other.md#part) ![g](https://evil.example/x.png "x")',
    "",
    "<javascript:alert(7)>",
    "",
    "```html",
    "</code></pre><script>alert(8)</script>",
    "```",
    "",
    "| a | b |",
    "|---|---|",
    "| <script>alert(9)</script> | `<i>` |",
  ].join("\n");
  const { html, title, headings } = renderMarkdown(md, { resolveLink: (href) => `/docs/${href.replace(".md", "")}` });
  assert.ok(!/<script/i.test(html), "no script element survives");
  assert.ok(!/<(div|img|b)[\s>]/i.test(html), "no raw HTML element survives");
  assert.ok(!/<[a-z][^>]*\son\w+\s*=/i.test(html), "no event handler attribute");
  assert.ok(!/href="(javascript|data):/i.test(html), "no unsafe link target");
  assert.ok(!html.includes('href="//'), "no protocol-relative link");
  assert.ok(!html.includes("evil.example/x.png"), "no remote image");
  assert.ok(html.includes("&lt;script&gt;alert(2)&lt;/script&gt;"), "raw HTML shows as text");
  assert.ok(html.includes("&lt;/code&gt;&lt;/pre&gt;&lt;script&gt;alert(8)"), "code blocks are escaped");
  assert.ok(html.includes('<a href="https://example.com" title="t&quot;itle" rel="noopener noreferrer">e</a>'));
  assert.ok(html.includes('<a href="/docs/other#part">f</a>'), "links between docs resolve");
  assert.equal(title, "Title <script>alert(1)</script>", "the title is text; the page escapes it");
  assert.equal(headings[0].id, "title-scriptalert1script");

  assert.equal(safeHref("java\tscript:alert(1)"), null, "browsers drop tabs inside schemes");
  assert.equal(safeHref(" javascript:alert(1)"), null);
  assert.equal(safeHref("mailto:ops@example.com"), "mailto:ops@example.com");
  assert.equal(safeHref("postbacks.md#verify"), "postbacks.md#verify");
});

Deno.test("[docs] fenced blocks go to their renderer only when one is registered", () => {
  const md = "```sequence\nparticipant A\nparticipant B\nA -> B: <hi>\n```";
  const plain = renderMarkdown(md).html;
  assert.ok(plain.includes('<code class="language-sequence">'), "without a renderer it is code");
  assert.ok(plain.includes("A -&gt; B: &lt;hi&gt;"));
  const drawn = renderMarkdown(md, {
    blocks: { sequence: (src) => `<figure>${parseSequence(src).messages.length}</figure>` },
  });
  assert.ok(drawn.html.includes("<figure>1</figure>"));
  assert.throws(() => parseSequence("participant A\nparticipant B\nA -> C: x"), /unknown participant "C"/);
  assert.throws(() => parseSequence("participant A\nparticipant B\nA to B"), /cannot read/);
});

Deno.test("[docs] how it works draws the flow as an inline SVG sequence diagram", async () => {
  const page = await docLibrary(PUBLIC_DOCS).page("how-it-works");
  assert.ok(page);
  assert.ok(page.html.includes("<svg"), "an inline SVG");
  assert.ok(!page.html.includes("language-sequence"), "not shown as code");
  assert.ok(!/\sstyle=/.test(page.html), "no style attribute (CSP)");
  for (const name of ["Shop", "AimbrellaPay", "Bansky", "Buyer"]) {
    assert.ok(page.html.includes(`>${name}</text>`), name);
  }
  for (const step of ["/api/v1/init-payment", "/integration/pay?id=", "/api/payment-verify", "postback"]) {
    assert.ok(page.html.includes(escapeHtml(step)), step);
  }
  assert.ok(page.html.includes('role="img"'), "announced as an image, with a title");
  assert.ok(page.html.includes("The diagram as text"), "and repeated as text");
});

Deno.test("[docs] Markdown files are read once and kept rendered", async () => {
  const library = docLibrary(PUBLIC_DOCS);
  const first = await library.page("postbacks");
  assert.ok(first);
  assert.equal(await library.page("postbacks"), first, "the same rendered page, not a second read");
  assert.equal(await library.page("no-such-page"), null);
});

Deno.test("[docs] the internal handbook renders from internalDocsRoutes()", async () => {
  const app = new Hono();
  app.route("/internal", internalDocsRoutes());
  const library = docLibrary(INTERNAL_DOCS);
  for (const entry of INTERNAL_DOCS.entries) {
    const path = library.href(entry.slug);
    const res = await app.request(path);
    const html = await res.text();
    assert.equal(res.status, 200, path);
    assert.equal(titleOf(html), `${await pageTitle(library, entry.slug)} · AimbrellaPay Internal`, path);
    assert.match(res.headers.get("cache-control") ?? "", /no-store/);
    assert.ok(html.includes('<meta name="robots" content="noindex, nofollow"'), `${path}: kept out of search engines`);
    for (const item of library.nav()) assert.ok(html.includes(`href="${item.href}"`), `${path}: nav to ${item.href}`);
    assertCleanPage(html, path);
  }
  const missing = await app.request("/internal/no-such-page");
  assert.equal(missing.status, 404);
  assert.equal(titleOf(await missing.text()), "Page not found · AimbrellaPay Internal");

  const elsewhere = new Hono();
  elsewhere.route("/ops/handbook", internalDocsRoutes({ basePath: "/ops/handbook" }));
  const moved = await (await elsewhere.request("/ops/handbook/deploy")).text();
  assert.ok(moved.includes('href="/ops/handbook/failing-postbacks"'), "links follow the mount point");
});

/**
 * The command forms a CLI script's usage text gives (its USAGE constant, read from the source: the scripts run when
 * imported): continuation lines joined, notes in parentheses and lines that only carry a note dropped.
 */
async function usageForms(script: string): Promise<string[]> {
  const source = await Deno.readTextFile(new URL(`cli/${script}.ts`, REPO));
  const literal = source.match(/const USAGE =\s*(`[^`]*`|"[^"]*")/)?.[1];
  assert.ok(literal, `${script}: its USAGE`);
  const text = literal.startsWith('"') ? JSON.parse(literal) : literal.slice(1, -1).replaceAll("\\\\", "\\");
  const forms: string[] = [];
  let pending = "";
  for (const raw of (text as string).split("\n").slice(1)) {
    const line = raw.trim();
    if (!/^(deno task|[A-Z_]+=)/.test(line) && !pending) continue; // the rest of a note
    const joined = pending + line;
    if (joined.endsWith("\\")) {
      pending = joined.slice(0, -1);
      continue;
    }
    pending = "";
    forms.push(joined.split(/\s{2,}\(/)[0].trim());
  }
  return forms;
}

Deno.test("[docs] the handbook's command table gives every shop, account and payment command as its usage does", async () => {
  const index = await Deno.readTextFile(new URL("internal/index.md", DOCS_ROOT));
  // The table's code spans, with the pipes a Markdown table escapes read as the usage writes them.
  const table = index.split("\n").filter((line) => line.startsWith("| `"));
  const spans = table.flatMap((row) => [...row.matchAll(/`([^`]+)`/g)].map((m) => m[1].replaceAll("\\|", "|")));
  // The operator commands' rows are kept with operator sign-in (cli/operator.ts); BigQuery's in docs/bigquery.
  for (const script of ["shop", "account", "payment"]) {
    const forms = await usageForms(script);
    assert.ok(forms.length >= 3, `${script}: its usage read`);
    for (const form of forms) assert.ok(spans.includes(form), `docs/internal/index.md lacks \`${form}\``);
  }
});

/** README.md and every Markdown page under docs/, by path. */
async function markdownPages(): Promise<Map<string, string>> {
  const pages = new Map([["README.md", await Deno.readTextFile(new URL("README.md", REPO))]]);
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, REPO))) {
      if (e.isDirectory) await walk(`${dir}${e.name}/`);
      else if (e.name.endsWith(".md")) {
        pages.set(`${dir}${e.name}`, await Deno.readTextFile(new URL(`${dir}${e.name}`, REPO)));
      }
    }
  };
  await walk("docs/");
  return pages;
}

Deno.test("[docs] every `deno task` the docs name is a task, with a subcommand and options its script's usage gives", async () => {
  const tasks = Object.keys(JSON.parse(await Deno.readTextFile(new URL("deno.json", REPO))).tasks);
  // The scripts whose usage lists their subcommands and options (cli/NAME.ts), as the usage prints them.
  const usages = new Map<string, string>();
  for (const name of tasks) {
    const source = await Deno.readTextFile(new URL(`cli/${name}.ts`, REPO)).catch(() => null);
    const usage = source?.match(/const USAGE =\s*`([^`]*)`/)?.[1];
    if (usage) usages.set(name, usage);
  }
  assert.deepEqual([...usages.keys()].sort(), ["account", "bq", "operator", "payment", "shop"]);
  const subcommands = (usage: string, name: string) =>
    [...usage.matchAll(new RegExp(`deno task ${name} ([a-z][a-z-]*)`, "g"))].map((m) => m[1]);
  let seen = 0;
  for (const [path, text] of await markdownPages()) {
    // A command runs to the end of its line, a code span or a table cell.
    for (const [, name, rest] of text.matchAll(/deno task ([a-z][a-z:-]*)([^\n`|]*)/g)) {
      seen++;
      assert.ok(tasks.includes(name), `${path}: \`deno task ${name}\` is not a task in deno.json`);
      const usage = usages.get(name);
      if (!usage) continue;
      const sub = rest.match(/^ ([a-z][a-z-]*)/)?.[1];
      if (sub) {
        assert.ok(subcommands(usage, name).includes(sub), `${path}: \`deno task ${name} ${sub}\` is not in its usage`);
      }
      for (const [option] of rest.matchAll(/--[a-z][a-z-]*/g)) {
        assert.match(
          usage,
          new RegExp(`${option}(?![a-z-])`),
          `${path}: \`deno task ${name}${rest}\`: ${option} is not in its usage`,
        );
      }
    }
  }
  assert.ok(seen >= 100, `the docs' commands read (${seen})`);
});

/** Every .ts and .tsx file under `dir` of the repository (not tests), by its path from the repository's root. */
async function modulesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL(dir, REPO))) {
    const path = `${dir}${e.name}`;
    if (e.isDirectory) out.push(...await modulesUnder(`${path}/`));
    else if (/\.tsx?$/.test(e.name) && !/_test\.tsx?$/.test(e.name)) out.push(path);
  }
  return out.sort();
}

/** The text of every .ts and .tsx file under `dir` of the repository (not tests). */
async function sourcesUnder(dir: string): Promise<string[]> {
  return await Promise.all((await modulesUnder(dir)).map((path) => Deno.readTextFile(new URL(path, REPO))));
}

Deno.test("[docs] the handbook's crypto invoices page is linked from its index and late payments; every setting and log line it names is real", async () => {
  const library = docLibrary(INTERNAL_DOCS);
  const page = await library.page("invoices");
  assert.ok(page, "docs/internal/invoices.md in the handbook");
  for (const slug of ["", "late-payments"]) {
    assert.ok((await library.page(slug))!.html.includes('href="/internal/invoices'), `${slug || "index"} links to it`);
  }
  // Every invoice and chain setting the configuration reads, named on the page and in .env.example.
  const config = await Deno.readTextFile(new URL("lib/config.ts", REPO));
  const settings = [...config.matchAll(/^ {2}((?:CHAIN|INVOICE)_[A-Z_]+):/gm)].map((m) => m[1]);
  assert.ok(settings.length >= 6, settings.join());
  const example = await Deno.readTextFile(new URL(".env.example", REPO));
  for (const name of settings) {
    assert.ok(page.html.includes(`<code>${name}</code>`), `the page names ${name}`);
    assert.match(example, new RegExp(`^${name}=`, "m"), `.env.example has ${name}`);
  }
  // The log lines its table names are the code's own words.
  const markdown = await Deno.readTextFile(new URL("internal/invoices.md", DOCS_ROOT));
  const table = markdown.slice(markdown.indexOf("| log line")).split("\n\n")[0].split("\n").slice(2);
  const lines = table.map((row) => row.match(/^\| `([^`]+)`/)?.[1]);
  assert.ok(lines.length >= 5 && lines.every(Boolean), "the log lines' table");
  const sources = (await Promise.all(["lib/", "routes/"].map(sourcesUnder))).flat().join("\n");
  for (const line of lines) assert.ok(sources.includes(`"${line}"`), `the code logs "${line}"`);
});

Deno.test("[docs] .env.example lists every variable the configuration reads, as the README and the handbook say", async () => {
  const config = await Deno.readTextFile(new URL("lib/config.ts", REPO));
  const names = [...config.matchAll(/^ {2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]);
  assert.ok(names.length >= 40 && names.includes("PORT"), names.join());
  const example = await Deno.readTextFile(new URL(".env.example", REPO));
  // Deno Deploy sets these two itself, and Docker or Kubernetes set HOSTNAME (the file's BIND_ADDRESS note names it):
  // nobody sets them by hand.
  const setForUs = ["DENO_DEPLOYMENT_ID", "DENO_TIMELINE", "HOSTNAME"];
  const missing = names.filter((name) => !setForUs.includes(name) && !new RegExp(`^${name}=`, "m").test(example));
  assert.deepEqual(missing, [], ".env.example lacks these");
});

/**
 * The first part of every KV key a module writes out: an array opening with a lowercase string (`["payments", id]`)
 * or with a constant naming one (`[COUNTS_PREFIX, name, ...]`). Not a key: an index into a type (`Waiting["resolve"]`)
 * and the lists a module names in capitals or loops over (`OPERATIONS = ["create", ...]`, `of ["count", ...]`).
 * A constant it cannot resolve is kept as `?NAME`, which no row has, so the test asks about it rather than skip it.
 */
function keyPrefixes(code: string): string[] {
  const constants = new Map(
    [...code.matchAll(/const ([A-Z][A-Z0-9_]*) = "([a-z][a-z0-9_]*)"/g)].map((m) => [m[1], m[2]]),
  );
  const opened = code.matchAll(/(?<![\w\])]|[A-Z][A-Z0-9_]* = |of )\[\s*(?:"([a-z][a-z0-9_]*)"|([A-Z][A-Z0-9_]*),)/g);
  return [...new Set([...opened].map((m) => m[1] ?? constants.get(m[2]) ?? `?${m[2]}`))];
}

Deno.test("[docs] architecture.md's key table names every key prefix the code writes", async () => {
  const table = await Deno.readTextFile(new URL("docs/architecture.md", REPO));
  // A module that builds keys is one that calls the store (kv.get, op.set, kv.atomic()...): lib/db's, and the rate
  // limiter with its shared counts; routes, commands and the sandbox are looked at too, should one start to.
  const callsKv = /\b(?:kv|op)\.(?:get|getMany|set|delete|list|check|sum|atomic)\(|\.atomic\(\)/;
  const found = new Map<string, string[]>();
  const modules = (await Promise.all(["lib/", "routes/", "cli/", "sandbox/"].map(modulesUnder))).flat();
  for (const module of modules) {
    const code = await Deno.readTextFile(new URL(module, REPO));
    if (callsKv.test(code)) found.set(module, keyPrefixes(code));
  }
  // The extraction still finds keys of each shape: built by a function, a constant, inline, from a named constant.
  for (const module of ["lib/db/payments.ts", "lib/db/refunds.ts", "lib/db/demo.ts", "lib/auth/rate_limit.ts"]) {
    assert.ok(found.get(module)?.length, `${module} builds keys: ${found.get(module)}`);
  }
  const all = [...found.values()].flat();
  for (const name of ["operators_any", "demo_postbacks", "rate_limit_counts", "webhook_events_unconfirmed", "stats"]) {
    assert.ok(all.includes(name), `${name} among ${all.join()}`);
  }
  for (const [module, prefixes] of found) {
    const missing = prefixes.filter((name) => !table.includes(`| \`["${name}"`));
    assert.deepEqual(missing, [], `${module}'s keys the table lacks`);
  }
});

// The verification snippets, run against what our relay really sends.

async function signedPostback(secrets: string[], opts: { timestamp?: number } = {}) {
  const body = JSON.stringify({ type: "payment.succeeded", timestamp: new Date().toISOString(), data: { id: "o-1" } });
  const timestamp = opts.timestamp ?? Math.floor(Date.now() / 1000);
  const headers = await webhookHeaders(secrets, newMessageId(), timestamp, body);
  return { body, headers };
}

Deno.test("[docs] the Node.js snippet verifies postbacks signed by the relay", async () => {
  const secret = newWebhookSecret();
  const { body, headers } = await signedPostback([secret]);
  assert.deepEqual(verifyWithNodeSnippet(secret, headers, body), JSON.parse(body));

  assert.throws(() => verifyWithNodeSnippet(newWebhookSecret(), headers, body), /no valid signature/);
  assert.throws(() => verifyWithNodeSnippet(secret, headers, body.replace("o-1", "o-2")), /no valid signature/);
  const old = await signedPostback([secret], { timestamp: Math.floor(Date.now() / 1000) - 301 });
  assert.throws(() => verifyWithNodeSnippet(secret, old.headers, old.body), /timestamp/);
  const { "webhook-id": _id, ...noId } = headers;
  assert.throws(() => verifyWithNodeSnippet(secret, noId, body), /missing/);

  // During a rotation the shop may hold either secret.
  const previous = newWebhookSecret();
  const rotated = await signedPostback([secret, previous]);
  assert.equal(rotated.headers["webhook-signature"].split(" ").length, 2);
  assert.ok(verifyWithNodeSnippet(previous, rotated.headers, rotated.body));
  assert.ok(verifyWithNodeSnippet(secret, rotated.headers, rotated.body));
});

Deno.test("[docs] the standardwebhooks snippet verifies postbacks signed by the relay", async () => {
  const secret = newWebhookSecret();
  const { body, headers } = await signedPostback([secret, newWebhookSecret()]);
  assert.deepEqual(verifyWithStandardWebhooks(secret, headers, body), JSON.parse(body));
  assert.throws(() => verifyWithStandardWebhooks(newWebhookSecret(), headers, body), /signature/i);
  const old = await signedPostback([secret], { timestamp: Math.floor(Date.now() / 1000) - 600 });
  assert.throws(() => verifyWithStandardWebhooks(secret, old.headers, old.body), /timestamp/i);
});

function hasCommand(cmd: string): boolean {
  try {
    return new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

async function runWith(cmd: string, args: string[], input: unknown): Promise<unknown> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { PYTHONDONTWRITEBYTECODE: "1" },
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(input)));
  await writer.close();
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `${cmd} failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const PYTHON_DRIVER = `
import json, sys
sys.path.insert(0, sys.argv[1])
from verify import verify_postback
results = []
for case in json.load(sys.stdin):
    try:
        results.append({"ok": True, "data": verify_postback(case["secret"], case["headers"], case["body"].encode())})
    except ValueError as e:
        results.append({"ok": False, "error": str(e)})
print(json.dumps(results))
`;
import { HAS_CHROMIUM, launchChromium } from "../fixtures/chromium.ts";

Deno.test({
  name: "[docs] the Python snippet verifies postbacks signed by the relay",
  ignore: !hasCommand("python3"),
  async fn() {
    const secret = newWebhookSecret();
    const good = await signedPostback([secret, newWebhookSecret()]);
    const old = await signedPostback([secret], { timestamp: Math.floor(Date.now() / 1000) - 301 });
    const cases = [
      { secret, headers: good.headers, body: good.body },
      { secret: newWebhookSecret(), headers: good.headers, body: good.body },
      { secret, headers: good.headers, body: good.body + " " },
      { secret, headers: old.headers, body: old.body },
      // A forged header with non-ASCII text is a clean rejection (ValueError), not a TypeError.
      { secret, headers: { ...good.headers, "webhook-signature": "v1,ünïcødé" }, body: good.body },
      { secret, headers: { ...good.headers, "webhook-timestamp": "١٧٩٥٤٣٥٢٧٠" }, body: good.body },
    ];
    const results = await runWith("python3", ["-c", PYTHON_DRIVER, SNIPPETS.pathname], cases) as unknown[];
    assert.deepEqual(results[0], { ok: true, data: JSON.parse(good.body) });
    assert.deepEqual(results[1], { ok: false, error: "no valid signature" });
    assert.deepEqual(results[2], { ok: false, error: "no valid signature" });
    assert.deepEqual(results[3], { ok: false, error: "webhook-timestamp too old or too new" });
    assert.deepEqual(results[4], { ok: false, error: "no valid signature" });
    assert.deepEqual(results[5], { ok: false, error: "webhook-timestamp too old or too new" });
  },
});

Deno.test({
  name: "[docs] the Node.js snippet runs on Node itself",
  ignore: !hasCommand("node"),
  async fn() {
    const secret = newWebhookSecret();
    const { body, headers } = await signedPostback([secret]);
    const script = `
      import { verifyPostback } from ${JSON.stringify(new URL("verify_node.mjs", SNIPPETS).href)};
      let input = "";
      for await (const chunk of process.stdin) input += chunk;
      const { secret, headers, body } = JSON.parse(input);
      console.log(JSON.stringify(verifyPostback(secret, headers, body)));`;
    const result = await runWith("node", ["--input-type=module", "-e", script], { secret, headers, body });
    assert.deepEqual(result, JSON.parse(body));
  },
});

Deno.test("[docs] the postbacks page shows exactly the snippet files the tests run", async () => {
  const page = await docLibrary(PUBLIC_DOCS).page("postbacks");
  assert.ok(page);
  for (
    const [file, lang] of [
      ["verify_standardwebhooks.ts", "ts"],
      ["verify_node.mjs", "js"],
      ["verify.py", "python"],
      ["verify.php", "php"],
      ["verify.go", "go"],
    ]
  ) {
    const code = (await Deno.readTextFile(new URL(file, SNIPPETS))).replace(/\n+$/, "");
    assert.ok(page.html.includes(`<code class="language-${lang}">${escapeHtml(code)}\n</code>`), file);
    // Every snippet implements the same algorithm: the whsec_ prefix, the signed content and the v1 entries.
    assert.ok(code.includes("whsec_") || file.endsWith(".ts"), `${file} strips the whsec_ prefix`);
  }
  for (const text of ["webhook-id", "webhook-timestamp", "webhook-signature", "5 minutes", "v1,"]) {
    assert.ok(page.html.includes(escapeHtml(text)), text);
  }
});

Deno.test({
  name: "[docs] every page loads in Chromium without a Content-Security-Policy violation",
  ignore: !HAS_CHROMIUM,
  sanitizeResources: false, // Chromium's pipes outlive the test's bookkeeping
  sanitizeOps: false,
  async fn() {
    const app = await startTestApp();
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on("console", (m) => {
        // Failed loads are judged by their address below (browsers ask for /favicon.ico on their own).
        if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(m.text());
      });
      page.on("response", (r) => {
        if (r.status() >= 400 && !r.url().endsWith("/favicon.ico")) problems.push(`${r.status()} ${r.url()}`);
      });
      page.on("pageerror", (e) => problems.push(String(e)));
      const library = docLibrary(PUBLIC_DOCS);
      for (const entry of PUBLIC_DOCS.entries) {
        const res = await page.goto(app.baseUrl + library.href(entry.slug));
        assert.equal(res?.status(), 200);
        // The stylesheet applied: the navigation is laid out by docs.css, not the browser's defaults.
        assert.equal(
          await page.locator(".docs-nav > ul").first().evaluate((el) => getComputedStyle(el).listStyleType),
          "none",
        );
      }
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await app.close();
    }
  },
});
