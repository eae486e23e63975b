import type { AppContext } from "../context.ts";
import { ConflictError, idempotencyMismatch, IdempotencyMismatchError, ValidationError } from "../errors.ts";
import { getInvoice, insertInvoice } from "../db/invoices.ts";
import { pickAddress } from "./pool.ts";
import { requireChain } from "./chain.ts";
import type { Shop } from "../db/shops.ts";
import { base64url, sequentialId, sortableId } from "../ids.ts";
import { hmacSha256, sha256Hex } from "../crypto.ts";
import { checkPostbackDestination } from "../relay/url_guard.ts";
import { judgeReturnUrl } from "../shops.ts";
import { bodyFields, idempotencyKeyOf, idempotencyKeyProblems, parseOrThrow } from "../validation.ts";
import { parseDecimalAmount } from "./amounts.ts";
import { type Coin, findCoinOption } from "./coins.ts";
import { type CreateInvoiceInput, createInvoiceSchema } from "./schema.ts";
import type { Invoice } from "./types.ts";
import { type InvoiceView, invoiceView } from "./view.ts";

const MAX_TRIES = 8;

/** Where the chain service sends its notices about our addresses. */
export function chainNotifyUrl(publicBaseUrl: string): string {
  return `${publicBaseUrl}/api/chain-notify`;
}

/**
 * Creates a crypto invoice for a shop: validates the input, picks a free
 * address of the shop's pool on the network (or asks the address service for
 * new ones when none is free, and uses the first at once), and stores the
 * invoice holding it in one atomic operation whose checks make the pick
 * exclusive.
 *
 * Idempotency as init-payment: the shop's `id` (or an Idempotency-Key) names
 * the invoice, whose id is derived from it, so a retry answers the stored
 * invoice (same body) or is refused (another body), and copies racing each
 * other are kept apart by the uniqueness check on the invoice's key. That
 * check is the only lookup: nothing is read before the write, because a read
 * waits behind the commits in flight, and retries are rare (a retry's write
 * fails, then the stored invoice is read and answered).
 */
export async function createInvoice(
  ctx: AppContext,
  shop: Shop,
  input: unknown,
  opts: { idempotencyKey?: string | null; now?: number } = {},
): Promise<{ invoice: InvoiceView; created: boolean }> {
  requireChain(ctx);
  const body = parseOrThrow(createInvoiceSchema, input, {
    others: (raw) => {
      const b = bodyFields(raw);
      return {
        ...idempotencyKeyProblems(opts.idempotencyKey),
        ...(b ? judgeInvoiceUrls(ctx, shop, { returnUrl: b.returnUrl, postbackUrl: b.postbackUrl }).fields : {}),
      };
    },
  });
  const idempotencyKey = idempotencyKeyOf(opts.idempotencyKey);
  const name: InvoiceName | null = body.id
    ? { kind: "shop_ref", value: body.id }
    : idempotencyKey
    ? { kind: "idempotency_key", value: idempotencyKey }
    : null;
  const requestHash = fingerprint(body);
  const id = name
    ? derivedInvoiceId(ctx.paymentIdKey, shop.id, name.kind, name.value)
    : sequentialId("inv", opts.now ?? ctx.now());
  const view = (inv: Invoice) => invoiceView(inv, ctx.config.publicBaseUrl);
  try {
    return await storeNewInvoice(ctx, shop, body, {
      id,
      idempotencyKey,
      requestHash,
      name,
      now: opts.now,
    });
  } catch (err) {
    // A retry of an invoice stored before answers it even when its own try failed early (its postback URL no
    // longer resolves, the address service is down): nothing is read before the write, so look now.
    const existing = name && !(err instanceof IdempotencyMismatchError) ? await getInvoice(ctx.kv, id) : null;
    if (name && existing) return { invoice: view(replay(existing, requestHash, body, name)), created: false };
    throw err;
  }
}

