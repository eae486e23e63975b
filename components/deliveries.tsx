import { hasIdShape } from "../lib/ids.ts";
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
 * Postbacks needing attention, for the console and the portal, each row with a Resend button (a form posting
 * to `resendAction` the ids of the payment, or invoice, and of the postback); `shopNames`
 * (the operators' scope) adds a Shop column.
 */
export function DeliveryTable(
  props: {
    deliveries: Delivery[];
    paymentBase: string;
    resendAction: string;
    csrf: string;
    shopNames?: Map<string, string>;
  },
) {
  if (props.deliveries.length === 0) return <p>No postback is retrying or failed.</p>;
  return (
    <div class="table-wrap">
      <table class="stack-phone">
        <thead>
          <tr>
            <th>Updated</th>
            <th>Payment</th>
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
          {props.deliveries.map((d) => (
            <tr key={d.id}>
              <td data-label="Updated">{formatTime(d.updatedAt)}</td>
              <td data-label="Payment">
                <a href={`${subjectBase(props.paymentBase, d.paymentId)}/${d.paymentId}`}>
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
              <td data-label="Next retry">
                {d.status === "pending" ? formatTime(d.nextAttemptAt) : "none: gave up, resend to try again"}
              </td>
              <td class="row-actions">
                <form method="post" action={props.resendAction} class="inline" data-busy="Resending…">
                  <CsrfField token={props.csrf} />
                  <input type="hidden" name="paymentId" value={d.paymentId} />
                  <input type="hidden" name="deliveryId" value={d.id} />
                  <button type="submit" class="small">Resend</button>
                </form>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Where a delivery's subject is shown: its payment's page, or its invoice's (invoice postbacks ride the same relay). */
function subjectBase(paymentBase: string, id: string): string {
  return hasIdShape("invoice", id) ? paymentBase.replace(/\/payments$/, "/invoices") : paymentBase;
}
