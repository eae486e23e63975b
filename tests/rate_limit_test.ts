/**
 * Rate limits: per API key with the shop's own limit or the default, and per
 * client address for unauthenticated requests (bad keys, rejected webhooks,
 * sign-in posts); 429 with Retry-After in each case.
 */
import assert from "node:assert/strict";
import { createOperatorAccount } from "../lib/auth/operators.ts";
import { getShop } from "../lib/db/shops.ts";
import { RateLimiter } from "../lib/auth/rate_limit.ts";
import { addressForLimits } from "../routes/_client_address.ts";
import { createShopKey, setShopRateLimit } from "../lib/shops.ts";
import { buyerSettles, callInit, paymentBody, sleep, startTestApp, type TestApp, waitFor } from "../fixtures/app.ts";
import { getPayment } from "../lib/db/payments.ts";
import { Browser, operatorBrowser } from "../fixtures/browser.ts";

/** Stops the app's clock in the middle of a minute, so no window starts afresh during the test. */
function freezeClock(app: TestApp): number {
  const now = Math.floor(Date.now() / 60_000) * 60_000 + 30_000;
  app.server.ctx.now = () => now;
  return now;
}

async function options(app: TestApp, key: string) {
  const res = await fetch(`${app.baseUrl}/api/v1/options`, { headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: await res.json() };
}

function assertRateLimited(res: { status: number; retryAfter: string | null; body: unknown }) {
  assert.equal(res.status, 429);
  assert.equal(res.retryAfter, "30");
  assert.deepEqual(res.body, {
    status: "error",
    error: { code: "rate_limited", message: "Too many requests; retry in 30 s." },
  });
}

Deno.test("[rate limits] each API key counts on its own, up to the default or the shop's own limit", async (t) => {
  const app = await startTestApp({ env: { RATE_LIMIT_PER_MINUTE: "3" } });
  try {
    const now = freezeClock(app);
    await t.step("the default: the fourth call of a minute gets 429 with Retry-After", async () => {
      for (let i = 0; i < 3; i++) assert.equal((await options(app, app.shop.apiKey)).status, 200);
      assertRateLimited(await options(app, app.shop.apiKey));
    });
    await t.step("another key of the same shop has its own count", async () => {
      const { apiKey } = await createShopKey(app.kv, app.shop.id, { now });
      for (let i = 0; i < 3; i++) assert.equal((await options(app, apiKey)).status, 200);
      assertRateLimited(await options(app, apiKey));
    });
    await t.step("the shop's own limit applies at once", async () => {
      await setShopRateLimit(app.kv, app.shop.id, 6, { actor: "test", now });
      // The first key made 4 calls this minute; two more are allowed under 6.
      assert.equal((await options(app, app.shop.apiKey)).status, 200);
      assert.equal((await options(app, app.shop.apiKey)).status, 200);
      assertRateLimited(await options(app, app.shop.apiKey));
    });
    await t.step("a limit that is not a whole number from 1 up is refused", async () => {
      await assert.rejects(() => setShopRateLimit(app.kv, app.shop.id, 0, { actor: "test", now }), {
        name: "ValidationError",
        message: "The rate limit is invalid.",
      });
      assert.equal((await getShop(app.kv, app.shop.id))!.rateLimitPerMinute, 6);
    });
  } finally {
    await app.close();
  }
});

/**
 * Two apps (processes, or isolates on Deno Deploy) on one store, their clocks stopped in the same minute: each shares
 * its counts every 20 ms. Answers both and a helper that waits until each has read the other's counts.
 */
async function twoAppsOnOneStore(env: Record<string, string>) {
  const dir = await Deno.makeTempDir({ prefix: "aimbrella-rate-" });
  const kvPath = `${dir}/kv.sqlite3`;
  const a = await startTestApp({ kvPath, env: { ...env, RATE_LIMIT_SHARE_MS: "20" } });
  const b = await startTestApp({ kvPath, env: { ...env, RATE_LIMIT_SHARE_MS: "20" } });
  freezeClock(a);
  freezeClock(b);
  return {
    a,
    b,
    /** Two sharing rounds: each app wrote its counts and read the other's. */
    shared: () => new Promise((r) => setTimeout(r, 200)),
    async close() {
      await Promise.all([a.close(), b.close()]);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("[rate limits] a key's limit holds for every process on the store together, not for each", async () => {
  const apps = await twoAppsOnOneStore({ RATE_LIMIT_PER_MINUTE: "4" });
  try {
    const { a, b } = apps;
    for (let i = 0; i < 3; i++) assert.equal((await options(a, a.shop.apiKey)).status, 200);
    await apps.shared();
    // A process reads the others' counts of a key in the round after its own first call of the minute: until then
    // it judges on its own count.
    assert.equal((await options(b, a.shop.apiKey)).status, 200);
    await apps.shared();
    // Four calls in all: the limit, on either app.
    assertRateLimited(await options(b, a.shop.apiKey));
    await apps.shared();
    assertRateLimited(await options(a, a.shop.apiKey));
    // Another key's count is its own.
    assert.equal((await options(b, b.shop.apiKey)).status, 200);
  } finally {
    await apps.close();
  }
});

Deno.test("[rate limits] bad keys from one address count across processes: guesses spread over them still hit the limit", async () => {
  const apps = await twoAppsOnOneStore({ RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "3" });
  try {
    const { a, b } = apps;
    assert.deepEqual([(await options(a, "apay_sk_1")).status, (await options(a, "apay_sk_2")).status], [401, 401]);
    await apps.shared();
    assert.equal((await options(b, "apay_sk_3")).status, 401);
    await apps.shared();
    assertRateLimited(await options(b, "apay_sk_4"));
    assertRateLimited(await options(a, "apay_sk_5"));
  } finally {
    await apps.close();
  }
});

Deno.test("[rate limits] bad or missing keys are limited per client address; a valid key from it still works", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "3" } });
  try {
    freezeClock(app);
    const statuses = [];
    for (const key of ["sk_wrong", "", "apay_sk_nope", "sk_wrong"]) statuses.push((await options(app, key)).status);
    assert.deepEqual(statuses, [401, 401, 401, 429]);
    assertRateLimited(await options(app, "sk_wrong"));
    assert.equal((await options(app, app.shop.apiKey)).status, 200);
  } finally {
    await app.close();
  }
});

