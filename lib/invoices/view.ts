import { formatBaseUnits, sumUnits } from "./amounts.ts";
import { coinDecimals, confirmationsNeeded, findCoinOption } from "./coins.ts";
import { canMoveInvoice, type InvoicePostbackType } from "./status.ts";
import { heldOpenPastExpiry } from "./expiry.ts";
import { countsToward, type Invoice, isLateMoney, otherCoinDepositsOf } from "./types.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** Where the buyer pays an invoice: its page, reachable by its unguessable id only. */
export function checkoutUrl(invoiceId: string, publicBaseUrl: string): string {
  return `${publicBaseUrl}/invoices/${encodeURIComponent(invoiceId)}`;
}

/**
 * What an invoice's deposits add up to, in base units: received (confirmed), on its way, after it closed, dropped by
 * the chain before it was confirmed.
 */
export function invoiceTotals(inv: Invoice) {
  const needed = confirmationsNeeded(inv.network);
  const counted = inv.deposits.filter(countsToward);
  const paid = sumUnits(counted.filter((d) => d.confirmations >= needed).map((d) => d.amount));
  const pending = sumUnits(counted.filter((d) => d.confirmations < needed).map((d) => d.amount));
  const late = sumUnits(inv.deposits.filter(isLateMoney).map((d) => d.amount));
  const dropped = sumUnits(inv.deposits.filter((d) => !d.late && d.dropped).map((d) => d.amount));
  const amount = BigInt(inv.amount);
  const arrived = paid + pending;
  // What the buyer still has to send: money on its way counts, or the page would ask them to pay it twice.
  const due = arrived < amount ? amount - arrived : 0n;
  return { paid, pending, late, dropped, due, overpaid: paid > amount ? paid - amount : 0n };
}

/** An invoice as the shop's API, its postbacks and the buyer's status route show it. */
export function invoiceView(inv: Invoice, publicBaseUrl: string) {
  const t = invoiceTotals(inv);
  const fmt = (units: bigint | string) => formatBaseUnits(units, inv.decimals);
  const needed = confirmationsNeeded(inv.network);
  return {
    id: inv.id,
    shopInvoiceId: inv.shopInvoiceId,
    status: inv.status,
    coin: inv.coin,
    network: inv.network,
    amount: fmt(inv.amount),
    paidAmount: fmt(t.paid),
    pendingAmount: fmt(t.pending),
    overpaidAmount: fmt(t.overpaid),
    lateAmount: fmt(t.late),
    address: inv.address,
    checkoutUrl: checkoutUrl(inv.id, publicBaseUrl),
    returnUrl: inv.returnUrl ?? null,
    title: inv.title,
    description: inv.description,
    email: inv.email ?? null,
    confirmationsNeeded: needed,
    deposits: inv.deposits.map((d) => ({
      txid: d.txid,
      amount: fmt(d.amount),
      confirmations: d.confirmations,
      confirmed: d.confirmations >= needed,
      late: d.late,
      dropped: d.dropped === true,
      seenAt: iso(d.seenAt),
    })),
    otherCoinDeposits: otherCoinDepositsView(inv),
    createdAt: iso(inv.createdAt),
    updatedAt: iso(inv.updatedAt),
    expiresAt: iso(inv.expiresAt),
    closedAt: iso(inv.closedAt),
  };
}

export type InvoiceView = ReturnType<typeof invoiceView>;

/**
 * Other coins' transfers to the invoice's address, as the shop's API, its postbacks, the console and the portal show
 * them. `amount` is in the coin's units when we know its decimals on the network, else null: a guess could misstate
 * it a trillionfold, so only the integer `baseUnits` the chain reported is shown then.
 */
export function otherCoinDepositsView(inv: Invoice) {
  const needed = confirmationsNeeded(inv.network);
  return otherCoinDepositsOf(inv).map((d) => {
    const decimals = coinDecimals(d.coin, inv.network);
    return {
      coin: d.coin,
      txid: d.txid,
      amount: decimals === undefined ? null : formatBaseUnits(d.amount, decimals),
      baseUnits: d.amount,
      confirmations: d.confirmations,
      confirmed: d.confirmations >= needed,
      dropped: d.dropped === true,
      seenAt: iso(d.seenAt),
    };
  });
}

/** True when the shop would see the same of both versions of an invoice (its view), whenever each was written. */
export function showsTheSame(a: Invoice, b: Invoice): boolean {
  const shown = (inv: Invoice) => JSON.stringify(invoiceView({ ...inv, updatedAt: 0 }, ""));
  return shown(a) === shown(b);
}

/** Characters V8 cannot keep at one byte (Latin-1 is what it can). */
const WIDE = /[\u0100-\uffff]/;
const WIDE_ALL = new RegExp(WIDE.source, "g");

