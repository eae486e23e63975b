import type { AppContext } from "./context.ts";
import { addDemoPostback, listDemoPostbacks } from "./db/demo.ts";
import { getSetting, initSetting } from "./db/settings.ts";
import { sortableId } from "./ids.ts";
import { log } from "./log.ts";
import { verifyRedirect, verifyWebhook } from "./relay/signing.ts";
import { createShop, setEmbedOrigins, shopSigning } from "./shops.ts";
import { getShop } from "./db/shops.ts";
import { createOperatorAccount } from "./auth/operators.ts";
import { getOperatorByEmail } from "./db/operators.ts";
import { ConflictError } from "./errors.ts";

/**
 * The demo shop that zero-config mode ships: a real shop with a real key that
 * calls our API over HTTP like any integration would. It keeps its own key
 * and secret, as a shop keeps its credentials; our key store still has only
 * the hash.
 */
export interface DemoShop {
  shopId: string;
  apiKey: string;
  webhookSecret: string;
}

const SETTING = "demo_shop";

/** Creates the demo shop on first start; prints its key that one time. */
export async function ensureDemoShop(ctx: AppContext): Promise<DemoShop> {
  const existing = await getSetting<DemoShop>(ctx.kv, SETTING);
  if (existing) {
    await letDemoEmbed(ctx, existing.shopId);
    return existing;
  }
  const { shop, apiKey } = await createShop(ctx.kv, {
    name: "Demo shop",
    defaultPostbackUrl: `${ctx.config.publicBaseUrl}/demo/postback`,
  }, { allowLocalUrls: true, now: ctx.now() });
  const { value, created } = await initSetting<DemoShop>(ctx.kv, SETTING, {
    shopId: shop.id,
    apiKey,
    webhookSecret: shop.webhookSecret,
  });
  if (created) {
    // Printed once, on first start, so a developer can call the API by hand.
    console.log(`Demo shop created: ${shop.id}\nIts API key (shown once): ${apiKey}`);
  }
  await letDemoEmbed(ctx, value.shopId);
  return value;
}

/** The demo's embedded checkout is framed by the demo's own page, on our origin: the demo shop lists it. */
async function letDemoEmbed(ctx: AppContext, shopId: string) {
  const origin = new URL(ctx.config.publicBaseUrl).origin;
  const shop = await getShop(ctx.kv, shopId);
  if (!shop || shop.embedOrigins?.includes(origin)) return;
  await setEmbedOrigins(ctx.kv, shopId, [...(shop.embedOrigins ?? []), origin], {
    actor: "system",
    now: ctx.now(),
    allowLocalUrls: true,
  });
}