Deno.test("[rate limits] rejected provider webhooks count per address; over the limit even a new one waits", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "2" } });
  try {
    freezeClock(app);
    const post = async (path: string) => {
      const res = await fetch(`${app.baseUrl}/api${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-bansky-signature": "t=1,v1=00" },
        body: JSON.stringify({ eventId: "evt_1", id: "pay_x", ref: "bsk_1", status: "paid" }),
      });
      return { status: res.status, retryAfter: res.headers.get("retry-after"), body: await res.json() };
    };
    assert.equal((await post("/payment-verify")).status, 401);
    assert.equal((await post("/payment-verify/acc_unknown")).status, 404);
    assertRateLimited(await post("/payment-verify"));
    assertRateLimited(await post("/payment-verify/acc_unknown"));
  } finally {
    await app.close();
  }
});

Deno.test("[rate limits] a correctly signed webhook goes through from an address over its limit (bad keys from a shared proxy)", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "2" } });
  try {
    freezeClock(app);
    // Everyone behind one proxy shares its address: someone's bad keys use up the address's minute.
    for (let i = 0; i < 3; i++) await options(app, "sk_wrong");
    assertRateLimited(await options(app, "sk_wrong"));
    // The provider's webhook from that same address (here the sandbox on loopback) is still taken at once.
    const init = await callInit(app, paymentBody());
    assert.equal(init.status, 201, JSON.stringify(init.body));
    await buyerSettles(init.body.url, "paid");
    await waitFor(
      "the webhook taken",
      async () => (await getPayment(app.kv, init.body.id))?.status === "succeeded" || undefined,
    );
  } finally {
    await app.close();
  }
});

Deno.test("[rate limits] over its limit, an address naming accounts this isolate does not hold gets 429 before any read", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "2" } });
  try {
    freezeClock(app);
    for (let i = 0; i < 3; i++) await options(app, "sk_wrong");
    let accountReads = 0;
    const getMany = app.server.ctx.kv.getMany.bind(app.server.ctx.kv);
    app.server.ctx.kv.getMany = ((keys: Deno.KvKey[], o?: { consistency?: Deno.KvConsistencyLevel }) => {
      if (keys.some((k) => String(k[0]).startsWith("provider_account"))) accountReads++;
      return getMany(keys, o);
    }) as typeof app.server.ctx.kv.getMany;
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${app.baseUrl}/api/payment-verify/pa_${crypto.randomUUID().slice(0, 22)}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-bansky-signature": "t=1,v1=00" },
        body: "{}",
      });
      await res.body?.cancel();
      assert.equal(res.status, 429);
    }
    assert.equal(accountReads, 0, "no account was read for them");
  } finally {
    await app.close();
  }
});

Deno.test("[rate limits] console sign-in posts are limited per address, whichever email they name", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "3" } });
  try {
    freezeClock(app);
    await createOperatorAccount(app.server.ctx, "ops@example.com");
    const b = new Browser(app);
    await b.get("/admin/login");
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await b.post("/admin/login", { email: `guess${i}@example.com`, password: "nope" })).status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 429]);
    const last = await b.post("/admin/login", { email: "ops@example.com", password: "nope" });
    assert.equal(last.status, 429);
    assert.equal(last.headers.get("retry-after"), "30");
    assert.match(last.text, /Too many requests; retry in 30 s\./);
  } finally {
    await app.close();
  }
});

Deno.test("[rate limits] an operator sets a shop's limit on its page, and empties it back to the default", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_PER_MINUTE: "1200" } });
  try {
    const b = await operatorBrowser(app);
    const page = await b.get(`/admin/shops/${app.shop.id}`);
    assert.match(page.text, /1200 requests a minute per API key \(the default\)/);
    const bad = await b.post(`/admin/shops/${app.shop.id}/rate-limit`, { rateLimitPerMinute: "lots" });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /must be a whole number from 1 to 1000000/);
    assert.equal((await getShop(app.kv, app.shop.id))!.rateLimitPerMinute, undefined);

    const saved = await b.post(`/admin/shops/${app.shop.id}/rate-limit`, { rateLimitPerMinute: "50" });
    assert.equal(saved.status, 303);
    assert.equal((await getShop(app.kv, app.shop.id))!.rateLimitPerMinute, 50);
    const shown = await b.get(saved.location!);
    assert.match(shown.text, /Rate limit: 50 requests a minute per key\./);
    assert.match(shown.text, /50 requests a minute per API key \(this shop's own limit\)/);
    const audit = await b.get("/admin/audit");
    assert.match(audit.text, /changed the rate limit of/);

    await b.post(`/admin/shops/${app.shop.id}/rate-limit`, { rateLimitPerMinute: "" });
    assert.equal((await getShop(app.kv, app.shop.id))!.rateLimitPerMinute, null);
  } finally {
    await app.close();
  }
});

Deno.test("[rate limits] forged webhooks for a known account, over the limit and verified, log one line a minute, not one each", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "2" } });
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    freezeClock(app);
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${app.baseUrl}/api/payment-verify`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-bansky-signature": `t=1,v1=${"0".repeat(64)}` },
        body: JSON.stringify({ eventId: `evt_${i}`, id: "pay_x", ref: "bsk_1", status: "paid" }),
      });
      await res.body?.cancel();
      // The default account is known, so each is verified (and refused: 401, or 429 once the address is over).
      assert.ok(res.status === 401 || res.status === 429, `request ${i}: ${res.status}`);
    }
  } finally {
    console.error = original;
    await app.close();
  }
  // At most one: an earlier test in this process may have used up this minute's line of the same kind.
  assert.ok(lines.filter((l) => l.includes("webhook rejected")).length <= 1, lines.join("\n"));
});

