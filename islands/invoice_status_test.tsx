import assert from "node:assert/strict";
import { renderToString } from "preact-render-to-string";
import { storedInvoice } from "../fixtures/invoices.ts";
import { buyerStatusView } from "../lib/invoices/view.ts";
import type { Invoice } from "../lib/invoices/types.ts";
import InvoiceStatus from "./invoice_status.tsx";

const now = 1_800_000_000_000;

/** The status part of the buyer's page as the server renders it, as text. */
function shown(inv: Invoice): string {
  const html = renderToString(<InvoiceStatus statusUrl="/status" initial={buyerStatusView(inv, now)} />);
  return html.replace(/<[^>]+>/g, "").replace(/&#39;/g, "'");
}

const deposit = (amount: string, confirmations: number) => ({
  txid: `t${amount}`,
  amount,
  confirmations,
  seenAt: now,
  late: false,
});

Deno.test("[invoices] a deposit on its way says roughly how long its network takes for the confirmations left", () => {
  const cases: [Partial<Invoice>, string][] = [
    [
      { coin: "USDT", network: "tron", decimals: 6, amount: "25000000", deposits: [deposit("25000000", 0)] },
      "On its way: 25 USDT (0 of 20 confirmations, about a minute on Tron)",
    ],
    [
      { coin: "ETH", network: "ethereum", decimals: 18, amount: "1000", deposits: [deposit("1000", 0)] },
      "(0 of 12 confirmations, about 2 minutes on Ethereum)",
    ],
    [
      { coin: "BTC", network: "bitcoin", decimals: 8, amount: "150000", deposits: [deposit("150000", 0)] },
      "On its way: 0.0015 BTC (0 of 3 confirmations, about 30 minutes on Bitcoin)",
    ],
    [
      { coin: "BTC", network: "bitcoin", decimals: 8, amount: "150000", deposits: [deposit("150000", 2)] },
      "(2 of 3 confirmations, about 10 minutes more on Bitcoin)",
    ],
    [
      { coin: "USDT", network: "tron", decimals: 6, amount: "25000000", deposits: [deposit("25000000", 15)] },
      "(15 of 20 confirmations, less than a minute more on Tron)",
    ],
  ];
  for (const [fields, says] of cases) {
    const text = shown(storedInvoice(now, { status: "payment_confirmation", ...fields }));
    assert.ok(text.includes(says), `${says} not in: ${text}`);
  }
});

Deno.test("[invoices] an overpaid invoice tells the buyer to contact the shop for the extra, which it can see", () => {
  const text = shown(storedInvoice(now, {
    status: "payment_accepted",
    coin: "USDT",
    network: "tron",
    decimals: 6,
    amount: "20000000",
    deposits: [deposit("25000000", 20)],
  }));
  assert.ok(text.includes("Received: 25 of 20 USDT"), text);
  assert.ok(
    text.includes(
      "That is 5 USDT more than asked. It is not sent back by itself: contact the shop about the extra; they can see it.",
    ),
    text,
  );
  const exact = shown(storedInvoice(now, { status: "payment_accepted", deposits: [deposit("12500000", 20)] }));
  assert.ok(!exact.includes("more than asked"), exact);
});
