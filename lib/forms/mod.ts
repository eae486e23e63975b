import type { NewAuditEntry } from "../db/audit.ts";
import type { AppContext } from "../context.ts";
import { createForm as storeForm, getFormEntry, listAllForms, listFormsByShop, replaceForm } from "../db/forms.ts";
import { getShop, type Shop } from "../db/shops.ts";
import { judgeReturnUrl } from "../shops.ts";
import { NotFoundError, ValidationError } from "../errors.ts";
import { hasIdShape, randomId, sortableId } from "../ids.ts";
import { shopFiatSteps } from "../accounts/routing.ts";
import { formatAmount, formatDecimal } from "../money.ts";
import { formOutOfOrder } from "./view.ts";
import { bodyFields, parseOrThrow } from "../validation.ts";
import { checkFormRequest, formRequestSchema, formRuleProblems } from "./schema.ts";
import type { PaymentForm } from "./types.ts";
import type { Payment } from "../payments/types.ts";
import { findPayment } from "../payments/query.ts";
import { recheckQuietly } from "../checkout/sessions.ts";

/** The buyer's link to a form: the plain link to share, and the page an iframe shows. */
export function formUrl(formId: string, publicBaseUrl: string): string {
  return `${publicBaseUrl}/forms/${encodeURIComponent(formId)}`;
}

/**
 * Creates a shop's form from an API-shaped body (the console and the portal
 * build the same body): validates it, checks a fixed currency is one the
 * shop takes, and stores the form with its audit entry in one operation.
 */
export async function createShopForm(
  ctx: AppContext,
  shop: Shop,
  body: unknown,
  opts: { actor: string },
): Promise<PaymentForm> {
  const judgeUrl = (url: unknown) => {
    const checked = judgeReturnUrl(shop, url, { allowLocalUrls: ctx.config.allowLocalUrls });
    const problems: Record<string, string> = checked?.problem ? { returnUrl: checked.problem } : {};
    return { url: checked?.url ?? null, problems };
  };
  // A body the schema refuses is also judged by the rules between its fields and its return URL, in one answer.
  const parsed = parseOrThrow(formRequestSchema(ctx.config.maxAmount), body, {
    others: (raw, named) => {
      const b = bodyFields(raw);
      return b ? { ...formRuleProblems(b, named), ...judgeUrl(b.returnUrl).problems } : {};
    },
  });
  const returnUrl = judgeUrl(parsed.returnUrl);
  const input = { ...checkFormRequest(parsed, returnUrl.problems), returnUrl: returnUrl.url };
  if (input.kind === "fiat" && input.currency) {
    const step = (await shopFiatSteps(ctx, shop)).get(input.currency);
    if (step === undefined) {
      throw new ValidationError("The request is invalid.", {
        currency: `is not one your shop takes (see GET /api/v1/options)`,
      });
    }
    // The provider your payments in this currency go to would refuse every submit (Stripe takes MGA in whole ariary).
    if (input.amount !== null && input.amount % step !== 0) {
      throw new ValidationError("The request is invalid.", {
        amount: `must be a multiple of ${step} for ${input.currency} (${formatDecimal(step, input.currency)} ` +
          `${input.currency}): the provider your shop's payments in ${input.currency} go to takes no other amounts`,
      });
    }
  }
  const now = ctx.now();
  const form: PaymentForm = {
    ...input,
    id: randomId("form"),
    seq: sortableId(now),
    shopId: shop.id,
    status: "active",
    createdAt: now,
    disabledAt: null,
  };
  await storeForm(ctx.kv, form, {
    at: now,
    actor: opts.actor,
    action: "form.create",
    target: form.id,
    before: null,
    after: form,
  });
  return form;
}

/** A form by the id in a path; an id of the wrong shape, or another shop's form when `shopId` is given, is not found. */
export async function findForm(ctx: AppContext, formId: string, opts: { shopId?: string } = {}) {
  if (!hasIdShape("form", formId)) throw new NotFoundError("Unknown form.");
  const entry = await getFormEntry(ctx.kv, formId);
  if (!entry.value || (opts.shopId !== undefined && entry.value.shopId !== opts.shopId)) {
    throw new NotFoundError("Unknown form.");
  }
  return entry as Deno.KvEntry<PaymentForm>;
}

