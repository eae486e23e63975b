import type { ComponentChildren } from "preact";
import type { DeliveryAttempt } from "../lib/relay/types.ts";
import { formatAmount, formatDecimal } from "../lib/money.ts";
import type { describePayment } from "../lib/payments/admin.ts";
import type { PaymentFilter, PaymentPage } from "../lib/payments/search.ts";
import { PAYMENT_STATUSES } from "../lib/payments/status.ts";
import type { Payment } from "../lib/payments/types.ts";
import type { Shop } from "../lib/db/shops.ts";
import { isRefundable } from "../lib/refunds/status.ts";
import { REVERSAL_CHECK_MS } from "../lib/refunds/settle.ts";
import { providerDisplayName } from "../lib/accounts/types.ts";
import { isOperatorActor } from "../lib/auth/operators.ts";
import type { RecordedOutcome } from "../lib/refunds/admin.ts";
import type { Refund } from "../lib/refunds/types.ts";
import { ConfirmQuestion, CsrfField, DestructiveButton, formatTime } from "./admin_layout.tsx";
import { deliveryStatusLabel } from "./deliveries.tsx";

/** Payment list, filters and detail, shared by the operator console and the shop portal. */
export function FilterForm(
  { filter, shops, basePath }: { filter: PaymentFilter; shops?: [string, string][]; basePath: string },
) {
  return (
    <form method="get" action={basePath} class="filters" role="search">
      {shops && (
        <label>
          Shop
          <select name="shopId">
            <option value="">All shops</option>
            {shops.map(([id, name]) => <option key={id} value={id} selected={filter.shopId === id}>{name}</option>)}
          </select>
        </label>
      )}
      <label>
        Status
        <select name="status">
          <option value="">Any</option>
          {PAYMENT_STATUSES.map((s) => <option key={s} value={s} selected={filter.status === s}>{s}</option>)}
        </select>
      </label>
      <label>
        From <input type="date" name="from" value={filter.from ?? ""} />
      </label>
      <label>
        To <input type="date" name="to" value={filter.to ?? ""} />
      </label>
      <label>
        Currency <input name="currency" size={4} maxLength={3} value={filter.currency ?? ""} />
      </label>
      <label>
        Email <input name="email" placeholder="full address or its start" value={filter.email ?? ""} />
      </label>
      <label>
        Shop's id <input name="shopTxId" placeholder="order id or its start" value={filter.shopTxId ?? ""} />
      </label>
      <label>
        Payment id <input name="id" placeholder="pay_..." value={filter.id ?? ""} />
      </label>
      <button type="submit">Filter</button>
    </form>
  );
}

/**
 * The payments page of either audience: filters, the CSV link and the results. Given the shops (the operators'
 * scope) it offers a shop filter and names each payment's shop.
 */
export function PaymentsList(
  props: { filter: PaymentFilter; page: PaymentPage; query: URLSearchParams; basePath: string; shops?: Shop[] },
) {
  return (
    <>
      <FilterForm
        filter={props.filter}
        shops={props.shops?.map((s) => [s.id, s.name])}
        basePath={props.basePath}
      />
      <p>
        <a href={`${props.basePath}.csv?${props.query}`} download>Export these as CSV</a>
      </p>
      <PaymentResults
        page={props.page}
        basePath={props.basePath}
        query={props.query}
        shopNames={props.shops && new Map(props.shops.map((s) => [s.id, s.name]))}
      />
    </>
  );
}

/**
 * A page of search results with its way on: "Older payments" after a full
 * page, or, when a filter that must scan ran out of its budget, where it
 * stopped and a link that searches on from there.
 */
export function PaymentResults(
  { page, basePath, query, shopNames }: {
    page: PaymentPage;
    basePath: string;
    query: URLSearchParams;
    /** The operators' scope: a Shop column naming each payment's shop. */
    shopNames?: Map<string, string>;
  },
) {
  const next = page.cursor && `${basePath}?${query}${query.size ? "&" : ""}cursor=${encodeURIComponent(page.cursor)}`;
  const stopped = page.scanStoppedAt !== null;
  return (
    <>
      <PaymentTable
        payments={page.payments}
        basePath={basePath}
        shopNames={shopNames}
        empty={stopped ? "No payments match among those searched." : "No payments match."}
      />
      {stopped && (
        <p class="muted scan-stopped">
          Stopped searching at payments created{" "}
          {formatTime(page.scanStoppedAt)}: these filters are checked one payment at a time, and older payments were not
          searched yet. A payment id, an existing order id and a full email address are found at once; part of an email
          or order id is matched one payment at a time.
        </p>
      )}
      {next && (
        <p>
          <a class="button secondary" href={next}>{stopped ? "Search older payments" : "Older payments"}</a>
        </p>
      )}
    </>
  );
}

