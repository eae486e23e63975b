import { hasIdShape } from "../lib/ids.ts";
import { attemptUnderWay } from "../lib/db/deliveries.ts";
import type { Delivery } from "../lib/relay/types.ts";
import { CsrfField, formatTime } from "./admin_layout.tsx";

/**
 * A postback's state in the one set of words both audiences see: a pending
 * postback that already failed once is "retrying" (never "failing").
 */
export function deliveryStatusLabel(d: Pick<Delivery, "status" | "attempts">): string {
  return d.status === "pending" ? (d.attempts > 0 ? "retrying" : "queued") : d.status;
}

/** A count of postbacks needing attention, "1,234+" when it was taken over the newest only (see AttentionCounts). */
export function attentionCount(n: number, more: boolean): string {
  return `${n.toLocaleString("en-US")}${more ? "+" : ""}`;
}

/** The last attempt's outcome in plain words: "HTTP 500", "connection refused". */
export function lastAttemptText(d: Pick<Delivery, "lastStatusCode" | "lastError">): string {
  if (d.lastError) return d.lastError;
  return d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : "";
}

/**
 * When a postback is tried next, as of `now` (the page's making): a time, or that it is being sent or due now (a
 * replay or a resend just brought it forward: its status and last error are still those of the attempt before).
 */
function nextTryText(d: Delivery, now: number): string {
  if (d.status !== "pending") return "none: gave up, resend to try again";
  if (attemptUnderWay(d, now)) return "being sent now";
  return d.nextAttemptAt <= now ? "due now" : formatTime(d.nextAttemptAt);
}

/** What a postback is about and where that is shown: its payment's page, or its invoice's (same relay, same list). */
function postbackSubject(paymentBase: string, id: string): { kind: "Payment" | "Invoice"; href: string } {
  return hasIdShape("invoice", id)
    ? { kind: "Invoice", href: `${paymentBase.replace(/\/payments$/, "/invoices")}/${id}` }
    : { kind: "Payment", href: `${paymentBase}/${id}` };
}

/**
 * Postbacks needing attention, for the console and the portal, each row with a Resend button (a form posting
 * to `resendAction` the ids of the payment, or invoice, and of the postback); `shopNames`
 * (the operators' scope) adds a Shop column. `now` is when the list was read, for what is due.
 */
export function DeliveryTable(
  props: {
    deliveries: Delivery[];
    paymentBase: string;
    resendAction: string;
    csrf: string;
    now: number;
    shopNames?: Map<string, string>;
  },
) {
  if (props.deliveries.length === 0) return <p>No postback is retrying or failed.</p>;
  const kinds = new Set(props.deliveries.map((d) => postbackSubject(props.paymentBase, d.paymentId).kind));
  // Named for what the column holds: payments, invoices, or both.
  const subjectHeading = kinds.size === 2 ? "Payment or invoice" : [...kinds][0];
  return (
    <div class="table-wrap">
      <table class="stack-phone">
        <thead>
          <tr>
            <th>Updated</th>
            <th>{subjectHeading}</th>
            {props.shopNames && <th>Shop</th>}
            <th>Event</th>
            <th>Status</th>
            <th>Attempts</th>
            <th>Last error</th>
            <th>Next retry</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {props.deliveries.map((d) => {
            const subject = postbackSubject(props.paymentBase, d.paymentId);
            return (
              <tr key={d.id}>
                <td data-label="Updated">{formatTime(d.updatedAt)}</td>
                <td data-label={subject.kind}>
                  <a href={subject.href}>
                    <code>{d.paymentId}</code>
                  </a>
                </td>
                {props.shopNames && (
                  <td data-label="Shop">
                    <a href={`/admin/shops/${d.shopId}`}>{props.shopNames.get(d.shopId) ?? d.shopId}</a>
                  </td>
                )}
                <td data-label="Event">{d.eventType}</td>
                <td data-label="Status" class={d.status === "failed" ? "bad" : ""}>{deliveryStatusLabel(d)}</td>
                <td data-label="Attempts" class="num">{d.attempts}</td>
                <td data-label="Last error">{lastAttemptText(d)}</td>
                <td data-label="Next retry">{nextTryText(d, props.now)}</td>
                <td class="row-actions">
                  <form method="post" action={props.resendAction} class="inline" data-busy="Resending…">
                    <CsrfField token={props.csrf} />
                    <input type="hidden" name="paymentId" value={d.paymentId} />
                    <input type="hidden" name="deliveryId" value={d.id} />
                    <button type="submit" class="small">Resend</button>
                  </form>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
