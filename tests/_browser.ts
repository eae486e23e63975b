import assert from "node:assert/strict";
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { updateOperatorPassword } from "../lib/db/operators.ts";
import { hashPassword } from "../lib/auth/passwords.ts";
import type { TestApp } from "./_helpers.ts";

/** A tiny browser: keeps cookies, sends same-origin form posts with the CSRF token from the last page. */
export class Browser {
  cookies = new Map<string, string>();
  lastHtml = "";
  constructor(readonly app: TestApp) {}

  async request(path: string, init: RequestInit = {}) {
    const headers = new Headers(init.headers);
    headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
    const res = await fetch(this.app.baseUrl + path, { ...init, headers, redirect: "manual" });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const [k, v] = pair.split("=");
      if (/max-age=0/i.test(c)) this.cookies.delete(k);
      else this.cookies.set(k, v);
    }
    const text = await res.text();
    if (res.headers.get("content-type")?.includes("text/html")) this.lastHtml = text;
    return { status: res.status, text, location: res.headers.get("location"), headers: res.headers };
  }

  get(path: string) {
    return this.request(path);
  }

  csrf(): string {
    return this.lastHtml.match(/name="_csrf" value="([^"]+)"/)?.[1] ?? "";
  }

  post(path: string, fields: Record<string, string>, opts: { csrf?: string; origin?: string } = {}) {
    return this.request(path, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        origin: opts.origin ?? this.app.baseUrl,
        "sec-fetch-site": opts.origin ? "cross-site" : "same-origin",
      },
      body: new URLSearchParams({ _csrf: opts.csrf ?? this.csrf(), ...fields }),
    });
  }
}

/** A browser signed in as a fresh operator (its one-time password already replaced). */
export async function operatorBrowser(app: TestApp, email = "ops@example.com") {
  const { operator } = await createOperatorAccount(app.server.ctx, email);
  await updateOperatorPassword(app.kv, operator.id, await hashPassword("correct horse battery", 1000));
  const b = new Browser(app);
  await b.get("/admin/login");
  const res = await b.post("/admin/login", { email, password: "correct horse battery" });
  assert.equal(res.status, 303);
  return b;
}
