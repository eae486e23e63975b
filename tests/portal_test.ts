import assert from "node:assert/strict";
import { jwtVerify } from "jose";
import { createPortalLink } from "../lib/auth/portal.ts";
import { readStats } from "../lib/db/stats.ts";
import { getPayments, iteratePaymentIds } from "../lib/db/payments.ts";
import { createShop, setShopStatus } from "../lib/shops.ts";
import { getShop } from "../lib/db/shops.ts";
import { searchAudit } from "../lib/db/audit.ts";
import {
  buyerSettles,
  callInit,
  paymentBody,
  SANDBOX_TOKEN,
  startTestApp,
  type TestApp,
  waitFor,
} from "../fixtures/app.ts";
import { operatorBrowser, portalBrowser } from "../fixtures/browser.ts";

/** Cookie-keeping fetch with the CSRF token of the last page, as a browser would send it. */
function browser(app: TestApp) {
  const cookies = new Map<string, string>();
  let last = "";
  const request = async (path: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    headers.set("cookie", [...cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const res = await fetch(path.startsWith("http") ? path : app.baseUrl + path, {
      ...init,
      headers,
      redirect: "manual",
    });
    for (const c of res.headers.getSetCookie()) {
      const [k, v] = c.split(";")[0].split("=");
      cookies.set(k, v);
    }
    const text = await res.text();
    last = text;
    return { status: res.status, text, location: res.headers.get("location"), headers: res.headers };
  };
  const post = (path: string, fields: Record<string, string>) =>
    request(path, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        origin: app.baseUrl,
        "sec-fetch-site": "same-origin",
      },
      body: new URLSearchParams({ _csrf: last.match(/name="_csrf" value="([^"]+)"/)?.[1] ?? "", ...fields }),
    });
  return { request, post, cookies };
}

async function signInPortal(app: TestApp, shopId: string) {
  const link = await createPortalLink(app.server.ctx, shopId, "ops@example.com");
  const b = browser(app);
  const page = await b.request(link);
  assert.equal(page.status, 200);
  assert.match(page.text, /Continue/);
  const token = new URL(link).searchParams.get("token")!;
  const res = await b.post("/portal/signin", { token });
  assert.equal(res.status, 303);
  return { b, link, token };
}

Deno.test("[portal] a single-use link signs shop staff in; they see only their own payments", async () => {
  const app = await startTestApp();
  try {
    const mine = await callInit(app, paymentBody({ id: "mine-1", postbackUrl: "http://127.0.0.1:9/pb" }));
    const other = await createShop(app.kv, { name: "Other" }, { allowLocalUrls: true, now: Date.now() });
    const theirs = await callInit(app, paymentBody({ id: "theirs-1", postbackUrl: "http://127.0.0.1:9/pb" }), {
      key: other.apiKey,
    });
    assert.equal(theirs.status, 201);

    const { b, token } = await signInPortal(app, app.shop.id);
    const list = await b.request("/portal/payments");
    assert.equal(list.status, 200);
    assert.match(list.text, new RegExp(mine.body.id));
    assert.ok(!list.text.includes(theirs.body.id));
    // Asking for another shop in the query changes nothing.
    const sneaky = await b.request(`/portal/payments?shopId=${other.shop.id}`);
    assert.ok(!sneaky.text.includes(theirs.body.id));
    assert.equal((await b.request(`/portal/payments/${theirs.body.id}`)).status, 404);
    assert.equal((await b.request(`/portal/payments/${mine.body.id}`)).status, 200);
    const csv = await b.request("/portal/payments.csv");
    assert.ok(csv.text.includes(mine.body.id) && !csv.text.includes(theirs.body.id));
    assert.equal((await b.request("/portal")).status, 200);

    // The link works once.
    const again = browser(app);
    await again.request(`/portal/signin?token=${encodeURIComponent(token)}`);
    assert.equal((await again.post("/portal/signin", { token })).status, 401);
    // Tampered and missing sessions are refused; an operator-only page stays closed.
    assert.equal((await browser(app).request("/portal/payments")).status, 401);
    assert.equal((await b.request("/admin")).status, 303);

    await b.request("/portal");
    const sessionCookie = b.cookies.get("__Host-apay_portal")!;
    assert.equal((await b.post("/portal/logout", {})).status, 200);
    b.cookies.set("__Host-apay_portal", sessionCookie); // a copy kept by an attacker
    assert.equal((await b.request("/portal/payments")).status, 401, "signing out ends the session on the server");
  } finally {
    await app.close();
  }
});

Deno.test("[portal] shop staff resend a failed postback from their postbacks list; another shop's is not found", async () => {
  const { startShopReceiver, buyerSettles } = await import("../fixtures/app.ts");
  let fixed = false;
  const receiver = startShopReceiver(() => new Response("", { status: fixed ? 200 : 500 }));
  const app = await startTestApp({ env: { POSTBACK_SCHEDULE: "0" } });
  try {
    const init = await callInit(app, paymentBody({ id: "portal-resend", postbackUrl: receiver.url }));
    await buyerSettles(init.body.url, "paid");
    const { describePayment } = await import("../lib/payments/admin.ts");
    const failed = await waitFor("the postback to fail", async () => {
      const [d] = (await describePayment(app.server.ctx, init.body.id)).deliveries;
      return d?.status === "failed" ? d : undefined;
    });

    const { b } = await signInPortal(app, app.shop.id);
    const list = await b.request("/portal/deliveries");
    assert.match(list.text, new RegExp(`name="deliveryId" value="${failed.id}"`), "a Resend button on its row");
    fixed = true;
    const resent = await b.post("/portal/deliveries/resend", { paymentId: init.body.id, deliveryId: failed.id });
    assert.equal(resent.status, 303);
    assert.match((await b.request(resent.location!)).text, /Postback resent and delivered\./);
    assert.equal(receiver.received.length, 2);

    // Another shop's staff: its payment, or an invoice that is not its own, is not found, and nothing is sent.
    const other = await createShop(app.kv, { name: "Other" }, { allowLocalUrls: true, now: Date.now() });
    const { b: stranger } = await signInPortal(app, other.shop.id);
    await stranger.request("/portal/deliveries");
    const theirs = { paymentId: init.body.id, deliveryId: failed.id };
    assert.equal((await stranger.post("/portal/deliveries/resend", theirs)).status, 404);
    await stranger.request("/portal/deliveries");
    const invoice = { paymentId: `inv_${"A".repeat(22)}`, deliveryId: failed.id };
    assert.equal((await stranger.post("/portal/deliveries/resend", invoice)).status, 404);
    assert.equal(receiver.received.length, 2);
  } finally {
    await app.close();
    await receiver.close();
  }
});

Deno.test("[portal] shop staff set their own embedding sites; a removal asks first; bad input changes nothing", async () => {
  const app = await startTestApp();
  try {
    const { b } = await signInPortal(app, app.shop.id);
    const page = await b.request("/portal/settings");
    assert.equal(page.status, 200);
    assert.match(page.text, /Embedding/);
    assert.match(page.text, /Allowed hosts/);
    const sites = async (shopId = app.shop.id) => (await getShop(app.kv, shopId))!.embedOrigins ?? [];

    const saved = await b.post("/portal/settings/embed", {
      embedOrigins: "https://shop.example, https://www.shop.example:8443",
    });
    assert.equal(saved.status, 303);
    assert.deepEqual(await sites(), ["https://shop.example", "https://www.shop.example:8443"]);
    const after = (await b.request(saved.location!)).text;
    assert.match(after, /Embedding sites saved\./);
    // A list reads one site per line, in a box that fits it; one per line is taken too.
    assert.match(
      after,
      /<textarea[^>]*name="embedOrigins"[^>]*>https:\/\/shop\.example\nhttps:\/\/www\.shop\.example:8443<\/textarea>/,
    );
    assert.equal(
      (await b.post("/portal/settings/embed", {
        embedOrigins: "https://shop.example\r\nhttps://www.shop.example:8443\r\n",
      }))
        .status,
      303,
    );
    await b.request("/portal/settings");

    // Not an origin: the page again, with the reason and what was typed; nothing changed.
    const bad = await b.post("/portal/settings/embed", { embedOrigins: "https://shop.example/checkout" });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /not an origin|only an origin|origin/i);
    assert.match(bad.text, /https:\/\/shop\.example\/checkout/);
    assert.match(
      bad.text,
      /<textarea[^>]*autofocus[^>]*aria-invalid="true"/,
      "the keyboard is put on the field at fault",
    );
    assert.deepEqual(await sites(), ["https://shop.example", "https://www.shop.example:8443"]);

    // Taking a site away asks first, naming it; only the confirmed form saves.
    await b.request("/portal/settings");
    const ask = await b.post("/portal/settings/embed", { embedOrigins: "https://shop.example" });
    assert.equal(ask.status, 200);
    assert.match(ask.text, /Stop https:\/\/www\.shop\.example:8443 from showing your checkout/);
    assert.match(ask.text, /name="confirm" value="yes"/);
    assert.deepEqual(await sites(), ["https://shop.example", "https://www.shop.example:8443"]);
    // A confirmation names what it removes: one for another removal (the list changed meanwhile) asks again.
    const stale = await b.post("/portal/settings/embed", {
      embedOrigins: "https://shop.example",
      confirm: "yes",
      removing: "https://old.example",
    });
    assert.equal(stale.status, 200);
    assert.match(stale.text, /name="confirm" value="yes"/);
    assert.deepEqual(await sites(), ["https://shop.example", "https://www.shop.example:8443"]);
    const confirmed = await b.post("/portal/settings/embed", {
      embedOrigins: "https://shop.example",
      confirm: "yes",
      removing: "https://www.shop.example:8443",
    });
    assert.equal(confirmed.status, 303);
    assert.deepEqual(await sites(), ["https://shop.example"]);

    // Another shop's staff change only their own shop; a link's ?done= shows only the page's own messages.
    const other = await createShop(app.kv, { name: "Other" }, { allowLocalUrls: true, now: Date.now() });
    const { b: stranger } = await signInPortal(app, other.shop.id);
    await stranger.request("/portal/settings");
    assert.equal(
      (await stranger.post("/portal/settings/embed", { embedOrigins: "https://other.example" })).status,
      303,
    );
    assert.deepEqual(await sites(other.shop.id), ["https://other.example"]);
    assert.deepEqual(await sites(), ["https://shop.example"]);
    assert.doesNotMatch((await b.request("/portal/settings?done=Your+account+is+locked")).text, /locked/);
    for (const inherited of ["constructor", "toString", "__proto__"]) {
      assert.doesNotMatch((await b.request(`/portal/settings?done=${inherited}`)).text, /class="flash/, inherited);
    }

    // Recorded as the shop's own change, in the session that made it: its sign-in names the link that opened it,
    // and the link's entry the operator who made it.
    const entries = await searchAudit(app.kv, { limit: 50 });
    const change = entries.find((e) => e.action === "shop.embed_origins" && e.target === app.shop.id);
    const [, shopId, sessionId] = change!.actor.split(":");
    assert.equal(shopId, app.shop.id);
    assert.match(sessionId, /^pses_/);
    const signin = entries.find((e) => e.action === "portal.signin" && e.actor === change!.actor);
    const link = (signin?.after as { link: string }).link;
    assert.match(link, /^lnk_/);
    const made = entries.find((e) => e.action === "portal.link" && (e.after as { link?: string })?.link === link);
    assert.ok(made, "the link's own entry");
    assert.doesNotMatch(made.actor, /^portal:/, "made by an operator");
  } finally {
    await app.close();
  }
});

Deno.test("[portal] a payment's page names no operator: a re-check and a refund from the console read as AimbrellaPay's, where the console names who", async () => {
  const app = await startTestApp();
  try {
    const init = await callInit(app, paymentBody());
    assert.equal(init.status, 201);
    const id = init.body.id;
    await buyerSettles(init.body.url, "paid");
    await waitFor("paid", async () => (await getPayments(app.kv, [id]))[0]?.status === "succeeded" || undefined);
    const ops = await operatorBrowser(app, "night.shift@example.com");
    await ops.get(`/admin/payments/${id}`);
    assert.equal((await ops.post(`/admin/payments/${id}/recheck`, {})).status, 303);
    await ops.get(`/admin/payments/${id}`);
    assert.equal(
      (await ops.post(`/admin/payments/${id}/refund/confirm`, { amount: "100", token: "rfk_portal" })).status,
      303,
    );

    const staff = await portalBrowser(app);
    const page = await staff.get(`/portal/payments/${id}`);
    assert.equal(page.status, 200);
    assert.match(page.text, /status checked<\/strong> <span class="muted">confirmed: succeeded, by: AimbrellaPay</);
    assert.match(
      page.text,
      /refund requested<\/strong> <span class="muted">refundId: re_[^,]+, amount: 100, by: AimbrellaPay,/,
    );
    assert.match(page.text, /<td data-label="By">AimbrellaPay<\/td>/);
    assert.doesNotMatch(page.text, /night\.shift/);

    // The console names the operator, in the same places.
    const consolePage = await ops.get(`/admin/payments/${id}`);
    assert.match(
      consolePage.text,
      /status checked<\/strong> <span class="muted">confirmed: succeeded, by: night\.shift@example\.com</,
    );
    assert.match(consolePage.text, /<td data-label="By">night\.shift@example\.com<\/td>/);
  } finally {
    await app.close();
  }
});

Deno.test("[portal] disabling a shop ends its staff's sessions: they can neither read nor change anything", async () => {
  const app = await startTestApp();
  try {
    const { b } = await signInPortal(app, app.shop.id);
    await b.request("/portal/settings");
    await setShopStatus(app.kv, app.shop.id, "disabled", { actor: "ops@example.com", now: Date.now() });
    // The form's token is still good; the session is what is refused.
    assert.equal((await b.post("/portal/settings/embed", { embedOrigins: "https://shop.example" })).status, 401);
    assert.equal((await b.request("/portal/payments")).status, 401);
    assert.deepEqual((await getShop(app.kv, app.shop.id))!.embedOrigins ?? [], []);
  } finally {
    await app.close();
  }
});

Deno.test("[metabase] embeds are signed for ten minutes, and a shop's carries its own shop_id locked", async () => {
  const secret = "metabase-embedding-secret-0123456789";
  const app = await startTestApp({
    env: {
      METABASE_SITE_URL: "https://metabase.example",
      METABASE_SECRET_KEY: secret,
      METABASE_OPERATOR_DASHBOARD_ID: "3",
      METABASE_SHOP_DASHBOARD_ID: "7",
    },
  });
  try {
    const { b } = await signInPortal(app, app.shop.id);
    const page = await b.request("/portal");
    const src = page.text.match(/<iframe[^>]+src="([^"]+)"/)![1].replace(/&amp;/g, "&");
    assert.match(src, /^https:\/\/metabase\.example\/embed\/dashboard\//);
    const token = src.split("/embed/dashboard/")[1].split("#")[0];
    const { payload } = await jwtVerify(token, new TextEncoder().encode(secret));
    assert.deepEqual(payload.resource, { dashboard: 7 });
    assert.deepEqual(payload.params, { shop_id: app.shop.id });
    assert.ok(payload.exp! - payload.iat! <= 600);
    await assert.rejects(jwtVerify(token, new TextEncoder().encode("another-secret-0123456789012345")));
    assert.match(page.headers.get("content-security-policy")!, /frame-src https:\/\/metabase\.example/);
  } finally {
    await app.close();
  }
});

Deno.test("[stats] counters match a recount over the payments after a randomized run", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  try {
    const currencies = ["EUR", "USD", "JPY"];
    const outcomes: ("paid" | "declined" | null)[] = [];
    // Ten at a time, so payments also share commits (group commit sums several into one counter at once).
    const created: string[] = [];
    for (let wave = 0; wave < 4; wave++) {
      const inits = await Promise.all(Array.from({ length: 10 }, (_, j) =>
        callInit(
          app,
          paymentBody({ amount: 1 + Math.floor(Math.random() * 50_000), currency: currencies[(wave * 10 + j) % 3] }),
        )));
      created.push(...inits.map((init) => init.body.id as string));
    }
    for (const id of created) {
      const outcome = ([null, "paid", "declined"] as const)[Math.floor(Math.random() * 3)];
      outcomes.push(outcome);
      if (!outcome) continue;
      const p = (await getPayments(app.kv, [id]))[0];
      const res = await fetch(`${app.sandboxUrl}/payments/${p.providerRef}/complete`, {
        method: "POST",
        headers: { authorization: `Bearer ${SANDBOX_TOKEN}` },
        body: JSON.stringify({ outcome }),
      });
      await res.body?.cancel();
    }
    const settled = outcomes.filter(Boolean).length;
    await waitFor("all webhooks", () => (app.sandbox.webhooksAccepted >= settled ? true : undefined));

    const ids: string[] = [];
    for await (const p of iteratePaymentIds(app.kv, {})) ids.push(p.id);
    const payments = await getPayments(app.kv, ids);
    const day = new Date().toISOString().slice(0, 10);
    const rows = await readStats(app.kv, day, day);
    for (const currency of currencies) {
      for (const status of ["created", "succeeded", "failed"] as const) {
        const expected = payments.filter((p) =>
          p.currency === currency && (status === "created" || p.status === status)
        );
        const row = rows.find((r) => r.currency === currency && r.status === status);
        assert.equal(row?.count ?? 0, expected.length, `${currency} ${status} count`);
        if (status !== "created") {
          assert.equal(row?.amount ?? 0, expected.reduce((n, p) => n + p.amount, 0), `${currency} ${status} amount`);
        }
      }
    }
  } finally {
    await app.close();
  }
});

Deno.test("[portal] an operator's session token is never taken for a portal session, even with a shop and a portal session stored under its ids", async () => {
  const { decodeJwt } = await import("jose");
  const { createOperatorAccount, signIn } = await import("../lib/auth/operators.ts");
  const { authenticatePortal } = await import("../lib/auth/portal.ts");
  const app = await startTestApp();
  try {
    const ctx = app.server.ctx;
    const { password } = await createOperatorAccount(ctx, "ops@example.com");
    const { token } = await signIn(ctx, { email: "ops@example.com", password, ip: "127.0.0.1" });
    const { sid, sub } = decodeJwt(token) as { sid: string; sub: string };
    const shop = await getShop(app.kv, app.shop.id);
    await app.kv.set(["shops", sub], { ...shop, id: sub });
    const now = Date.now();
    await app.kv.set(["portal_sessions", sid], { id: sid, shopId: sub, createdAt: now, expiresAt: now + 3_600_000 });
    assert.equal(await authenticatePortal(ctx, token), null);
  } finally {
    await app.close();
  }
});