/**
 * The postback body (Standard Webhooks payload shape: type, timestamp, data). The delivery keeps it in KV, which takes
 * 64 KiB a value, and V8 stores a string holding any character past U+00FF at two bytes a character: a title in
 * Chinese could double a full invoice's body (150 entries) past the limit, and its status could no longer move. So
 * such characters are sent as JSON escapes (`\uXXXX`): the same JSON to any parser; the signature covers the bytes
 * sent.
 */
export function invoicePostbackBody(inv: Invoice, type: InvoicePostbackType, now: number, base: string): string {
  const json = JSON.stringify({ type, timestamp: new Date(now).toISOString(), data: invoiceView(inv, base) });
  if (!WIDE.test(json)) return json;
  // JSON's own syntax is ASCII: such characters are only ever inside its strings, where an escape means the same.
  const escaped = json.replace(WIDE_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  // V8 keeps the representation a string was built from (the escaped copy of a two-byte string is two-byte still):
  // read back from its ASCII bytes, it is one byte a character.
  return new TextDecoder().decode(new TextEncoder().encode(escaped));
}

/**
 * What the buyer's QR code holds and the wallet link opens, for what is still due; `link` is null where wallets share
 * no payment URI.
 * - Bitcoin: BIP 21, `bitcoin:ADDRESS?amount=BTC`.
 * - Ethereum: EIP-681 on chain 1. Ether is `ethereum:ADDRESS@1?value=WEI`; a token is a call of its contract's
 *   `transfer`, `ethereum:CONTRACT@1/transfer?address=ADDRESS&uint256=UNITS`. Given the address with
 *   `?amount=…&token=USDT` (what this wrote before), a wallet may fill in an ether payment, which pays nothing here.
 * - Tron: wallets share no URI; the code holds the bare address, which Tron wallets scan, and the amount is on the
 *   page to copy.
 */
export function walletRequest(inv: Invoice): { qr: string; link: string | null } {
  const due = invoiceTotals(inv).due;
  const contract = findCoinOption(inv.coin, inv.network)?.contract ?? null;
  switch (inv.network) {
    case "bitcoin": {
      const uri = `bitcoin:${inv.address}?amount=${formatBaseUnits(due, inv.decimals)}`;
      return { qr: uri, link: uri };
    }
    case "ethereum": {
      // Ether only for ETH itself: a token without its contract here must not become an ether request for its units.
      const uri = contract
        ? `ethereum:${contract}@${ETHEREUM_CHAIN_ID}/transfer?address=${inv.address}&uint256=${due}`
        : inv.coin === "ETH"
        ? `ethereum:${inv.address}@${ETHEREUM_CHAIN_ID}?value=${due}`
        : null;
      return uri ? { qr: uri, link: uri } : { qr: inv.address, link: null };
    }
    case "tron":
      return { qr: inv.address, link: null };
  }
}

/** Ethereum's main network, named in payment URIs so a wallet on another chain does not pay there. */
const ETHEREUM_CHAIN_ID = 1;

/** What the buyer's page and its status route show: the invoice's state, nothing of the shop's own. */
export function buyerStatusView(inv: Invoice, now: number) {
  const t = invoiceTotals(inv);
  const fmt = (units: bigint) => formatBaseUnits(units, inv.decimals);
  const needed = confirmationsNeeded(inv.network);
  const onItsWay = inv.deposits.filter((d) => countsToward(d) && d.confirmations < needed).map((d) => d.confirmations);
  return {
    status: inv.status,
    coin: inv.coin,
    /** For how long confirmations take there (coins.ts). */
    network: inv.network,
    amount: formatBaseUnits(inv.amount, inv.decimals),
    paidAmount: fmt(t.paid),
    pendingAmount: fmt(t.pending),
    overpaidAmount: fmt(t.overpaid),
    lateAmount: fmt(t.late),
    /** Transfers the chain dropped before they were confirmed: the buyer's to send again. */
    droppedAmount: fmt(t.dropped),
    /** Still to send, counting what is on its way. */
    dueAmount: fmt(t.due),
    confirmationsNeeded: needed,
    /** The least-confirmed deposit still on its way, for "3 of 20 confirmations"; null when none is. */
    confirmations: onItsWay.length ? Math.min(...onItsWay) : null,
    expiresAt: inv.expiresAt,
    /** True while the invoice still expires at expiresAt: open, and what arrived by then would not keep it open. */
    expires: canMoveInvoice(inv.status, "expired") && !heldOpenPastExpiry(inv, inv.deposits),
    now,
  };
}

export type BuyerStatus = ReturnType<typeof buyerStatusView>;
