/**
 * Every stylesheet, script and image our pages link must be served: a page whose
 * CSS or island bundle 404s still renders, so nothing else notices. The Deploy
 * build once made static/islands.js but not static/uplot.css, and the Stats page
 * broke there only.
 */
import assert from "node:assert/strict";
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { createPortalLink } from "../lib/auth/portal.ts";
import { hashPassword } from "../lib/auth/passwords.ts";
import { updateOperatorPassword } from "../lib/db/operators.ts";
import { buyerSettles, callInit, paymentBody, startTestApp, type TestApp } from "../fixtures/app.ts";

const REPO_ROOT = new URL("..", import.meta.url);

/** The content type each kind of asset must be served with. */
const ASSET_TYPES: Record<string, RegExp> = {
  css: /^text\/css\b/,
  js: /^(text|application)\/javascript\b/,
  mjs: /^(text|application)\/javascript\b/,
  svg: /^image\/svg\+xml\b/,
  png: /^image\/png\b/,
  ico: /^image\/(x-icon|vnd\.microsoft\.icon)\b/,
  woff2: /^font\/woff2\b/,
};

/** Keeps cookies like a browser and remembers the CSRF token of the last page. */
function browser(app: TestApp) {
  const cookies = new Map<string, string>();
  let lastHtml = "";
  async function request(path: string, init: RequestInit = {}) {
    const headers = new Headers(init.headers);
    headers.set("cookie", [...cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const res = await fetch(new URL(path, app.baseUrl), { ...init, headers, redirect: "manual" });
    for (const c of res.headers.getSetCookie()) {
      const [k, v] = c.split(";")[0].split("=");
      if (/max-age=0/i.test(c)) cookies.delete(k);
      else cookies.set(k, v);
    }
    const text = await res.text();
    if (res.headers.get("content-type")?.includes("text/html")) lastHtml = text;
    return { status: res.status, text, headers: res.headers };
  }
  function post(path: string, fields: Record<string, string>) {
    const csrf = lastHtml.match(/name="_csrf" value="([^"]+)"/)?.[1] ?? "";
    return request(path, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        origin: app.baseUrl,
        "sec-fetch-site": "same-origin",
      },
      body: new URLSearchParams({ _csrf: csrf, ...fields }),
    });
  }
  return { request, post };
}

type Browser = ReturnType<typeof browser>;

function attr(tag: string, name: string): string | undefined {
  return tag.match(new RegExp(`\\s${name}\\s*=\\s*"([^"]*)"`, "i"))?.[1] ??
    tag.match(new RegExp(`\\s${name}\\s*=\\s*'([^']*)'`, "i"))?.[1];
}

/** `<link href>`, `<script src>` and `<img src>` that point at our origin. */
function linkedAssets(html: string, pageUrl: URL): URL[] {
  const out: URL[] = [];
  for (const [tag, name] of html.matchAll(/<(link|script|img)\b[^>]*>/gi)) {
    const value = attr(tag, name.toLowerCase() === "link" ? "href" : "src");
    if (!value || value.startsWith("data:")) continue;
    const url = new URL(value.replaceAll("&amp;", "&"), pageUrl);
    if (url.origin === pageUrl.origin) out.push(url);
  }
  return out;
}