Deno.test("[rate limits] a publishable key is counted per buyer's address, apart from the shop's secret keys: a stranger cannot spend its budget for everyone", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "2", RATE_LIMIT_PER_MINUTE: "100" } });
  try {
    freezeClock(app);
    const { apiKey: pk } = await createShopKey(app.kv, app.shop.id, { now: Date.now(), kind: "publishable" });
    const config = async () =>
      (await fetch(`${app.baseUrl}/api/v1/checkout/config`, { headers: { authorization: `Bearer ${pk}` } }))
        .status;
    // This address's share: a buyer's page asks once a visit.
    assert.deepEqual([await config(), await config(), await config()], [200, 200, 429]);
    // The shop's own calls are not held back by it.
    assert.equal((await options(app, app.shop.apiKey)).status, 200);
  } finally {
    await app.close();
  }
});

Deno.test("[rate limits] an address's count survives a flood of other addresses: the keys forgotten past the bound are those idle longest", () => {
  const limiter = new RateLimiter(2);
  const now = Math.floor(Date.now() / 60_000) * 60_000 + 1_000;
  limiter.take("guesser", now);
  limiter.take("guesser", now);
  for (let i = 0; i < 30_000; i++) {
    limiter.take(`other-${i}`, now);
    // The guesser keeps trying, and stays refused however many other addresses came meanwhile.
    if (i % 1_000 === 0) assert.throws(() => limiter.take("guesser", now), { name: "AppError" }, `after ${i}`);
  }
});