/**
 * Disables a form: its page says so and its submits are refused from now on.
 * Disabling a disabled form changes nothing. `shopId` keeps a shop to its own forms.
 */
export async function disableForm(
  ctx: AppContext,
  formId: string,
  opts: { actor: string; shopId?: string },
): Promise<PaymentForm> {
  for (;;) {
    const entry = await findForm(ctx, formId, opts);
    if (entry.value.status === "disabled") return entry.value;
    const now = ctx.now();
    const next: PaymentForm = { ...entry.value, status: "disabled", disabledAt: now };
    const audit: NewAuditEntry = {
      at: now,
      actor: opts.actor,
      action: "form.disable",
      target: formId,
      before: entry.value,
      after: next,
    };
    if (await replaceForm(ctx.kv, entry, next, audit)) return next;
  }
}

/** A shop's forms newest first, or every shop's for an operator (`shopId` undefined). */
export function listForms(ctx: AppContext, shopId: string | undefined): Promise<PaymentForm[]> {
  return shopId === undefined ? listAllForms(ctx.kv) : listFormsByShop(ctx.kv, shopId);
}

/** A form and its shop for the buyer's page; `open` is false when either is disabled. */
export async function loadBuyerForm(ctx: AppContext, formId: string) {
  const form = (await findForm(ctx, formId)).value;
  const shop = await getShop(ctx.kv, form.shopId);
  if (!shop) throw new NotFoundError("Unknown form.");
  return { form, shop, open: form.status === "active" && shop.status === "active" };
}

/**
 * The payment a buyer came back from to one of a form's result pages, as it stands: our redirect names it
 * (`apay_payment`) unless the shop turned signed redirects off. Only a payment this form made counts (its result
 * pages are the form's own); anything else is null, and the page says only what it knows. Still pending, the
 * provider is asked (as a checkout's return page does, at most every few seconds per payment and within the
 * `address`'s budget): its webhook often comes after the buyer. Payment ids are unguessable, so a miss is not counted
 * as a guess.
 */
export async function findFormPayment(
  ctx: AppContext,
  form: PaymentForm,
  opts: { paymentId: string | undefined; address: string },
): Promise<Payment | null> {
  const { paymentId } = opts;
  if (!paymentId || paymentId.length > 100) return null;
  const payment = await findPayment(ctx.kv, paymentId);
  const made = payment?.shopId === form.shopId &&
    payment.successUrl === `${formUrl(form.id, ctx.config.publicBaseUrl)}/thanks`;
  if (!payment || !made) return null;
  return await recheckQuietly(ctx, payment, { by: "form.return", address: opts.address });
}

/**
 * Why each active form of these takes no payment whatever its buyer types, by form id, for the shop and its operator
 * (the buyer is told only that the form cannot take payments now): formOutOfOrder, or a fixed amount the provider the
 * shop's routes now pick for its currency cannot charge exactly. The amount is checked when a form is made, but the
 * routes may change after (a shop moved to Stripe with a 10.50 MGA form).
 */
export async function formsOutOfOrder(ctx: AppContext, forms: PaymentForm[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const steps = new Map<string, Promise<Map<string, number> | null>>();
  const stepsOf = (shopId: string) => {
    let found = steps.get(shopId);
    if (!found) {
      steps.set(shopId, found = getShop(ctx.kv, shopId).then((shop) => shop && shopFiatSteps(ctx, shop)));
    }
    return found;
  };
  for (const form of forms) {
    const reason = formOutOfOrder(form);
    if (reason) out.set(form.id, reason);
    if (reason || form.status !== "active" || form.kind !== "fiat" || !form.currency || form.amount === null) continue;
    const step = (await stepsOf(form.shopId))?.get(form.currency);
    if (step !== undefined && form.amount % step !== 0) {
      out.set(
        form.id,
        `${formatAmount(form.amount, form.currency)} cannot be charged: the provider your routes pick for ` +
          `${form.currency} takes it in steps of ${formatDecimal(step, form.currency)} ${form.currency}; disable it ` +
          `and make a new one`,
      );
    }
  }
  return out;
}
