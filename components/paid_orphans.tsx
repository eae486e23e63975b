import { providerDisplayName } from "../lib/accounts/types.ts";
import { type ListedOrphan, ORPHAN_NOTE_MAX, type PaidOrphan } from "../lib/payments/orphans.ts";
import { CsrfField, formatTime } from "./admin_layout.tsx";

/**
 * The question before a paid orphan is marked handled; the form's own has `{note}` there, filled in by the page's
 * script as typed.
 */
export function handleOrphanQuestion(o: PaidOrphan, note: string): string {
  return `Mark ${providerDisplayName(o.provider)}'s payment ${o.ref} (made for ${o.paymentId}) handled? ` +
    `Note: “${note}”. Its provider's news about it is then acknowledged, so it stops retrying, and the alert ` +
    "clears; this cannot be undone." +
    (o.claimed === "pending" ? " Its money is still on its way: if it arrives, the orphan waits for you again." : "");
}

/** Which orphan a refused mark was about, to put the keyboard back on its note. */
export interface OrphanRef {
  accountId: string;
  ref: string;
}

/**
 * The paid orphans: those waiting for an operator first, each with its "Mark handled" form, then the latest handled.
 * Rows stack on a phone (stack-phone), and every form is reachable and sent by keyboard.
 */
export function PaidOrphansList(
  props: { unhandled: ListedOrphan[]; handled: ListedOrphan[]; csrf: string; action: string; refused?: OrphanRef },
) {
  return (
    <>
      <p class="muted">
        Money a provider took (or has on its way) on a payment it made for one of our ids that no stored payment names:
        no shop knows of it. Its news is refused, so the provider keeps retrying it. Look the reference up at the
        provider, refund it there or give it to the shop to take the order by hand, then mark it handled here: the
        provider's further news about it is acknowledged and the alert clears. See{" "}
        <a href="/internal/metrics#paid-orphans">paid orphans</a>.
      </p>
      <section class="card" aria-labelledby="orphans-waiting">
        <h2 id="orphans-waiting">Waiting for an operator ({props.unhandled.length})</h2>
        {props.unhandled.length === 0 ? <p>None.</p> : (
          <div class="table-wrap">
            <table class="stack-phone" data-orphans="unhandled">
              <thead>
                <tr>
                  <OrphanHeadings />
                  <th>Mark handled</th>
                </tr>
              </thead>
              <tbody>
                {props.unhandled.map((o) => (
                  <tr key={`${o.accountId}/${o.ref}`}>
                    <OrphanCells orphan={o} />
                    <td class="row-actions">
                      <HandleForm
                        orphan={o}
                        csrf={props.csrf}
                        action={props.action}
                        refused={props.refused?.accountId === o.accountId && props.refused.ref === o.ref}
                      />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <section class="card" aria-labelledby="orphans-handled">
        <h2 id="orphans-handled">Handled lately</h2>
        {props.handled.length === 0 ? <p>None.</p> : (
          <div class="table-wrap">
            <table class="stack-phone" data-orphans="handled">
              <thead>
                <tr>
                  <OrphanHeadings />
                  <th>Handled</th>
                </tr>
              </thead>
              <tbody>
                {props.handled.map((o) => (
                  <tr key={`${o.accountId}/${o.ref}`}>
                    <OrphanCells orphan={o} />
                    <td data-label="Handled">
                      {formatTime(o.handled?.at)} by {o.handled?.by}: {o.handled?.note}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}

function OrphanHeadings() {
  return (
    <>
      <th>Provider's payment</th>
      <th>Made for</th>
      <th>Claimed</th>
      <th>Seen</th>
    </>
  );
}

function OrphanCells({ orphan: o }: { orphan: ListedOrphan }) {
  // Each cell holds one element: on a phone a cell is a grid of its label and its value (stack-phone).
  return (
    <>
      <td data-label="At provider">
        <div>
          <code>{o.ref}</code>
          <div class="muted small">
            {providerDisplayName(o.provider)}, account{" "}
            <a href={`/admin/accounts#account-${o.accountId}`}>{o.accountId}</a>
          </div>
        </div>
      </td>
      <td data-label="Made for">
        <div>
          <code>{o.paymentId}</code>
          <div class="muted small" data-stored-now={o.paymentNow ? "yes" : "no"}>
            <StoredNow orphan={o} />
          </div>
        </div>
      </td>
      <td data-label="Claimed">
        <div>
          {o.claimed === "pending" ? "paying (money on its way)" : o.claimed}
          {o.earlierMark && (
            <div class="muted small" data-earlier-mark>
              marked handled while its money was on its way, {formatTime(o.earlierMark.at)} by {o.earlierMark.by}:{" "}
              {o.earlierMark.note}
            </div>
          )}
        </div>
      </td>
      <td data-label="Seen">
        <div>
          {o.timesSeen} {o.timesSeen === 1 ? "time" : "times"}
          <div class="muted small">
            first {formatTime(o.firstSeenAt)}, last {formatTime(o.lastSeenAt)}
          </div>
        </div>
      </td>
    </>
  );
}

/**
 * Whether a payment with the orphan's id is stored now, linked when it is. The record says what its news found when
 * last seen: news that beat our commit of a new payment found none, and that payment, naming this very reference, is
 * the one to look at (its own news is applied from then on).
 */
function StoredNow({ orphan: o }: { orphan: ListedOrphan }) {
  if (!o.paymentNow) return <>{o.paymentStored ? "not stored now (it was when last seen)" : "not stored"}</>;
  const link = <a href={`/admin/payments/${o.paymentId}`}>its payment</a>;
  if (o.paymentNow.providerRef === o.ref) {
    return <>stored now, and {link} names this reference: its news beat our commit of it</>;
  }
  return (
    <>
      stored{o.paymentStored ? "" : " now (not when last seen)"}, {link} names{" "}
      <code>{o.paymentNow.providerRef ?? "no reference yet"}</code>
    </>
  );
}

/** One orphan's mark: a required note saying what was done; the page's script asks first, else a page of its own. */
function HandleForm(props: { orphan: PaidOrphan; csrf: string; action: string; refused: boolean }) {
  const o = props.orphan;
  const id = `note-${o.accountId}-${o.ref}`.replace(/[^A-Za-z0-9_-]/g, "_");
  return (
    <form
      method="post"
      action={props.action}
      class="filters"
      data-busy="Marking…"
      data-confirm={handleOrphanQuestion(o, "{note}")}
    >
      <CsrfField token={props.csrf} />
      <input type="hidden" name="accountId" value={o.accountId} />
      <input type="hidden" name="ref" value={o.ref} />
      <label for={id}>What was done</label>
      <input
        id={id}
        name="note"
        required
        maxlength={ORPHAN_NOTE_MAX}
        placeholder="Refunded at the provider on 2026-11-30"
        autofocus={props.refused || undefined}
        aria-invalid={props.refused ? "true" : undefined}
      />
      <button type="submit">Mark handled</button>
    </form>
  );
}