/** Same-origin page links under `prefix`, to find the pages behind a section's navigation. */
function pageLinks(html: string, pageUrl: URL, prefix: string): string[] {
  const out: string[] = [];
  for (const [, href] of html.matchAll(/<a\b[^>]*\shref="([^"#]+)"/gi)) {
    const url = new URL(href.replaceAll("&amp;", "&"), pageUrl);
    if (url.origin !== pageUrl.origin || !url.pathname.startsWith(prefix)) continue;
    if (/logout|signout|\.csv$/.test(url.pathname)) continue;
    out.push(url.pathname + url.search);
  }
  return out;
}

/**
 * Renders `seeds` and the pages they link under `prefix` (breadth first, up to `limit`), and records every page
 * that answered HTML with the assets it links.
 */
async function crawl(
  b: Browser,
  app: TestApp,
  seeds: string[],
  prefix: string,
  found: Map<string, Set<string>>,
  limit = 40,
) {
  const seen = new Set<string>();
  const queue = [...seeds];
  while (queue.length && seen.size < limit) {
    const path = queue.shift()!;
    // One page of each kind is enough: ids and cursors differ, the layout does not.
    const shape = path.replace(/[?].*$/, "").replace(/[A-Za-z0-9_-]{20,}/g, ":id");
    if (seen.has(shape)) continue;
    seen.add(shape);
    const res = await b.request(path);
    if (!res.headers.get("content-type")?.includes("text/html")) continue;
    const pageUrl = new URL(path, app.baseUrl);
    for (const asset of linkedAssets(res.text, pageUrl)) {
      const key = asset.pathname + asset.search;
      if (!found.has(key)) found.set(key, new Set());
      found.get(key)!.add(path);
    }
    queue.push(...pageLinks(res.text, pageUrl, prefix));
  }
  return seen;
}

Deno.test("[assets] every stylesheet, script and image a page links is served with its content type", async (t) => {
  const app = await startTestApp({ env: { DEMO: "1" } });
  try {
    const found = new Map<string, Set<string>>();
    const pages = new Set<string>();
    const add = (s: Set<string>) => s.forEach((p) => pages.add(p));

    // A settled payment, so lists, details, timelines and charts have something to show.
    const paid = await callInit(app, paymentBody({ id: "assets-1", postbackUrl: "http://127.0.0.1:9/pb" }));
    assert.equal(paid.status, 201);
    const sandboxPage = (await fetch(paid.body.url, { redirect: "manual" })).headers.get("location")!;
    await buyerSettles(paid.body.url, "paid");
    const open = await callInit(app, paymentBody({ id: "assets-2", postbackUrl: "http://127.0.0.1:9/pb" }));
    assert.equal(open.status, 201);

    await t.step("public pages, the buyer's and the demo", async () => {
      const anon = browser(app);
      add(await crawl(anon, app, ["/docs"], "/docs", found));
      add(await crawl(anon, app, ["/demo"], "/demo", found));
      add(
        await crawl(
          anon,
          app,
          [
            "/admin/login",
            "/portal/signin",
            new URL(sandboxPage).pathname,
            "/integration/pay/no-such-payment",
            "/no-such-page",
          ],
          "/nowhere",
          found,
        ),
      );
      const payPage = await fetch(new URL(open.body.url).href, { redirect: "manual" });
      await payPage.body?.cancel();
      add(await crawl(anon, app, [new URL(payPage.headers.get("location")!).pathname], "/nowhere", found));
    });

    await t.step("console pages, signed in", async () => {
      const { operator } = await createOperatorAccount(app.server.ctx, "assets@example.com");
      await updateOperatorPassword(app.kv, operator.id, await hashPassword("correct horse battery", 1000));
      const ops = browser(app);
      await ops.request("/admin/login");
      const signedIn = await ops.post("/admin/login", {
        email: "assets@example.com",
        password: "correct horse battery",
      });
      assert.equal(signedIn.status, 303);
      const seen = await crawl(ops, app, ["/admin", "/admin/payments", "/admin/stats"], "/admin", found);
      assert.ok(seen.size >= 5, `the console crawl found only ${[...seen].join(", ")}`);
      add(seen);
      add(await crawl(ops, app, ["/internal"], "/internal", found, 10));
    });

    await t.step("shop portal pages, signed in", async () => {
      const link = await createPortalLink(app.server.ctx, app.shop.id, "assets@example.com");
      const shop = browser(app);
      await shop.request(link);
      const signedIn = await shop.post("/portal/signin", { token: new URL(link).searchParams.get("token")! });
      assert.equal(signedIn.status, 303);
      const seen = await crawl(shop, app, ["/portal", "/portal/payments"], "/portal", found);
      assert.ok(seen.size >= 3, `the portal crawl found only ${[...seen].join(", ")}`);
      add(seen);
    });

    await t.step("each linked asset answers 200 with its content type", async () => {
      // The pages that must link assets did: a page without its stylesheet would pass vacuously.
      for (const asset of ["/static/style.css", "/static/docs.css", "/static/uplot.css", "/static/islands.js"]) {
        assert.ok(found.has(asset), `no page linked ${asset}; pages: ${[...pages].join(", ")}`);
      }
      for (const [asset, linkedFrom] of found) {
        const res = await fetch(new URL(asset, app.baseUrl));
        const body = await res.arrayBuffer();
        const from = [...linkedFrom].slice(0, 3).join(", ");
        assert.equal(res.status, 200, `${asset} (linked from ${from}) answered ${res.status}`);
        assert.ok(body.byteLength > 0, `${asset} is empty`);
        const ext = asset.replace(/[?].*$/, "").split(".").pop()!;
        const want = ASSET_TYPES[ext];
        assert.ok(want, `${asset}: no known content type for .${ext}`);
        assert.match(res.headers.get("content-type") ?? "", want, `${asset} is served as the wrong type`);
      }
    });
  } finally {
    await app.close();
  }
});

Deno.test("[assets] every linked asset the repository does not hold is made by the build that Deploy runs", async () => {
  // Built assets are ignored by git; each must come out of `deno task build`, and Deploy must run that task.
  const ignored = (await Deno.readTextFile(new URL(".gitignore", REPO_ROOT))).split("\n")
    .map((l) => l.trim()).filter((l) => l.startsWith("static/"));
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", REPO_ROOT))).tasks as Record<string, string>;
  assert.ok(ignored.length > 0);
  for (const file of ignored) {
    assert.ok(tasks.build.includes(file), `${file} is ignored by git but the build task does not make it`);
  }
  assert.match(tasks.start, /deno task build/, "local start builds first");
  const deploy = await Deno.readTextFile(new URL("docs/internal/deploy.md", REPO_ROOT));
  const buildCommands = [...deploy.matchAll(/--build-command\s+"([^"]+)"/g)].map((m) => m[1]);
  assert.ok(buildCommands.length > 0, "the Deploy guide names a build command");
  for (const command of buildCommands) assert.equal(command, "deno task build", "Deploy runs the same build task");
});

Deno.test("[assets] /favicon.ico answers empty (204, cached a day), not 404 in every page's console", async () => {
  const app = await startTestApp();
  try {
    const res = await fetch(`${app.baseUrl}/favicon.ico`);
    await res.body?.cancel();
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("cache-control"), "public, max-age=86400");
  } finally {
    await app.close();
  }
});
