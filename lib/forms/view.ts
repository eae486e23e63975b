import { currencyRefusal, isCurrency } from "../money.ts";
import { findCoinChoice, formatCryptoAmount } from "./crypto.ts";
import { formUrl } from "./mod.ts";
import type { PaymentForm } from "./types.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A form as the API shows it: what is fixed (null = the buyer fills it), and its link. */
export function formView(form: PaymentForm, publicBaseUrl: string) {
  const common = {
    id: form.id,
    url: formUrl(form.id, publicBaseUrl),
    kind: form.kind,
    title: form.title,
    description: form.description,
    status: form.status,
    returnUrl: form.returnUrl ?? null,
    createdAt: iso(form.createdAt)!,
    disabledAt: iso(form.disabledAt),
  };
  if (form.kind === "fiat") {
    return { ...common, amount: form.amount, currency: form.currency, coin: null, network: null };
  }
  const decimals = form.coin && form.network ? findCoinChoice(form.coin, form.network)?.decimals : undefined;
  return {
    ...common,
    amount: form.amount !== null && decimals !== undefined ? formatCryptoAmount(form.amount, decimals) : null,
    currency: null,
    coin: form.coin,
    network: form.network,
  };
}

/**
 * Why an active form takes no payment whatever its buyer types, and what to do, for the shop and its operator; null
 * when nothing in the form itself stops it. A fixed currency is checked when a form is made, but one made in a fund
 * code before those were refused keeps it, and every submit is refused (503) with only "cannot take payments right
 * now" for the buyer, who must learn nothing of the shop's set-up: the forms list says why instead.
 */
export function formOutOfOrder(form: PaymentForm): string | null {
  if (form.status !== "active" || form.kind !== "fiat" || form.currency === null || isCurrency(form.currency)) {
    return null;
  }
  return `${form.currency} ${currencyRefusal(form.currency)}; disable it and make a new one`;
}
