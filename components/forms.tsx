import type { ComponentChildren } from "preact";
import { Page } from "./html.tsx";
import { Island } from "./island.tsx";
import { backToShop, MessagePage } from "./message_page.tsx";
import type { Payment } from "../lib/payments/types.ts";
import { CsrfField, DestructiveButton, formatTime } from "./admin_layout.tsx";
import { currencyExponent, currencyName, formatAmount } from "../lib/money.ts";
import type { Shop } from "../lib/db/shops.ts";
import { type CoinChoice, findCoinChoice, formatCryptoAmount } from "../lib/forms/crypto.ts";
import { coinChoiceValue } from "../lib/forms/submit.ts";
import { MAX_DESCRIPTION_LENGTH, MAX_TITLE_LENGTH } from "../lib/forms/schema.ts";
import { openFields, type PaymentForm } from "../lib/forms/types.ts";
import { amountExample, type BuyerInput } from "../lib/forms/submit.ts";

/** "10.00 EUR", "12.5 USDT on tron", or null when the buyer types the amount. */
export function fixedAmountText(form: PaymentForm): string | null {
  if (form.amount === null) return null;
  if (form.kind === "fiat") return form.currency ? formatAmount(form.amount, form.currency) : null;
  const choice = form.coin && form.network ? findCoinChoice(form.coin, form.network) : undefined;
  return choice ? `${formatCryptoAmount(form.amount, choice.decimals)} ${choice.coin}` : null;
}

function coinLabel(c: CoinChoice) {
  return `${c.coin} · ${c.label}`;
}

/** "EUR · Euro": the code first, so typing it in the list finds it, and the name, for a buyer who knows only that. */
function currencyLabel(code: string) {
  return `${code} · ${currencyName(code)}`;
}

/** A labelled control with its error (or hint) beside it, wired for screen readers. */
function BuyerField(
  props: { name: string; label: string; error?: string; hint?: string; children: (a: FieldAria) => ComponentChildren },
) {
  const id = `f-${props.name}`;
  const describedBy = props.error ? `${id}-error` : props.hint ? `${id}-hint` : undefined;
  return (
    <div class={props.error ? "field invalid" : "field"}>
      <label for={id}>{props.label}</label>
      {props.children({ id, "aria-invalid": props.error ? "true" : undefined, "aria-describedby": describedBy })}
      {props.hint && !props.error && <small id={`${id}-hint`} class="muted">{props.hint}</small>}
      {props.error && <small id={`${id}-error`} class="error">{props.error}</small>}
    </div>
  );
}

type FieldAria = { id: string; "aria-invalid"?: "true"; "aria-describedby"?: string };

/**
 * The buyer's page of a form: what the merchant fixed, as text, and inputs
 * only for what it left open, plus the email. A plain post (no script needed);
 * `target="_top"` so that, in a shop's iframe, the payment opens as the whole
 * page rather than inside the frame. With script, a framed page sends it
 * itself (data-framed-submit, islands/_client.ts), so that mistakes come back
 * inside the frame.
 */
