import { Page } from "./html.tsx";

/**
 * What a buyer reads when a link to one of their pages names nothing: what happened and what to do, in their words
 * (as the payment's "Payment not found" page says it), never the API's "Unknown invoice.". Such a link came from a
 * shop, often by mail, where links get cut short; an invoice's adds that nothing should be sent without its page,
 * since its address is given to another buyer's invoice once it is free again.
 */
export const BUYER_NOT_FOUND = {
  form: {
    title: "Payment form not found",
    text: "We could not find this payment form. Check that you opened the whole link the shop gave you (links in " +
      "emails are sometimes cut short). If it is complete, go back to the shop's site for its current link.",
  },
  invoice: {
    title: "Invoice not found",
    text: "We could not find this invoice. Check that you opened the whole link the shop gave you (links in emails " +
      "are sometimes cut short). Do not send any money without a page that shows your invoice; if the link is " +
      "complete, ask the shop for a new one.",
  },
} as const;

interface Link {
  href: string;
  label: string;
}

/**
 * A friendly page for buyers and operators when something is missing or wrong. `link` is what to do next (a button);
 * `back` the buyer's way back to the shop's own site (a plain link under it).
 */
export function MessagePage(props: { title: string; text: string; link?: Link; back?: Link }) {
  return (
    <Page title={`${props.title} · AimbrellaPay`}>
      <h1>{props.title}</h1>
      <p>{props.text}</p>
      {props.link && (
        <p>
          <a class="button" href={props.link.href}>{props.link.label}</a>
        </p>
      )}
      {props.back && (
        <p>
          <a href={props.back.href}>{props.back.label}</a>
        </p>
      )}
    </Page>
  );
}

/** A buyer's way back to a shop from one of our pages: the shop's own URL (checked when stored), named after it. */
export function backToShop(url: string | null | undefined, shopName: string): Link | undefined {
  return url ? { href: url, label: `Back to ${shopName}` } : undefined;
}
