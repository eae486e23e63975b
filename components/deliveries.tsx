import type { Delivery } from "../lib/relay/types.ts";
import { CsrfField, formatTime } from "./admin_layout.tsx";

/**
 * Postbacks needing attention, for the console and the portal. `resendAction`
 * adds a Resend button per row (a form posting the payment id).
 */
export function DeliveryTable(
  props: { deliveries: Delivery[]; paymentBase: string; resendAction?: string; csrf: string },
) {
  if (props.deliveries.length === 0) return <p>Nothing failing.</p>;
  return (
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th>Updated</th>
            <th>Payment</th>
            <th>Event</th>
            <th>Status</th>
            <th>Attempts</th>
            <th>Last error</th>
            {props.resendAction && <th></th>}
          </tr>
        </thead>
        <tbody>
          {props.deliveries.map((d) => (
            <tr key={d.id}>
              <td>{formatTime(d.updatedAt)}</td>
              <td>
                <a href={`${props.paymentBase}/${d.paymentId}`}>
                  <code>{d.paymentId}</code>
                </a>
              </td>
              <td>{d.eventType}</td>
              <td class={d.status === "failed" ? "bad" : ""}>{d.status === "pending" ? "retrying" : d.status}</td>
              <td class="num">{d.attempts}</td>
              <td>{d.lastStatusCode ?? ""} {d.lastError ?? ""}</td>
              {props.resendAction && (
                <td>
                  <form method="post" action={props.resendAction} class="inline">
                    <CsrfField token={props.csrf} />
                    <input type="hidden" name="paymentId" value={d.paymentId} />
                    <button type="submit" class="small">Resend</button>
                  </form>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