export function BuyerFormPage(props: {
  form: PaymentForm;
  shopName: string;
  token: string;
  values: BuyerInput;
  errors?: Record<string, string>;
  message?: string;
  currencies: string[];
  coins: CoinChoice[];
  /** The step (minor units) the shop's provider takes a fixed currency's amounts in, for the amount's hint. */
  amountStep?: number;
}) {
  const { form, values, errors = {} } = props;
  const open = new Set(openFields(form));
  const fixedAmount = fixedAmountText(form);
  const fixedCoin = form.kind === "crypto" && !open.has("coin") ? props.coins[0] : undefined;
  const unit = form.kind === "fiat" ? form.currency : fixedCoin?.coin;
  const decimals = form.kind === "fiat"
    ? (form.currency ? currencyExponent(form.currency) : 2)
    : (fixedCoin?.decimals ?? 8);
  return (
    // The tab's title is what a screen reader reads first on the page that came back: it says something went wrong.
    <Page title={`${props.message ? "Error: " : ""}${form.title} · ${props.shopName}`} script>
      <p class="muted">{props.shopName}</p>
      <h1>{form.title}</h1>
      {form.description && <p>{form.description}</p>}
      {props.message && <p class="flash bad" role="alert">{props.message}</p>}
      {(fixedAmount || fixedCoin || (form.kind === "fiat" && form.currency)) && (
        <dl class="fields buyer-fixed">
          {fixedAmount && (
            <>
              <dt>Amount</dt>
              <dd>{fixedAmount}</dd>
            </>
          )}
          {!fixedAmount && form.kind === "fiat" && form.currency && (
            <>
              <dt>Currency</dt>
              <dd>{currencyLabel(form.currency)}</dd>
            </>
          )}
          {fixedCoin && (
            <>
              <dt>Pay with</dt>
              <dd>{coinLabel(fixedCoin)}</dd>
            </>
          )}
        </dl>
      )}
      <form
        method="post"
        action={`/forms/${form.id}/submit`}
        target="_top"
        class="stack narrow"
        data-busy="Sending…"
        data-framed-submit
        novalidate
      >
        <input type="hidden" name="_token" value={props.token} />
        {open.has("currency") && (
          <BuyerField name="currency" label="Currency" error={errors.currency}>
            {(a) => (
              <select {...a} name="currency" required>
                <option value="">Choose…</option>
                {props.currencies.map((c) => (
                  <option key={c} value={c} selected={values.currency === c}>{currencyLabel(c)}</option>
                ))}
              </select>
            )}
          </BuyerField>
        )}
        {open.has("coin") && (
          <BuyerField name="coin" label="Pay with" error={errors.coin}>
            {(a) => (
              <select {...a} name="coin" required>
                <option value="">Choose…</option>
                {props.coins.map((c) => (
                  <option
                    key={coinChoiceValue(c)}
                    value={coinChoiceValue(c)}
                    selected={values.coin === coinChoiceValue(c)}
                  >
                    {coinLabel(c)}
                  </option>
                ))}
              </select>
            )}
          </BuyerField>
        )}
        {open.has("amount") && (
          <BuyerField
            name="amount"
            label={unit ? `Amount (${unit})` : "Amount"}
            error={errors.amount}
            hint={form.kind === "fiat" && form.currency
              ? `For example ${amountExample(form.currency, props.amountStep)}`
              : decimals
              ? "For example 10 or 10.5"
              : "For example 10"}
          >
            {(a) => (
              <input
                {...a}
                name="amount"
                type="text"
                inputMode="decimal"
                autocomplete="off"
                required
                value={values.amount ?? ""}
              />
            )}
          </BuyerField>
        )}
        <BuyerField
          name="email"
          label="Your email"
          error={errors.email}
          hint="For the receipt and if something goes wrong."
        >
          {(a) => <input {...a} name="email" type="email" autocomplete="email" required value={values.email ?? ""} />}
        </BuyerField>
        <button type="submit">{form.kind === "fiat" ? "Continue to payment" : "Get the payment address"}</button>
      </form>
    </Page>
  );
}

