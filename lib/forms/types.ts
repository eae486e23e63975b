/**
 * A hosted payment form (a payment link): what the merchant fixed, and so
 * what the buyer may not change. Every field left null is the buyer's to fill
 * on the form page; the rest is read from this record at submit time, never
 * from the submitted fields.
 */
export const FORM_KINDS = ["fiat", "crypto"] as const;
export type FormKind = typeof FORM_KINDS[number];

export const FORM_STATUSES = ["active", "disabled"] as const;
export type FormStatus = typeof FORM_STATUSES[number];

interface FormCommon {
  /** form_ + 128 random bits: the public link names it, so it must not be guessable from another. */
  id: string;
  /** Time-ordered, for listings newest first. */
  seq: string;
  shopId: string;
  title: string;
  description: string | null;
  status: FormStatus;
  /**
   * The shop's page the buyer goes back to from every page after the form (its result pages, its invoice's page),
   * judged when the form was made (https, the shop's allowed hosts). Absent on forms made before it existed.
   */
  returnUrl?: string | null;
  createdAt: number;
  disabledAt: number | null;
}

export interface FiatForm extends FormCommon {
  kind: "fiat";
  /** Integer minor units of `currency`; null = the buyer types it (a donation). */
  amount: number | null;
  /** ISO 4217; null = the buyer picks one of the shop's currencies. */
  currency: string | null;
}

export interface CryptoForm extends FormCommon {
  kind: "crypto";
  coin: string | null;
  network: string | null;
  /** Integer base units of the coin on its network, as a string (never a float); null = the buyer types it. */
  amount: string | null;
}

export type PaymentForm = FiatForm | CryptoForm;

/**
 * The header a buyer's form page sends its submit with when it sits in a shop's frame (islands/_client.ts): the answer
 * is then where to go next, as JSON, for the page to open as the whole window, instead of a redirect inside the frame.
 */
export const FRAMED_SUBMIT_HEADER = "x-apay-framed-submit";

/** The fields a buyer may be asked for, in page order; which of them a form asks is `openFields(form)`. */
export const BUYER_FIELDS = ["currency", "coin", "amount", "email"] as const;
export type BuyerField = typeof BUYER_FIELDS[number];

/** What the form leaves to the buyer: always the email, and every value the merchant did not fix. */
export function openFields(form: PaymentForm): BuyerField[] {
  const open: BuyerField[] = [];
  if (form.kind === "fiat" && form.currency === null) open.push("currency");
  // A coin and its network are one choice on the page ("USDT on Tron"): the pair is open if either half is.
  if (form.kind === "crypto" && (form.coin === null || form.network === null)) open.push("coin");
  if (form.amount === null) open.push("amount");
  open.push("email");
  return open;
}
