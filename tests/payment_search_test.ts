import assert from "node:assert/strict";
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { createPortalLink } from "../lib/auth/portal.ts";
import { hashPassword } from "../lib/auth/passwords.ts";
import { updateOperatorPassword } from "../lib/db/operators.ts";
import { createPayment } from "../lib/db/payments.ts";
import { SCAN_LIMIT } from "../lib/payments/search.ts";
import type { Payment } from "../lib/payments/types.ts";
import { startTestApp, type TestApp } from "../fixtures/app.ts";
import { storedPayment } from "../fixtures/payments.ts";

/** A cookie-keeping client of the app's pages over loopback HTTP. */
class Client {
  cookies = new Map<string, string>();
  constructor(readonly app: TestApp) {}

  async request(path: string, init: RequestInit = {}) {
    const headers = new Headers(init.headers);
    headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const res = await fetch(new URL(path, this.app.baseUrl), { ...init, headers, redirect: "manual" });
    for (const c of res.headers.getSetCookie()) {
      const [k, v] = c.split(";")[0].split("=");
      this.cookies.set(k, v);
    }
    return { status: res.status, text: await res.text() };
  }

  /** A same-origin form post carrying the CSRF token of `formPage`. */
  async post(path: string, formPage: string, fields: Record<string, string>) {
    const csrf = (await this.request(formPage)).text.match(/name="_csrf" value="([^"]+)"/)?.[1] ?? "";
    return this.request(path, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        origin: this.app.baseUrl,
        "sec-fetch-site": "same-origin",
      },
      body: new URLSearchParams({ _csrf: csrf, ...fields }),
    });
  }
}

async function signInOperator(app: TestApp): Promise<Client> {
  const { operator } = await createOperatorAccount(app.server.ctx, "ops@example.com");
  await updateOperatorPassword(app.kv, operator.id, await hashPassword("correct horse battery", 1000));
  const c = new Client(app);
  const res = await c.post("/admin/login", "/admin/login", {
    email: "ops@example.com",
    password: "correct horse battery",
  });
  assert.equal(res.status, 303);
  return c;
}

async function signInPortal(app: TestApp): Promise<Client> {
  const link = await createPortalLink(app.server.ctx, app.shop.id, "ops@example.com");
  const c = new Client(app);
  const token = new URL(link).searchParams.get("token")!;
  assert.equal((await c.post("/portal/signin", link, { token })).status, 303);
  return c;
}

/** More payments than one scan window, stored through the data layer; the oldest is the one searched for. */
async function seedBeyondTheScanWindow(app: TestApp): Promise<Payment> {
  const start = Date.now() - 30 * 86_400_000;
  const make = (i: number): Payment => {
    const at = start + i;
    const shopTxId = i === 0 ? "order-oldest" : `order-${i}`;
    return storedPayment(at, {
      shopId: app.shop.id,
      shopTxId,
      email: i === 0 ? "oldest@example.com" : `buyer${i}@example.com`,
      status: i === 0 ? "failed" : "pending",
    });
  };
  const payments = Array.from({ length: SCAN_LIMIT + 5 }, (_, i) => make(i));
  for (let i = 0; i < payments.length; i += 256) {
    const batch = payments.slice(i, i + 256);
    assert.ok((await Promise.all(batch.map((p) => createPayment(app.kv, p)))).every(Boolean));
  }
  return payments[0];
}

Deno.test("[search] beyond one scan window, the console and the portal find a payment by email, shop's id or id at once, and a status filter says where it stopped", async (t) => {
  const app = await startTestApp();
  try {
    const oldest = await seedBeyondTheScanWindow(app);
    const ops = await signInOperator(app);
    const portal = await signInPortal(app);

    for (
      const [who, c, base] of [["console", ops, "/admin/payments"], ["portal", portal, "/portal/payments"]] as const
    ) {
      await t.step(`${who}: email, shop's id and payment id are lookups`, async () => {
        for (const query of ["email=OLDEST%40example.com", "shopTxId=order-oldest", `id=${oldest.id}`]) {
          const page = await c.request(`${base}?${query}`);
          assert.equal(page.status, 200);
          assert.ok(page.text.includes(oldest.id), `${query} finds the oldest payment on the first page`);
          assert.ok(!page.text.includes("Stopped searching"), query);
        }
      });

      await t.step(`${who}: a status filter stops after one window, says so, and goes on when asked`, async () => {
        const first = await c.request(`${base}?status=failed`);
        assert.match(first.text, /No payments match among those searched/);
        assert.match(first.text, /Stopped searching at payments created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
        const more = first.text.match(/href="([^"]+)"[^>]*>Search older payments</)?.[1];
        assert.ok(more, "offers to search on");
        const second = await c.request(more.replaceAll("&amp;", "&"));
        assert.ok(second.text.includes(oldest.id));
        assert.ok(!second.text.includes("Stopped searching"));
      });
    }
  } finally {
    await app.close();
  }
});
