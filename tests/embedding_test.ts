import assert from "node:assert/strict";
import { Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";
import { startTestApp } from "../fixtures/app.ts";
import { operatorBrowser } from "../fixtures/browser.ts";
import { getShop } from "../lib/db/shops.ts";
import { ValidationError } from "../lib/errors.ts";
import { parseEmbedOrigins } from "../lib/shops.ts";
import { allowFraming, framingPolicy } from "../routes/_headers.ts";

Deno.test("[embedding] embed origins are origins only, https unless local URLs are allowed, kept in URL form", () => {
  assert.deepEqual(
    parseEmbedOrigins(["https://Shop.Example", "https://shop.example/", " https://a.example:8443 "], false),
    [
      "https://shop.example",
      "https://a.example:8443",
    ],
  );
  assert.deepEqual(parseEmbedOrigins(["https://bücher.example"], false), ["https://xn--bcher-kva.example"]);
  assert.deepEqual(parseEmbedOrigins(["http://127.0.0.1:5173"], true), ["http://127.0.0.1:5173"]);
  assert.deepEqual(parseEmbedOrigins(["http://[::1]:5173", "http://localhost:8000"], true), [
    "http://[::1]:5173",
    "http://localhost:8000",
  ]);
  for (
    const bad of [
      "http://shop.example",
      "https://shop.example/checkout",
      "https://shop.example?x=1",
      "https://user@shop.example",
      "shop.example",
      "javascript:alert(1)",
      "data:text/html,hi",
      "https://shop.example; script-src *",
      // Hosts the URL parser takes but no site has: a wildcard would let every site frame the buyer pages, and ";"
      // or "," would start another CSP directive or policy in the header the origin goes into.
      "https://*",
      "https://*.shop.example",
      "https://shop.example;sandbox",
      "https://shop.example,https://evil.example",
      "https://shop.example'",
    ]
  ) {
    assert.throws(() => parseEmbedOrigins([bad], false), (err) => {
      assert.ok(err instanceof ValidationError, bad);
      assert.ok(err.fields?.embedOrigins, bad);
      return true;
    });
  }
  assert.throws(() => parseEmbedOrigins(Array.from({ length: 21 }, (_, i) => `https://s${i}.example`), false));
});

Deno.test("[embedding] only a page that allows framing names its shop's sites; every other page refuses frames", async () => {
  const app = new Hono();
  app.use(framingPolicy);
  app.use(secureHeaders({ contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } }));
  app.get("/embedded", (c) => {
    allowFraming(c, ["https://shop.example", "https://other.example"]);
    return c.text("framable");
  });
  app.get("/nobody", (c) => {
    allowFraming(c, []);
    return c.text("no sites listed");
  });
  app.get("/plain", (c) => c.text("plain"));

  const embedded = await app.request("/embedded");
  assert.equal(
    embedded.headers.get("content-security-policy"),
    "default-src 'none'; frame-ancestors https://shop.example https://other.example",
  );
  assert.equal(embedded.headers.get("x-frame-options"), null);
  for (const path of ["/nobody", "/plain"]) {
    const res = await app.request(path);
    assert.equal(res.headers.get("content-security-policy"), "default-src 'none'; frame-ancestors 'none'", path);
    assert.equal(res.headers.get("x-frame-options"), "SAMEORIGIN", path);
  }
});

Deno.test("[embedding] an operator sets a shop's embedding sites in the console; a bad entry changes nothing", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    await b.get(`/admin/shops/${app.shop.id}`);
    const bad = await b.post(`/admin/shops/${app.shop.id}/embed`, {
      embedOrigins: "https://shop.example https://shop.example/pay",
    });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /must be an origin only/);
    assert.equal((await getShop(app.kv, app.shop.id))!.embedOrigins, undefined);

    const saved = await b.post(`/admin/shops/${app.shop.id}/embed`, {
      embedOrigins: "https://shop.example, http://127.0.0.1:4000",
    });
    assert.equal(saved.status, 303);
    assert.deepEqual((await getShop(app.kv, app.shop.id))!.embedOrigins, [
      "https://shop.example",
      "http://127.0.0.1:4000",
    ]);
    const page = await b.get(`/admin/shops/${app.shop.id}`);
    assert.match(page.text, /https:\/\/shop\.example\nhttp:\/\/127\.0\.0\.1:4000<\/textarea>/);
    assert.match(page.headers.get("content-security-policy")!, /frame-ancestors 'none'/, "the console is never framed");
  } finally {
    await app.close();
  }
});

Deno.test("[embedding] an operator taking sites away or clearing the list is asked first, naming them; only the confirmed form saves", async () => {
  const app = await startTestApp();
  try {
    const b = await operatorBrowser(app);
    const path = `/admin/shops/${app.shop.id}/embed`;
    const sites = async () => (await getShop(app.kv, app.shop.id))!.embedOrigins ?? [];
    await b.get(`/admin/shops/${app.shop.id}`);
    // Adding asks nothing.
    assert.equal((await b.post(path, { embedOrigins: "https://a.example https://b.example" })).status, 303);
    assert.deepEqual(await sites(), ["https://a.example", "https://b.example"]);
    // The shop page's form carries what the page's script needs to ask: the list as saved, and the question.
    const page = await b.get(`/admin/shops/${app.shop.id}`);
    const form = page.text.slice(page.text.indexOf(`action="${path}"`));
    assert.match(form, /data-saved="https:\/\/a\.example https:\/\/b\.example"/);
    assert.match(form, /data-confirm-removal="Stop \{removed\} from showing this shop's checkout and forms\?/);

    // Taking one away: a page of its own asks, naming it; nothing is saved yet.
    const ask = await b.post(path, { embedOrigins: "https://a.example" });
    assert.equal(ask.status, 200);
    assert.match(ask.text, /<h1>Please confirm<\/h1>/);
    assert.match(ask.text, /Stop https:\/\/b\.example from showing this shop's checkout and forms\?/);
    assert.match(ask.text, /name="removing" value="https:\/\/b\.example"/);
    assert.match(ask.text, /name="confirm" value="yes"/);
    assert.deepEqual(await sites(), ["https://a.example", "https://b.example"]);
    // A confirmation holds for the sites it named: another removal (the list changed meanwhile) is asked again.
    const stale = await b.post(path, {
      embedOrigins: "https://a.example",
      confirm: "yes",
      removing: "https://c.example",
    });
    assert.equal(stale.status, 200);
    assert.match(stale.text, /Stop https:\/\/b\.example from showing/);
    assert.deepEqual(await sites(), ["https://a.example", "https://b.example"]);
    const confirmed = await b.post(path, {
      embedOrigins: "https://a.example",
      confirm: "yes",
      removing: "https://b.example",
    });
    assert.equal(confirmed.status, 303);
    assert.deepEqual(await sites(), ["https://a.example"]);

    // Clearing the list takes every site away: asked too.
    await b.get(`/admin/shops/${app.shop.id}`);
    const clear = await b.post(path, { embedOrigins: "" });
    assert.equal(clear.status, 200);
    assert.match(clear.text, /Stop https:\/\/a\.example from showing/);
    assert.deepEqual(await sites(), ["https://a.example"]);
    const cleared = await b.post(path, { embedOrigins: "", confirm: "yes", removing: "https://a.example" });
    assert.equal(cleared.status, 303);
    assert.deepEqual(await sites(), []);
    assert.match((await b.get(cleared.location!)).text, /No site may frame this shop's pages now\./);
  } finally {
    await app.close();
  }
});