export function PaymentTable(
  { payments, basePath, shopNames, empty = "No payments match." }: {
    payments: Payment[];
    basePath: string;
    shopNames?: Map<string, string>;
    empty?: string;
  },
) {
  if (!payments.length) return <p class="muted">{empty}</p>;
  return (
    <div class="table-wrap">
      <table class="stack-phone">
        <thead>
          <tr>
            <th>Created</th>
            <th>Payment</th>
            {shopNames && <th>Shop</th>}
            <th>Shop's id</th>
            <th>Amount</th>
            <th>Status</th>
            <th>Email</th>
          </tr>
        </thead>
        <tbody>
          {payments.map((p) => (
            <tr key={p.id}>
              <td data-label="Created">{formatTime(p.createdAt)}</td>
              <td data-label="Payment">
                <a href={`${basePath}/${p.id}`}>
                  <code>{p.id}</code>
                </a>
              </td>
              {shopNames && (
                <td data-label="Shop">
                  <a href={`/admin/shops/${p.shopId}`}>{shopNames.get(p.shopId) ?? p.shopId}</a>
                </td>
              )}
              <td data-label="Shop's id">{p.shopTxId ?? "—"}</td>
              <td data-label="Amount" class="num">{formatAmount(p.amount, p.currency)}</td>
              <td data-label="Status" class={`status-${p.status}`}>{p.status}</td>
              <td data-label="Email">{p.email}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export type PaymentInfo = Awaited<ReturnType<typeof describePayment>>;

export interface TimelineItem {
  at: number;
  what: string;
  detail: string;
}

/** What a timeline is made of: a record's events and its postbacks' attempts (a payment's, an invoice's). */
interface TimelineSource {
  events: { type: string; at: number; data: Record<string, unknown> }[];
  deliveries: { eventType: string; attemptLog: DeliveryAttempt[] }[];
}

/**
 * Events and postback attempts, merged in time order. `namePostbacks` says which postback an attempt was for,
 * where a record has several kinds (an invoice's status postbacks). `nameOperators` is the operators' scope: an entry
 * one of us caused names who (their email, or `cli`); elsewhere (the shop's portal) it reads "AimbrellaPay", as the
 * shop's postbacks and API never name an operator either.
 */
export function timeline(
  info: TimelineSource,
  opts: { namePostbacks?: boolean; nameOperators?: boolean } = {},
): TimelineItem[] {
  const shown = (k: string, v: unknown) => (k === "by" ? actorShown(v, opts.nameOperators) : v);
  const items: TimelineItem[] = info.events.map((e) => ({
    at: e.at,
    what: e.type.replace(/_/g, " "),
    detail: Object.entries(e.data).map(([k, v]) => `${k}: ${shown(k, v)}`).join(", "),
  }));
  for (const d of info.deliveries) {
    for (const a of d.attemptLog) {
      items.push({
        at: a.at,
        what: opts.namePostbacks ? `postback ${d.eventType} attempt ${a.n}` : `postback attempt ${a.n}`,
        detail: `${a.statusCode ?? "no answer"} in ${a.latencyMs} ms${a.error ? ` · ${a.error}` : ""}${
          a.responseStart ? ` · “${a.responseStart.slice(0, 120)}”` : ""
        }`,
      });
    }
  }
  return items.sort((a, b) => a.at - b.at);
}

/** Who acted, as the page's audience may read it: an operator by name for operators, as "AimbrellaPay" for a shop. */
function actorShown<T>(actor: T, nameOperators = false): T | string {
  return !nameOperators && isOperatorActor(actor) ? "AimbrellaPay" : actor;
}

export function PaymentDetail(
  props: PaymentInfo & {
    csrf: string;
    basePath: string;
    canRecheck: boolean;
    canRefund?: boolean;
    /** The operators' scope: where shops' pages are (`/admin/shops`), so the shop's name links to its page. */
    shopBase?: string;
    /**
     * The operators' scope: where provider accounts are listed (`/admin/accounts`), so the payment's account shows,
     * linked to its row. Shops do not see our accounts.
     */
    accountBase?: string;
    /** The operators' scope: the timeline names the operator behind an entry (see timeline). */
    nameOperators?: boolean;
  },
) {
  const p = props.payment;
  const gaveUp = props.settled.gaveUp;
  // By name, as every list shows it; a shop gone since by its id.
  const shop = props.shopName ?? p.shopId;
  const fields: [string, ComponentChildren][] = [
    ["Payment id", p.id],
    ["Shop", props.shopBase ? <a key="shop" href={`${props.shopBase}/${p.shopId}`}>{shop}</a> : shop],
    ["Shop's id", p.shopTxId],
    ["Embedded checkout", p.checkoutSessionId ?? null],
    ["Status", p.late ? `${p.status} (late: after it expired or was cancelled)` : p.status],
    ["Amount", formatAmount(p.amount, p.currency)],
    ["Refunded", p.refundedAmount ? formatAmount(p.refundedAmount, p.currency) : null],
    ["Type", p.type],
    ["Email", p.email],
    ["Name", p.name],
    ["Success URL", p.successUrl],
    ["Error URL", p.errorUrl],
    ["Postback URL", p.shopTxId ? p.postbackUrl : "none: no postback is sent without the shop's id"],
    ...(props.accountBase
      ? [["Account", <AccountName key="account" account={props.account} base={props.accountBase} />] as [
        string,
        ComponentChildren,
      ]]
      : []),
    ["Provider", `${p.provider} ${p.providerRef ?? ""}`],
    ["Created", formatTime(p.createdAt)],
    ["Updated", formatTime(p.updatedAt)],
    // A late payment settled when the money came, after we had given up on it: both times, in the order they were.
    ...(gaveUp
      ? [[gaveUp.as === "cancelled" ? "Cancelled" : "Expired", formatTime(gaveUp.at)] as [string, string]]
      : []),
    ["Settled", formatTime(props.settled.at)],
    ["Expires", p.status === "pending" ? formatTime(p.expiresAt) : null],
    ["Last error", p.lastError],
  ];
  return (
    <>
      <dl class="fields">
        {fields.map(([k, v]) => [<dt key={k + "t"}>{k}</dt>, <dd key={k + "d"}>{v ?? "—"}</dd>])}
      </dl>
      <div class="actions">
        {props.canRecheck && (
          <form method="post" action={`${props.basePath}/${p.id}/recheck`} class="inline" data-busy="Re-checking…">
            <CsrfField token={props.csrf} />
            <button type="submit" class="secondary">Re-check status with the provider</button>
          </form>
        )}
        {props.deliveries.length > 0 && (
          <form method="post" action={`${props.basePath}/${p.id}/resend`} class="inline" data-busy="Resending…">
            <CsrfField token={props.csrf} />
            <button type="submit">Resend postback</button>
          </form>
        )}
      </div>
      <Refunds {...props} />
      <h2>Postbacks</h2>
      {props.deliveries.length === 0
        ? (
          <p class="muted">
            {p.shopTxId
              ? "None yet: the payment is not settled."
              : "None: the shop gave no id with this payment, so no postback is sent; the shop asks for its status."}
          </p>
        )
        : props.deliveries.map((d) => (
          <p key={d.id}>
            <code>{d.id}</code> {d.eventType} → {d.url}:{" "}
            <strong class={d.status === "delivered" ? "ok" : d.status === "superseded" ? undefined : "bad"}>
              {deliveryStatusLabel(d)}
            </strong>{" "}
            after {d.attempts} attempt{d.attempts === 1 ? "" : "s"}
            {d.status === "pending" && <span class="muted">; next retry {formatTime(d.nextAttemptAt)}</span>}
            {d.status === "superseded" && (
              <span class="muted">; not sent again: {d.supersededBy} says where the payment stands now</span>
            )}
          </p>
        ))}
      <h2>Timeline</h2>
      <ol class="timeline">
        {timeline(props, { nameOperators: props.nameOperators }).map((t, i) => (
          <li key={i}>
            <time>{formatTime(t.at)}</time> <strong>{t.what}</strong> <span class="muted">{t.detail}</span>
          </li>
        ))}
      </ol>
    </>
  );
}

/**
 * The merchant account a payment went through: its label linked to its row on the accounts page, its provider and
 * its id; an account not there (any more) by its id alone.
 */
function AccountName({ account, base }: { account: PaymentInfo["account"]; base: string }) {
  if (!account.record) {
    return (
      <span>
        <code>{account.id}</code> (no such account now)
      </span>
    );
  }
  return (
    <span>
      <a href={`${base}#account-${account.id}`}>{account.record.label}</a> · {account.record.provider} ·{" "}
      <code>{account.id}</code>
    </span>
  );
}

/** The days after its success on which a refund its provider can reverse is asked about: "1, 5, 10 and 30". */
const RECHECK_DAYS = REVERSAL_CHECK_MS.map((ms) => ms / 86_400_000).join(", ").replace(/, (\d+)$/, " and $1");

/**
 * A succeeded refund its provider can still reverse (Stripe: the buyer's bank sends it back) is asked about again
 * (lib/refunds/recheck.ts), in case the news of a reversal is lost: when, so nobody takes it as final yet.
 */
function RecheckNote({ provider, at }: { provider: string; at: number }) {
  const name = providerDisplayName(provider);
  return (
    <div class="muted">
      {name} can still reverse it: we ask {name} again on {formatTime(at)} whether it still stands ({RECHECK_DAYS}{" "}
      days after it succeeded).
    </div>
  );
}

/** A payment's refunds and, for operators, the form that starts one (a confirmation page follows). */
function Refunds(
  props: PaymentInfo & { csrf: string; basePath: string; canRefund?: boolean; nameOperators?: boolean },
) {
  const p = props.payment;
  const canRefund = props.canRefund && isRefundable(p.status) && props.refundable > 0;
  if (!props.refunds.length && !canRefund) return null;
  return (
    <>
      <h2>Refunds</h2>
      {props.refunds.length > 0 && (
        <div class="table-wrap">
          <table class="stack-phone">
            <thead>
              <tr>
                <th>Refund</th>
                <th>Amount</th>
                <th>Status</th>
                <th>Reason</th>
                <th>By</th>
                <th>Requested</th>
              </tr>
            </thead>
            <tbody>
              {props.refunds.map((r) => (
                <tr key={r.id}>
                  <td data-label="Refund">
                    {/* One block per cell: stacked on a phone, a second child would fall into the label's column. */}
                    <div>
                      <code>{r.id}</code>
                      {r.shopRefundId && <div class="muted shop-refund-id">{r.shopRefundId}</div>}
                    </div>
                  </td>
                  <td data-label="Amount">{formatAmount(r.amount, r.currency)}</td>
                  <td data-label="Status">
                    <div>
                      <strong class={r.status === "succeeded" ? "ok" : r.status === "failed" ? "bad" : ""}>
                        {r.status}
                      </strong>
                      {r.failureReason && <div class="muted">{r.failureReason}</div>}
                      {r.status === "succeeded" && r.recheckAt && (
                        <RecheckNote provider={p.provider} at={r.recheckAt} />
                      )}
                      {props.canRefund && r.settledBy && (
                        // Operators only: the note is ours, not the shop's.
                        <div class="muted">Recorded by hand by {r.settledBy.actor}: {r.settledBy.note}</div>
                      )}
                      {r.status === "pending" && r.checks > 0 && (
                        // Waiting on the provider (no answer, or a refusal it could not take as final): how long
                        // for, so a refund stuck at the provider stands out. Operators can read each answer.
                        <div class="muted">
                          Asked the provider {r.checks} {r.checks === 1 ? "time" : "times"} so far; next at{" "}
                          {formatTime(r.nextCheckAt)}.{props.canRefund && " The operation log has each answer."}
                        </div>
                      )}
                    </div>
                  </td>
                  <td data-label="Reason">{r.reason ?? "—"}</td>
                  <td data-label="By">{actorShown(r.requestedBy, props.nameOperators)}</td>
                  <td data-label="Requested">{formatTime(r.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {props.canRefund &&
        props.refunds.filter((r) => r.status === "pending").map((r) => (
          <SettleByHand
            key={r.id}
            refund={r}
            csrf={props.csrf}
            action={`${props.basePath}/${p.id}/refunds/${r.id}/settle`}
          />
        ))}
      {canRefund && (
        <form method="post" action={`${props.basePath}/${p.id}/refund`} class="filters">
          <CsrfField token={props.csrf} />
          <label>
            Amount ({p.currency})
            <input
              name="amount"
              required
              inputmode="decimal"
              pattern="[0-9]+([.][0-9]+)?"
              value={formatDecimal(props.refundable, p.currency)}
            />
          </label>
          <label>
            Reason
            <input name="reason" maxlength={500} />
          </label>
          <button type="submit" class="secondary">Refund…</button>
          <span class="muted">
            Up to {formatAmount(props.refundable, p.currency)}; you confirm on the next page.
          </span>
        </form>
      )}
    </>
  );
}

/** The outcomes an operator may record of a pending refund, in the words its form and its question use. */
export const OUTCOME_WORDS = {
  failed: "The provider made no refund: it fails, and its amount can be refunded again",
  succeeded: "The provider made the refund: it succeeds",
} as const satisfies Record<RecordedOutcome, string>;

/**
 * The question before a refund is settled by hand, with the outcome's words and the note; the form's own question has
 * `{outcome}` and `{note}` there, filled in by the page's script as chosen and typed.
 */
export function settleQuestion(r: Refund, outcome: string, note: string): string {
  return `Record this for refund ${r.id} of ${formatAmount(r.amount, r.currency)}? ${outcome}. Note: “${note}”. ` +
    "The shop is told at once, and this cannot be undone.";
}

/**
 * A pending refund's form to settle it by hand, for operators who checked with the provider (its dashboard, its
 * support) when its API leaves the refund pending. Asks first (the page's script, else a page of its own), shows
 * progress while it runs, and takes no outcome for granted.
 */
function SettleByHand({ refund: r, csrf, action }: { refund: Refund; csrf: string; action: string }) {
  const id = `settle-${r.id}`;
  return (
    <form
      method="post"
      action={action}
      class="filters settle-refund"
      aria-labelledby={`${id}-title`}
      data-busy="Recording…"
      data-confirm={settleQuestion(r, "{outcome}", "{note}")}
    >
      <CsrfField token={csrf} />
      <p id={`${id}-title`}>
        <strong>
          Settle <code>{r.id}</code> ({formatAmount(r.amount, r.currency)}) by hand
        </strong>{" "}
        <span class="muted">
          once you have checked with the provider (its dashboard, its support) what it did with this refund.
        </span>
      </p>
      <label>
        What the provider did
        <select name="outcome" required>
          <option value="" selected>Choose…</option>
          <option value="failed">{OUTCOME_WORDS.failed}</option>
          <option value="succeeded">{OUTCOME_WORDS.succeeded}</option>
        </select>
      </label>
      <label>
        Note (how you know)
        <input name="note" required maxlength={500} placeholder="Bansky support confirmed no refund on 2026-11-30" />
      </label>
      <DestructiveButton>Record outcome</DestructiveButton>
    </form>
  );
}

/** The confirmation step of an operator's refund: what will be given back, to whom, and one button. */
export function RefundConfirm(
  props: { payment: Payment; amount: number; reason: string; token: string; csrf: string; basePath: string },
) {
  const p = props.payment;
  return (
    <div class="card">
      <ConfirmQuestion>
        <p>
          Refund <strong>{formatAmount(props.amount, p.currency)}</strong> of payment <code>{p.id}</code>{" "}
          ({formatAmount(p.amount, p.currency)} from {p.email})?
        </p>
        {props.reason && <p>Reason: {props.reason}</p>}
        <p class="muted">The money goes back to the buyer through the provider; this cannot be undone.</p>
      </ConfirmQuestion>
      <form method="post" action={`${props.basePath}/${p.id}/refund/confirm`} class="inline">
        <CsrfField token={props.csrf} />
        <input type="hidden" name="amount" value={String(props.amount)} />
        <input type="hidden" name="reason" value={props.reason} />
        <input type="hidden" name="token" value={props.token} />
        <DestructiveButton>Confirm refund</DestructiveButton>
      </form>{" "}
      <a href={`${props.basePath}/${p.id}`}>Cancel</a>
    </div>
  );
}