/** Validates what needs the store or the network, picks an address and stores the invoice (see createInvoice). */
async function storeNewInvoice(
  ctx: AppContext,
  shop: Shop,
  body: CreateInvoiceInput,
  req: { id: string; idempotencyKey: string | null; requestHash: string; name: InvoiceName | null; now?: number },
): Promise<{ invoice: InvoiceView; created: boolean }> {
  const { id, idempotencyKey, requestHash } = req;
  const view = (inv: Invoice) => invoiceView(inv, ctx.config.publicBaseUrl);
  const option = findCoinOption(body.coin, body.network)!;
  const { returnUrl, postbackUrl } = await checkInvoiceUrls(ctx, shop, body);
  const now = req.now ?? ctx.now();
  const expiresAt = now + (body.expiresIn !== undefined ? body.expiresIn * 1000 : ctx.config.invoiceTtlMs);
  const base: Omit<Invoice, "address"> = {
    id,
    seq: sortableId(now),
    shopId: shop.id,
    shopInvoiceId: body.id ?? null,
    idempotencyKey: body.id ? null : idempotencyKey,
    requestHash,
    coin: option.coin as Coin,
    network: option.network,
    decimals: option.decimals,
    amount: parseDecimalAmount(body.amount, option.decimals)!.toString(),
    title: body.title ?? "",
    description: body.description ?? "",
    email: body.email ?? null,
    postbackUrl,
    ...(returnUrl ? { returnUrl } : {}),
    status: "waiting_for_deposit",
    deposits: [],
    createdAt: now,
    updatedAt: now,
    expiresAt,
    closedAt: null,
    checkAt: Math.min(expiresAt, now + ctx.config.chainPollMs),
  };
  for (let i = 0; i < MAX_TRIES; i++) {
    // After half the tries lost to other requests, stop competing for the free addresses.
    const picked = await pickAddress(ctx, shop.id, option.network, {
      now,
      notifyUrl: chainNotifyUrl(ctx.config.publicBaseUrl),
      fresh: i >= MAX_TRIES / 2,
    });
    const invoice: Invoice = { ...base, address: picked.address };
    let stored = false;
    try {
      stored = await insertInvoice(ctx.kv, { invoice, pick: picked.pick, jobs: { queue: ctx.config.jobsQueue, now } });
    } catch (err) {
      picked.done();
      throw err;
    }
    if (stored) {
      picked.done();
      return { invoice: view(invoice), created: true };
    }
    // A copy of this request stored it first: answer that one (the address played no part: it goes back).
    const winner = req.name ? await getInvoice(ctx.kv, id) : null;
    picked.done(winner !== null);
    if (winner && req.name) return { invoice: view(replay(winner, requestHash, body, req.name)), created: false };
    // Another invoice took the free address we read: try again with what is free now.
  }
  throw new ConflictError("Too many invoices are taking addresses at once; retry.");
}

/**
 * The request's fingerprint, by what it means: "12.50" and "12.5" are one amount, so a retry that writes it
 * otherwise is the same request. Prefixed, so it never equals the hash of a body as sent (the old fingerprint, still
 * accepted for invoices stored before): an amount sent in base units ("12500000") is another request.
 */
function fingerprint(body: CreateInvoiceInput): string {
  const option = findCoinOption(body.coin, body.network)!;
  const meaning = { ...body, amount: parseDecimalAmount(body.amount, option.decimals)!.toString() };
  return sha256Hex(`invoice-request-v2\0${JSON.stringify(meaning)}`);
}

function replay(inv: Invoice, requestHash: string, body: CreateInvoiceInput, name: InvoiceName): Invoice {
  // Invoices stored before fingerprints were by meaning carry the hash of the body as it was sent (worked out only
  // here, off the path of every new invoice).
  if (inv.requestHash !== requestHash && inv.requestHash !== sha256Hex(JSON.stringify(body))) {
    throw idempotencyMismatch(name.kind, "an invoice");
  }
  return inv;
}

/** How a shop names an invoice it may ask for again: its own id, or an Idempotency-Key. */
interface InvoiceName {
  kind: "shop_ref" | "idempotency_key";
  value: string;
}

/** The invoice id for a named request: an HMAC of the shop and the name, like derived payment ids. */
function derivedInvoiceId(key: Uint8Array, shopId: string, kind: string, value: string): string {
  return `inv_${base64url(hmacSha256(key, `invoice-id\0${shopId}\0${kind}\0${value}`).subarray(0, 16))}`;
}

/**
 * The checks of an invoice's URLs that need nothing but the request and the shop's settings (scheme, shape, length,
 * allowed hosts; the shop's default postback URL when the request gives none): the problems by field, and each URL as
 * we keep it when it passes. A value that is not a string is the schema's to refuse. Where the postback URL's host
 * resolves to is judged after (checkInvoiceUrls): it asks DNS.
 */
function judgeInvoiceUrls(ctx: AppContext, shop: Shop, urls: { returnUrl?: unknown; postbackUrl?: unknown }) {
  const fields: Record<string, string> = {};
  const judge = (field: string, url: unknown) => {
    const checked = judgeReturnUrl(shop, url, { allowLocalUrls: ctx.config.allowLocalUrls });
    if (checked?.problem) fields[field] = checked.problem;
    return checked?.url ?? null;
  };
  const returnUrl = judge("returnUrl", urls.returnUrl);
  // A postback URL is judged by the same rules before its host is looked up.
  const postbackUrl = judge("postbackUrl", urls.postbackUrl ?? shop.defaultPostbackUrl);
  return { fields, returnUrl, postbackUrl };
}

/**
 * An invoice's URLs as we keep them, or one ValidationError naming each bad one. The postback URL's host is looked up
 * only when the rest is right: a request refused anyway asks no DNS.
 */
async function checkInvoiceUrls(ctx: AppContext, shop: Shop, body: CreateInvoiceInput) {
  const { fields, returnUrl, postbackUrl } = judgeInvoiceUrls(ctx, shop, body);
  if (postbackUrl && !Object.keys(fields).length) {
    const problem = await checkPostbackDestination(new URL(postbackUrl), {
      allowLocal: ctx.config.allowLocalUrls,
      resolve: ctx.resolve,
    });
    if (problem) fields.postbackUrl = problem;
  }
  if (Object.keys(fields).length) throw new ValidationError("The request is invalid.", fields);
  return { returnUrl, postbackUrl };
}