/** The forms of the scope with their links and a disable button; an operator's list names each form's shop. */
export function FormsList(
  props: {
    forms: PaymentForm[];
    /** Why each form out of order is, by id (lib/forms/mod.ts: formsOutOfOrder). */
    outOfOrder: Map<string, string>;
    basePath: string;
    csrf: string;
    publicBaseUrl: string;
    shopNames?: Map<string, string>;
  },
) {
  if (props.forms.length === 0) return <p>No forms yet.</p>;
  return (
    <div class="table-wrap">
      <table class="stack-phone">
        <thead>
          <tr>
            <th>Created</th>
            <th>Title</th>
            {props.shopNames && <th>Shop</th>}
            <th>Kind</th>
            <th>Amount</th>
            <th>Link</th>
            <th>Status</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {props.forms.map((f) => (
            <tr key={f.id}>
              <td data-label="Created">{formatTime(f.createdAt)}</td>
              <td data-label="Title">{f.title}</td>
              {props.shopNames && (
                <td data-label="Shop">
                  <a href={`/admin/shops/${f.shopId}`}>{props.shopNames.get(f.shopId) ?? f.shopId}</a>
                </td>
              )}
              <td data-label="Kind">{f.kind}</td>
              <td data-label="Amount">{fixedAmountText(f) ?? "the buyer types it"}</td>
              <td data-label="Link">
                <a href={`${props.publicBaseUrl}/forms/${f.id}`}>
                  <code>{f.id}</code>
                </a>
              </td>
              <td data-label="Status">{formStatus(f, props.outOfOrder.get(f.id))}</td>
              <td class="row-actions">
                {f.status === "active" && (
                  <form
                    method="post"
                    action={`${props.basePath}/${f.id}/disable`}
                    class="inline"
                    data-confirm={`Disable the form "${f.title}"? Its page stops taking payments at once.`}
                  >
                    <CsrfField token={props.csrf} />
                    <DestructiveButton small>Disable</DestructiveButton>
                  </form>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** A form's status in the list: active, out of order (and why: see formsOutOfOrder), or disabled since when. */
function formStatus(f: PaymentForm, outOfOrder: string | undefined) {
  if (f.status !== "active") return `disabled ${formatTime(f.disabledAt)}`;
  return outOfOrder ? <strong class="bad">out of order: {outOfOrder}</strong> : "active";
}

/** The create form of the console and the portal; the console also picks the shop. */
export function NewFormCard(props: {
  action: string;
  csrf: string;
  coins: readonly CoinChoice[];
  values?: Record<string, string>;
  errors?: Record<string, string>;
  shops?: Shop[];
}) {
  const v = props.values ?? {};
  const e = props.errors ?? {};
  const coins = [...new Set(props.coins.map((c) => c.coin))];
  const networks = [...new Set(props.coins.map((c) => c.network))];
  const text = (name: string, label: string, hint?: string, max?: number) => (
    <BuyerField name={name} label={label} error={e[name]} hint={hint}>
      {(a) => <input {...a} name={name} type="text" maxLength={max} value={v[name] ?? ""} />}
    </BuyerField>
  );
  return (
    <section class="card">
      <h2>New form</h2>
      <p class="muted">
        Fill in what you fix; leave a field empty and the buyer fills it (for a donation, the amount).
      </p>
      <form method="post" action={props.action} class="stack narrow" data-busy="Creating…">
        <CsrfField token={props.csrf} />
        {props.shops && (
          <BuyerField name="shopId" label="Shop" error={e.shopId}>
            {(a) => (
              <select {...a} name="shopId" required>
                {props.shops!.map((s) => (
                  <option key={s.id} value={s.id} selected={v.shopId === s.id}>{s.name}</option>
                ))}
              </select>
            )}
          </BuyerField>
        )}
        <BuyerField name="kind" label="Kind" error={e.kind}>
          {(a) => (
            <select {...a} name="kind">
              <option value="fiat" selected={v.kind !== "crypto"}>Fiat (card payment)</option>
              <option value="crypto" selected={v.kind === "crypto"}>Crypto (invoice)</option>
            </select>
          )}
        </BuyerField>
        {text("title", "Title", "The heading the buyer reads.", MAX_TITLE_LENGTH)}
        <BuyerField name="description" label="Description (optional)" error={e.description}>
          {(a) => (
            <textarea {...a} name="description" rows={3} maxLength={MAX_DESCRIPTION_LENGTH}>
              {v.description ?? ""}
            </textarea>
          )}
        </BuyerField>
        {text("amount", "Amount (optional)", "In major units, e.g. 10.50. Empty: the buyer types it.")}
        {text("currency", "Currency, fiat (optional)", "e.g. EUR. Empty: the buyer picks one of the shop's.")}
        <BuyerField name="coin" label="Coin, crypto (optional)" error={e.coin}>
          {(a) => (
            <select {...a} name="coin">
              <option value="">The buyer picks</option>
              {coins.map((c) => <option key={c} value={c} selected={v.coin === c}>{c}</option>)}
            </select>
          )}
        </BuyerField>
        <BuyerField name="network" label="Network, crypto (optional)" error={e.network}>
          {(a) => (
            <select {...a} name="network">
              <option value="">The buyer picks</option>
              {networks.map((n) => <option key={n} value={n} selected={v.network === n}>{n}</option>)}
            </select>
          )}
        </BuyerField>
        <BuyerField
          name="returnUrl"
          label="Return URL (optional)"
          error={e.returnUrl}
          hint="Your page the buyer goes back to after paying; https, on the shop's allowed hosts."
        >
          {(a) => <input {...a} name="returnUrl" type="url" maxLength={2048} value={v.returnUrl ?? ""} />}
        </BuyerField>
        <button type="submit">Create form</button>
      </form>
    </section>
  );
}

/** How to put a form on a site, with its link: shown after creating one. */
export function EmbedSnippet(props: { url: string }) {
  const iframe = `<iframe src="${props.url}" title="Payment form" width="100%" height="600"></iframe>`;
  return (
    <div class="card">
      <p>
        Link: <code>{props.url}</code> <Island name="CopyButton" props={{ text: props.url, label: "Copy link" }} />
      </p>
      <p>Or show it on your site (the site must be listed under the shop's embedding sites):</p>
      <pre class="snippet"><code>{iframe}</code></pre>
      <Island name="CopyButton" props={{ text: iframe, label: "Copy iframe code" }} />
    </div>
  );
}

/**
 * A form's page for a buyer back from the payment provider: its thank-you page (`thanks`) or its try-again page
 * (`not-paid`). Which one the provider sent the buyer to is only its word, and anyone may open either: the page tells
 * the payment's status as we know it when it knows the payment, and otherwise only what is true without it.
 */
export function FormReturnPage(props: {
  shopName: string;
  landed: "thanks" | "not-paid";
  payment: Payment | null;
  /** The form's page, to pay again; null when the form no longer takes payments. */
  retryHref: string | null;
  /** This page again, for a payment still being confirmed. */
  checkHref: string;
  /** The form's way back to the shop's site, if it has one. */
  returnUrl: string | null;
}) {
  const { shopName, payment } = props;
  const back = backToShop(props.returnUrl, shopName);
  const retry = props.retryHref ? { href: props.retryHref, label: "Try again" } : undefined;
  if (!payment) {
    return props.landed === "thanks"
      ? (
        <MessagePage
          back={back}
          title="Thank you"
          text={`You are back from the payment page. ${shopName} confirms your payment once the payment provider ` +
            `has told it the outcome. You can close this page.`}
        />
      )
      : (
        <MessagePage
          back={back}
          title="The payment did not go through"
          // Only the provider's word, which we have not checked: nothing more is claimed.
          text={`The payment page sent you back without completing the payment. You can try again.`}
          link={retry}
        />
      );
  }
  const amount = formatAmount(payment.amount, payment.currency);
  switch (payment.status) {
    case "pending":
      return (
        <MessagePage
          back={back}
          title="Your payment is being confirmed"
          text={`The payment provider has not told us the outcome of your payment of ${amount} to ${shopName} yet. ` +
            `${shopName} sees it as soon as it does. You can close this page, or check again in a moment.`}
          link={{ href: props.checkHref, label: "Check again" }}
        />
      );
    case "succeeded":
      return (
        <MessagePage
          back={back}
          title="Thank you"
          text={`Your payment of ${amount} to ${shopName} has been received. You can close this page.`}
        />
      );
    case "partially_refunded":
    case "refunded":
      return (
        <MessagePage
          back={back}
          title="Payment received"
          text={`Your payment of ${amount} to ${shopName} was received, and ${shopName} has refunded ` +
            `${payment.status === "refunded" ? "it" : "part of it"}.`}
        />
      );
    case "failed":
      return (
        <MessagePage
          back={back}
          title="The payment did not go through"
          text={`Your payment of ${amount} was declined. Nothing was charged by ${shopName}.`}
          link={retry}
        />
      );
    case "expired":
    case "cancelled":
      return (
        <MessagePage
          back={back}
          title="The payment was not completed"
          // A payment we gave up on can still succeed if the provider confirms money later (the status table allows
          // it), so the page does not say nothing was charged.
          text={`Your payment of ${amount} to ${shopName} ${
            payment.status === "expired" ? "expired before it was paid" : "was cancelled"
          }. If money did leave your account, ${shopName} sees it once the payment provider confirms it.`}
          link={retry}
        />
      );
  }
}