/** What the demo's embedded checkout does first: a server-side checkout session, whose client secret the page mounts. */
export async function demoCheckoutSession(demo: DemoShop, selfUrl: string) {
  const order = `demo_${sortableId().toLowerCase()}`;
  const res = await fetch(`${selfUrl}/api/v1/checkout/sessions`, {
    method: "POST",
    headers: { authorization: `Bearer ${demo.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({
      id: order,
      customerEmail: "buyer@example.com",
      customerName: "Demo Buyer",
      currency: "EUR",
      lineItems: [{ name: "A very fine umbrella", unitAmount: 1000, quantity: 1 }],
    }),
    signal: AbortSignal.timeout(20_000),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`checkout/sessions answered ${res.status}: ${body?.error?.code}`);
  return { order, sessionId: body.sessionId as string, clientSecret: body.clientSecret as string };
}

/** What the demo "Buy" button does: a server-side init-payment call, returning the pay URL. */
export async function demoBuy(ctx: AppContext, demo: DemoShop, selfUrl: string): Promise<string> {
  const base = ctx.config.publicBaseUrl;
  const order = `demo_${sortableId().toLowerCase()}`;
  const res = await fetch(`${selfUrl}/api/v1/init-payment`, {
    method: "POST",
    headers: { authorization: `Bearer ${demo.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({
      id: order,
      email: "buyer@example.com",
      name: "Demo Buyer",
      amount: 1000,
      currency: "EUR",
      successUrl: `${base}/demo/result?outcome=success&order=${order}`,
      errorUrl: `${base}/demo/result?outcome=error&order=${order}`,
    }),
    signal: AbortSignal.timeout(20_000), // one call per demo click: a lingering timer costs nothing here
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`init-payment answered ${res.status}: ${body?.error?.code}`);
  return body.url;
}

/**
 * The demo shop's postback endpoint: verify like a shop would, and remember
 * what arrived. Only verified postbacks are kept, and only a few short fields
 * of each: the endpoint is public, so anything else would be free storage.
 */
export async function receiveDemoPostback(ctx: AppContext, demo: DemoShop, headers: Headers, body: string) {
  const verified = verifyWebhook(await demoKeys(ctx, demo), headers, body, Math.floor(ctx.now() / 1000));
  if (!verified) {
    log.warn("demo shop refused a postback with a bad signature");
    return false;
  }
  let data: { type?: unknown; data?: { id?: unknown; paymentId?: unknown } } = {};
  try {
    data = JSON.parse(body);
  } catch {
    log.warn("demo shop got a signed postback that is not JSON");
  }
  const short = (value: unknown, max: number) => typeof value === "string" ? value.slice(0, max) : null;
  await addDemoPostback(ctx.kv, {
    receivedAt: ctx.now(),
    webhookId: short(headers.get("webhook-id"), 64) ?? "",
    type: short(data.type, 40) ?? "unknown",
    shopTxId: short(data.data?.id, 64),
    paymentId: short(data.data?.paymentId, 40),
    verified,
  });
  return true;
}

/**
 * What the demo shop verifies with: the secret it kept at creation and, once an operator has switched
 * it to key pairs, the public key, which a real shop would copy from its portal (so the demo reads it).
 */
async function demoKeys(ctx: AppContext, demo: DemoShop): Promise<string[]> {
  const shop = await getShop(ctx.kv, demo.shopId);
  const publicKey = shop && shopSigning(shop).publicKey;
  return publicKey ? [demo.webhookSecret, publicKey] : [demo.webhookSecret];
}

export type DemoRedirectCheck =
  | { state: "verified"; status: string; paymentId: string }
  | { state: "invalid" | "unsigned" | "other_order" | "unchecked" };

/**
 * The demo shop's result page checks the signed parameters of the redirect the way a shop's page must: the signature,
 * and that the payment it names is the one of the order its own URL names (`order`, asked of our API by order id as
 * any shop can), so a buyer cannot bring one order's signed "succeeded" to another order's page.
 */
export async function checkDemoRedirect(
  ctx: AppContext,
  demo: DemoShop,
  opts: { query: URLSearchParams; order: string; selfUrl: string },
): Promise<DemoRedirectCheck> {
  if (!opts.query.has("apay_sig")) return { state: "unsigned" };
  const ok = verifyRedirect(await demoKeys(ctx, demo), opts.query, Math.floor(ctx.now() / 1000));
  if (!ok) return { state: "invalid" };
  // A lookup that did not answer proves neither way: the page waits for the postback, as for an unsigned return.
  const orderPayment = await demoOrderPayment(demo, opts).catch(() => undefined);
  if (orderPayment === undefined) return { state: "unchecked" };
  return ok.paymentId === orderPayment ? { state: "verified", ...ok } : { state: "other_order" };
}

/**
 * Our payment id of a demo order, as the shop's API answers it by the order's id; null when the API says there is
 * none (404). Throws when it gave no answer (timeout, a 5xx, a 429), which says nothing about the order.
 */
async function demoOrderPayment(demo: DemoShop, opts: { order: string; selfUrl: string }): Promise<string | null> {
  if (!opts.order) return null;
  const res = await fetch(`${opts.selfUrl}/api/v1/payments?shopTxId=${encodeURIComponent(opts.order)}`, {
    headers: { authorization: `Bearer ${demo.apiKey}` },
    signal: AbortSignal.timeout(5_000),
  });
  const body = await res.json().catch(() => null);
  if (res.status === 404) return null;
  if (!res.ok || typeof body?.payment?.id !== "string") throw new Error(`order lookup answered ${res.status}`);
  return body.payment.id;
}

export function recentDemoPostbacks(ctx: AppContext) {
  return listDemoPostbacks(ctx.kv, 20);
}

/** Zero-config mode's operator, admin@localhost, created once with its password printed that one time. */
export async function ensureDemoOperator(ctx: AppContext) {
  const email = "admin@localhost";
  if (await getOperatorByEmail(ctx.kv, email)) return;
  try {
    const { password } = await createOperatorAccount(ctx, email);
    console.log(`Operator ${email} created. Its one-time password (shown once): ${password}`);
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err; // another instance created it first
  }
}
