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
