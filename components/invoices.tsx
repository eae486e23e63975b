import type { ComponentChildren } from "preact";
import type { Shop } from "../lib/db/shops.ts";
import type { InvoiceInfo, PoolNetwork } from "../lib/invoices/admin.ts";
import { formatBaseUnits } from "../lib/invoices/amounts.ts";
import { NETWORKS, roughDuration } from "../lib/invoices/coins.ts";
import { INVOICE_STATUS_RULES } from "../lib/invoices/status.ts";
import { hasLateMoney, type Invoice, type InvoiceDeposit, otherCoinDepositsOf } from "../lib/invoices/types.ts";
import { invoiceTotals, otherCoinDepositsView } from "../lib/invoices/view.ts";
import { CsrfField, DestructiveButton, formatTime } from "./admin_layout.tsx";
import { deliveryStatusLabel } from "./deliveries.tsx";
import { timeline } from "./payments.tsx";

/** Invoices list, address pool and detail, shared by the operator console and the shop portal. */
export function InvoicesList(props: {
  invoices: Invoice[];
  pool?: PoolNetwork[];
  shops?: Shop[];
  shopId: string | null;
  /** Only invoices holding late money are listed (`late=1`). */
  lateMoney: boolean;
  basePath: string;
}) {
  return (
    <>
      <form method="get" action={props.basePath} class="filters" role="search">
        {props.shops && (
          <label>
            Shop
            <select name="shopId">
              <option value="">All shops</option>
              {props.shops.map((s) => (
                <option key={s.id} value={s.id} selected={props.shopId === s.id}>{s.name}</option>
              ))}
            </select>
          </label>
        )}
        <label class="check">
          <input type="checkbox" name="late" value="1" checked={props.lateMoney} /> Only those with late money
        </label>
        <button type="submit" class="secondary">Show</button>
      </form>
      {props.pool && <PoolView pool={props.pool} />}
      <h2>{props.lateMoney ? "Invoices with late money" : "Invoices"}</h2>
      {props.lateMoney && (
        <p class="muted">
          Money that reached an invoice's address after the invoice closed (or after its expiry): counted in nothing,
          shown on the invoice, and sent to the shop as <code>invoice.late_payment</code>{" "}
          once confirmed. The shop decides with the buyer what to do with it (ship, or send it back).
        </p>
      )}
      {props.invoices.length === 0
        ? <p class="muted">{props.lateMoney ? "None." : "No invoices yet."}</p>
        : (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Created</th>
                  <th>Invoice</th>
                  <th>Status</th>
                  <th class="num">Amount</th>
                  <th class="num">Received</th>
                  <th>Address</th>
                </tr>
              </thead>
              <tbody>
                {props.invoices.map((inv) => {
                  const t = invoiceTotals(inv);
                  return (
                    <tr key={inv.id}>
                      <td>{formatTime(inv.createdAt)}</td>
                      <td>
                        <a href={`${props.basePath}/${inv.id}`}>{inv.shopInvoiceId ?? inv.id}</a>
                        {inv.title && <div class="muted small">{inv.title}</div>}
                      </td>
                      <td>
                        {inv.status}
                        {hasLateMoney(inv) && " · "}
                        {hasLateMoney(inv) && <strong class="bad">late money</strong>}
                        {otherCoinDepositsOf(inv).length > 0 && " · "}
                        {otherCoinDepositsOf(inv).length > 0 && <strong class="bad">other coin</strong>}
                      </td>
                      <td class="num">{formatBaseUnits(inv.amount, inv.decimals)} {inv.coin}</td>
                      <td class="num">{formatBaseUnits(t.paid, inv.decimals)}</td>
                      <td>
                        <code class="small">{inv.address}</code>
                        <div class="muted small">{NETWORKS[inv.network].label}</div>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
    </>
  );
}

/** The shop's deposit addresses by network: free ones are given to the next invoice, in-use ones are held. */
export function PoolView({ pool }: { pool: PoolNetwork[] }) {
  return (
    <>
      <h2>Deposit addresses</h2>
      {pool.length === 0
        ? <p class="muted">None yet: the first invoice on a network creates one.</p>
        : (
          <div class="grid2">
            {pool.map((p) => (
              <section class="card" key={p.network} aria-label={`${NETWORKS[p.network].label} addresses`}>
                <h3>{NETWORKS[p.network].label}</h3>
                <p>
                  <strong data-pool-free={p.network}>{p.free.length}</strong> free ·{" "}
                  <strong data-pool-resting={p.network}>{p.resting.length}</strong> resting ·{" "}
                  <strong data-pool-in-use={p.network}>{p.inUse.length}</strong> in use
                  {p.retired.length > 0 && (
                    <>
                      {" "}· <strong data-pool-retired={p.network}>{p.retired.length}</strong> retired
                    </>
                  )}
                </p>
                <details>
                  <summary>Addresses</summary>
                  <ul class="small">
                    {[...p.inUse, ...p.resting, ...p.free, ...p.retired].slice(0, 200).map((a) => (
                      <li key={a.address}>
                        <code>{a.address}</code> {a.heldBy
                          ? <>held by {a.heldBy}</>
                          : p.resting.includes(a)
                          ? <>resting until {formatTime(a.readyAt!)} (late money stays its last invoice's)</>
                          : p.retired.includes(a)
                          ? <>retired: too many transfers there to read (late money stays its last invoice's)</>
                          : <span class="ok">free</span>}
                        <span class="muted">· used {a.uses}×</span>
                      </li>
                    ))}
                  </ul>
                </details>
              </section>
            ))}
          </div>
        )}
    </>
  );
}

/** Asked before an operator cancels an invoice: by the page's script, or else by a page of its own. */
export function cancelInvoiceQuestion(addressRestMs: number, inv: Pick<Invoice, "addressWorn">): string {
  return `Cancel this invoice? Its address ${
    addressAfterCancel(addressRestMs, inv)
  }; later deposits are recorded as late.`;
}

/**
 * What becomes of a cancelled invoice's address: retired when the chain showed it too many transfers (Invoice.
 * addressWorn), or else back to the pool after the rest INVOICE_ADDRESS_REST_S sets (the config's addressRestMs).
 */
export function addressAfterCancel(addressRestMs: number, inv: Pick<Invoice, "addressWorn">): string {
  if (inv.addressWorn) return "leaves the pool for good (too many transfers there for the chain's answer)";
  if (addressRestMs <= 0) return "goes back to the pool at once";
  const days = addressRestMs / 86_400_000;
  const rest = days === 1 ? "a day" : Number.isInteger(days) ? `${days} days` : roughDuration(addressRestMs / 1000);
  return `rests ${rest}, then goes back to the pool`;
}

export function InvoiceDetail(
  props: InvoiceInfo & {
    csrf: string;
    basePath: string;
    canCancel: boolean;
    /** How long a freed address rests (INVOICE_ADDRESS_REST_S), for the question before a cancel. */
    addressRestMs: number;
    /** The operators' scope: where shops' pages are (`/admin/shops`), so the shop's name links to its page. */
    shopBase?: string;
    /** The operators' scope: the timeline names the operator behind an entry (see timeline). */
    nameOperators?: boolean;
  },
) {
  const inv = props.invoice;
  const t = invoiceTotals(inv);
  const fmt = (v: bigint | string) => `${formatBaseUnits(v, inv.decimals)} ${inv.coin}`;
  // By name, as every list shows it; a shop gone since by its id.
  const shop = props.shopName ?? inv.shopId;
  const fields: [string, ComponentChildren][] = [
    ["Invoice id", inv.id],
    ["Shop", props.shopBase ? <a key="shop" href={`${props.shopBase}/${inv.shopId}`}>{shop}</a> : shop],
    ["Shop's id", inv.shopInvoiceId],
    ["Buyer's email", inv.email ?? null],
    ["Status", inv.status],
    ["Amount", fmt(inv.amount)],
    ["Received", fmt(t.paid)],
    ["On its way", t.pending ? fmt(t.pending) : null],
    ["Overpaid", t.overpaid ? fmt(t.overpaid) : null],
    ["Late (after it closed)", t.late ? fmt(t.late) : null],
    ["Dropped by the chain", t.dropped ? fmt(t.dropped) : null],
    ["Network", `${NETWORKS[inv.network].label} (${NETWORKS[inv.network].confirmations} confirmations)`],
    ["Address", inv.address],
    ["Title", inv.title || null],
    ["Postback URL", inv.postbackUrl],
    ["Created", formatTime(inv.createdAt)],
    ["Updated", formatTime(inv.updatedAt)],
    ["Expires", formatTime(inv.expiresAt)],
    ["Closed", formatTime(inv.closedAt)],
    ["Next poll", inv.checkAt ? formatTime(inv.checkAt) : null],
  ];
  return (
    <>
      <dl class="fields">
        {fields.map(([k, v]) => [<dt key={k + "t"}>{k}</dt>, <dd key={k + "d"}>{v ?? "—"}</dd>])}
      </dl>
      <div class="actions">
        <a class="button secondary" href={`/invoices/${inv.id}`}>Buyer's page</a>{" "}
        {props.canCancel && INVOICE_STATUS_RULES[inv.status].cancellable && (
          <form
            method="post"
            action={`${props.basePath}/${inv.id}/cancel`}
            class="inline"
            data-confirm={cancelInvoiceQuestion(props.addressRestMs, inv)}
            data-busy="Cancelling…"
          >
            <CsrfField token={props.csrf} />
            <DestructiveButton>Cancel invoice</DestructiveButton>
          </form>
        )}
      </div>
      <h2>Deposits</h2>
      {inv.deposits.length === 0 ? <p class="muted">None yet.</p> : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Seen</th>
                <th>Transaction</th>
                <th class="num">Amount</th>
                <th class="num">Confirmations</th>
                <th>Counted</th>
              </tr>
            </thead>
            <tbody>
              {inv.deposits.map((d) => (
                <tr key={d.txid}>
                  <td>{formatTime(d.seenAt)}</td>
                  <td>
                    <code class="small">{d.txid}</code>
                  </td>
                  <td class="num">{fmt(d.amount)}</td>
                  <td class="num">{d.confirmations}</td>
                  <td>{depositCounted(d)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {otherCoinDepositsOf(inv).length > 0 && <OtherCoins invoice={inv} />}
      <h2>Postbacks</h2>
      {props.deliveries.length === 0
        ? <p class="muted">{inv.postbackUrl ? "None yet." : "None: no postback URL for this invoice."}</p>
        : props.deliveries.map((d) => (
          <p key={d.id}>
            <code>{d.id}</code> {d.eventType} → {d.url}:{" "}
            <strong class={d.status === "delivered" ? "ok" : "bad"}>{deliveryStatusLabel(d)}</strong> after {d.attempts}
            {" "}
            attempt{d.attempts === 1 ? "" : "s"}
          </p>
        ))}
      <h2>Timeline</h2>
      <ol class="timeline">
        {timeline(props, { namePostbacks: true, nameOperators: props.nameOperators }).map((item, i) => (
          <li key={i}>
            <time>{formatTime(item.at)}</time> <strong>{item.what}</strong> <span class="muted">{item.detail}</span>
          </li>
        ))}
      </ol>
    </>
  );
}

/**
 * Other coins sent to the invoice's address: counted nowhere, listed so the shop can return them (the amount as the
 * shop's API shows it, otherCoinDepositsView).
 */
function OtherCoins({ invoice }: { invoice: Invoice }) {
  const stored = otherCoinDepositsOf(invoice);
  return (
    <>
      <h2>Other coins</h2>
      <p class="muted">
        Sent to this address in another coin than{" "}
        {invoice.coin}: counted in no amount and no status. Return each confirmed one in the coin that was sent, to an
        address the buyer gives.
      </p>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th>Seen</th>
              <th>Coin</th>
              <th>Transaction</th>
              <th class="num">Amount</th>
              <th class="num">Confirmations</th>
              <th>To return</th>
            </tr>
          </thead>
          <tbody>
            {otherCoinDepositsView(invoice).map((d, i) => (
              <tr key={`${d.coin} ${d.txid}`} data-other-coin={d.coin}>
                <td>{formatTime(stored[i].seenAt)}</td>
                <td>{d.coin}</td>
                <td>
                  <code class="small">{d.txid}</code>
                </td>
                <td class="num">
                  {d.amount === null ? `${d.baseUnits} base units (decimals unknown to us)` : `${d.amount} ${d.coin}`}
                </td>
                <td class="num">{d.confirmations}</td>
                <td>
                  {d.dropped ? DROPPED : d.confirmed ? "yes" : "not yet: confirming"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

/** A transfer the chain dropped before its confirmations: nothing arrived (a deposit counts none, another coin's is not returned). */
const DROPPED = <strong class="bad">no: dropped from the chain before its confirmations</strong>;

/** Whether a deposit counts, and if not why: the chain dropped it, or it came after the invoice closed. */
function depositCounted(d: InvoiceDeposit) {
  if (d.dropped) return DROPPED;
  if (d.late) return <strong class="bad">late: after the invoice closed</strong>;
  return "yes";
}
