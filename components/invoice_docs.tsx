import {
  COIN_OPTIONS,
  confirmationWaitSeconds,
  FINALITY_FACTOR,
  NETWORKS,
  roughDuration,
} from "../lib/invoices/coins.ts";
import { INVOICE_STATUS_RULES, INVOICE_STATUSES } from "../lib/invoices/status.ts";

/**
 * Tables of the public Invoices page drawn from the lists the code runs on
 * (coins.ts, status.ts), so the page cannot drift from them. Used as fenced
 * blocks `invoice-coins` and `invoice-statuses` in docs/public/invoices.md.
 */
export function InvoiceCoinsTable() {
  return (
    <table>
      <thead>
        <tr>
          <th>coin</th>
          <th>network</th>
          <th>decimals</th>
          <th>confirmations (payment_accepted)</th>
          <th>usually takes</th>
          <th>final (finished)</th>
        </tr>
      </thead>
      <tbody>
        {COIN_OPTIONS.map((o) => (
          <tr key={`${o.coin}-${o.network}`}>
            <td>
              <code>{o.coin}</code> <span>({o.label})</span>
            </td>
            <td>
              <code>{o.network}</code>
            </td>
            <td>{o.decimals}</td>
            <td>{NETWORKS[o.network].confirmations}</td>
            <td>{roughDuration(confirmationWaitSeconds(o.network, 0))}</td>
            <td>{NETWORKS[o.network].confirmations * FINALITY_FACTOR}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function InvoiceStatusTable() {
  return (
    <table>
      <thead>
        <tr>
          <th>status</th>
          <th>may move to</th>
          <th>postback on entry</th>
          <th>holds its address</th>
        </tr>
      </thead>
      <tbody>
        {INVOICE_STATUSES.map((s) => {
          const rule = INVOICE_STATUS_RULES[s];
          return (
            <tr key={s}>
              <td>
                <code>{s}</code>
              </td>
              <td>
                {rule.next.length
                  ? rule.next.map((n) => <code key={n}>{n}</code>).reduce((a, b) => <>{a}, {b}</>)
                  : "nothing (final)"}
              </td>
              <td>{rule.postback ? <code>{rule.postback}</code> : "none (you created it)"}</td>
              <td>{rule.open ? "yes" : "no: it rests, then is free for the next invoice"}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