Deno.test("[rate limits] IPv6 clients are counted by their /64, the block one home or phone holds", () => {
  assert.equal(addressForLimits("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(addressForLimits("2001:0db8:0001:0002::abcd"), "2001:db8:1:2::/64");
  assert.equal(addressForLimits("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(addressForLimits("::ffff:192.0.2.7"), "192.0.2.7");
  assert.equal(addressForLimits("192.0.2.7"), "192.0.2.7");
});

Deno.test("[rate limits] keys near their limit are read again each sharing round only until their minute ends, not until the next request", async () => {
  const kv = await Deno.openKv(":memory:");
  const list = kv.list.bind(kv);
  let lists = 0;
  kv.list = ((...args: Parameters<Deno.Kv["list"]>) => (lists++, list(...args))) as Deno.Kv["list"];
  let clock = Math.floor(Date.now() / 60_000) * 60_000 + 30_000;
  const limiter = new RateLimiter(4, { kv, name: "test", everyMs: 20, now: () => clock });
  try {
    for (let i = 0; i < 3; i++) limiter.take("203.0.113.9", clock);
    await waitFor("a few rounds", () => (lists >= 3 ? true : undefined));
    // The minute ends; no request comes after it.
    clock += 60_000;
    await sleep(60);
    const after = lists;
    await sleep(300);
    // Before: a limiter that counted nothing since kept reading the key every round, for as long as none came.
    assert.equal(lists, after);
  } finally {
    limiter.stop();
    await sleep(30);
    kv.close();
  }
});

Deno.test("[rate limits] a flood of addresses making a request each costs the store nothing; a key counted a tenth of its limit is shared", async () => {
  const kv = await Deno.openKv(":memory:");
  const limiter = new RateLimiter(60, { kv, name: "flood", everyMs: 10 });
  try {
    const now = Date.now();
    for (let i = 0; i < 1_000; i++) limiter.take(`2001:db8:${i.toString(16)}::/64`, now);
    for (let i = 0; i < 6; i++) limiter.take("busy", now);
    await new Promise((r) => setTimeout(r, 100));
    const stored = await Array.fromAsync(kv.list({ prefix: ["rate_limit_counts", "flood"] }));
    assert.deepEqual(stored.map((e) => e.key[2]), ["busy"]);
  } finally {
    limiter.stop();
    kv.close();
  }
});
