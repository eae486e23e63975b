import { useEffect, useState } from "preact/hooks";
import {
  INVOICE_CLOSED_HINT,
  INVOICE_STATUS_TEXT,
  INVOICE_TIME_UP_TEXT,
  isInvoiceOpen,
} from "../lib/invoices/status.ts";
import type { BuyerStatus } from "../lib/invoices/view.ts";
import { confirmationWaitSeconds, NETWORKS, roughDuration } from "../lib/invoices/coins.ts";

/** How often the page asks for news while the invoice is open. */
const POLL_MS = 3000;
/**
 * A closed invoice can still receive money sent late (shown to the buyer, never counted), so the page keeps asking,
 * slowly, for a while after it was loaded: a buyer whose payment was late learns it without a reload.
 */
const CLOSED_POLL_MS = 15_000;
const CLOSED_WATCH_MS = 30 * 60_000;

/**
 * The live part of the buyer's invoice page: the status, what has arrived and
 * the time left, polled from the invoice's JSON status route. Rendered on the
 * server too, so without JavaScript the page shows the state it was loaded in.
 */
export default function InvoiceStatus(props: { statusUrl: string; initial: BuyerStatus }) {
  const [s, setS] = useState(props.initial);
  // Our clock against the server's, so the countdown does not depend on the buyer's clock being right.
  const [offset, setOffset] = useState(0);
  const [now, setNow] = useState(props.initial.now);
  const open = isInvoiceOpen(s.status);

  useEffect(() => {
    setOffset(props.initial.now - Date.now());
    const tick = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(tick);
  }, []);

  const [loadedAt] = useState(() => Date.now());
  useEffect(() => {
    if (!open && Date.now() - loadedAt > CLOSED_WATCH_MS) return;
    let stopped = false;
    const timer = setTimeout(async function poll() {
      try {
        const res = await fetch(props.statusUrl, { headers: { accept: "application/json" } });
        if (res.ok && !stopped) {
          const next: BuyerStatus = await res.json();
          // What to send (the amount, its copy button, the wallet link and QR code) is drawn by the server: when it
          // changes, the page is loaded again rather than left asking for what is no longer due.
          if (next.status !== props.initial.status || next.dueAmount !== props.initial.dueAmount) {
            location.reload();
            return;
          }
          setOffset(next.now - Date.now());
          setS(next);
          return; // The new state re-runs this effect, which polls again.
        }
      } catch {
        // Offline for a moment: try again.
      }
      if (stopped || (!open && Date.now() - loadedAt > CLOSED_WATCH_MS)) return;
      setTimeout(poll, open ? POLL_MS : CLOSED_POLL_MS);
    }, open ? POLL_MS : CLOSED_POLL_MS);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [s]);

  const left = s.expiresAt - (now + offset);
  // Past expiresAt, money no longer pays for the order (it is late) even before the sweep records the expiry.
  const timeUp = s.expires && left <= 0;
  // The amount, address and QR code are drawn by the server: load the page again once they are no longer to be
  // used (a second after, so that the server's clock is past expiresAt too). Only a page drawn before the time was
  // up: one drawn after already shows none of them.
  const drawnInTime = props.initial.expires && props.initial.now < props.initial.expiresAt;
  useEffect(() => {
    if (timeUp && drawnInTime && left <= -1000) location.reload();
  }, [timeUp && left <= -1000]);
  const stopped = timeUp || s.status === "expired" || s.status === "cancelled";
  return (
    <div class="invoice-status">
      {/* News is announced; the countdown below, which changes every second, is not. */}
      <div aria-live="polite">
        <p class={`invoice-state state-${timeUp ? "expired" : s.status}`} data-status={s.status}>
          <strong>{timeUp ? INVOICE_TIME_UP_TEXT : INVOICE_STATUS_TEXT[s.status]}</strong>
        </p>
        {stopped && <p>{INVOICE_CLOSED_HINT}</p>}
        {s.paidAmount !== "0" && (
          <p>
            Received: {s.paidAmount} of {s.amount} {s.coin}
          </p>
        )}
        {s.overpaidAmount !== "0" && (
          <p class="flash">
            {/* Nothing sends the extra back by itself: the shop sees it (overpaidAmount) and decides. */}
            That is {s.overpaidAmount} {s.coin}{" "}
            more than asked. It is not sent back by itself: contact the shop about the extra; they can see it.
          </p>
        )}
        {s.pendingAmount !== "0" && (
          <p>
            On its way: {s.pendingAmount} {s.coin}
            {s.confirmations !== null &&
              ` (${s.confirmations} of ${s.confirmationsNeeded} confirmations, ${
                confirmationWait(s.network, s.confirmations)
              })`}
          </p>
        )}
        {open && s.dueAmount !== "0" && s.dueAmount !== s.amount && (
          <p>
            Still to send: <strong>{s.dueAmount} {s.coin}</strong>
          </p>
        )}
        {/* Once what is due is on its way again (a replacement, a rebroadcast), the news is old. */}
        {open && s.droppedAmount !== "0" && s.dueAmount !== "0" && (
          <p class="flash">
            {s.droppedAmount} {s.coin}{" "}
            sent here was dropped by the network before it was confirmed, so it did not arrive.{" "}
            Please send what is still due.
          </p>
        )}
        {s.lateAmount !== "0" && (
          <p class="flash">
            {/* Late money arrived, or was still confirming, when the invoice closed: "too late" is true of both. */}
            {s.lateAmount} {s.coin} came too late to count for this invoice, which{" "}
            {LATE_TEXT[s.status] ?? "closed"}. The shop can see it; contact them about it.
          </p>
        )}
      </div>
      {s.expires && left > 0 && <p class="muted">Time left: {formatLeft(left)}</p>}
    </div>
  );
}

/**
 * "about 30 minutes on Bitcoin", "about a minute more on Tron": a buyer watching "0 of 3 confirmations" cannot tell
 * whether that takes seconds or an hour, and may send again or give up.
 */
function confirmationWait(network: BuyerStatus["network"], have: number): string {
  return `${roughDuration(confirmationWaitSeconds(network, have))}${have ? " more" : ""} on ${NETWORKS[network].label}`;
}

const LATE_TEXT: Partial<Record<BuyerStatus["status"], string>> = {
  expired: "expired",
  cancelled: "was cancelled",
  finished: "was paid",
};

function formatLeft(ms: number): string {
  const total = Math.ceil(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0");
  return `${h ? `${h}:` : ""}${mm}:${String(sec).padStart(2, "0")}`;
}
