import assert from "node:assert/strict";
import { storedInvoice } from "../../fixtures/invoices.ts";
import { walletRequest } from "./view.ts";

const now = 1_800_000_000_000;
const address = "0x1111111111111111111111111111111111111111";

Deno.test("[invoices] a USDT invoice on Ethereum asks wallets for a transfer of Tether's own contract (EIP-681), never for ether", () => {
  const inv = storedInvoice(now, { coin: "USDT", network: "ethereum", decimals: 6, amount: "12500000", address });
  const uri = "ethereum:0xdAC17F958D2ee523a2206206994597C13D831ec7@1/transfer?address=" + address + "&uint256=12500000";
  assert.deepEqual(walletRequest(inv), { qr: uri, link: uri });
});

Deno.test("[invoices] an ether invoice asks for its value in wei on Ethereum's main chain; Bitcoin in BTC (BIP 21)", () => {
  const eth = storedInvoice(now, {
    coin: "ETH",
    network: "ethereum",
    decimals: 18,
    amount: "120000000000000000",
    address,
  });
  assert.equal(walletRequest(eth).link, `ethereum:${address}@1?value=120000000000000000`);
  const btc = storedInvoice(now, {
    coin: "BTC",
    network: "bitcoin",
    decimals: 8,
    amount: "150000",
    address: "bc1qxyz",
  });
  assert.equal(walletRequest(btc).link, "bitcoin:bc1qxyz?amount=0.0015");
});

Deno.test("[invoices] what is still due is asked, not the whole amount", () => {
  const paidPart = {
    txid: "t1",
    amount: "10000000",
    confirmations: 20,
    seenAt: now,
  } as NonNullable<ReturnType<typeof storedInvoice>["deposits"]>[number];
  const inv = storedInvoice(now, {
    coin: "USDT",
    network: "ethereum",
    decimals: 6,
    amount: "12500000",
    address,
    status: "partially_paid",
    deposits: [paidPart],
  });
  assert.match(walletRequest(inv).link!, /&uint256=2500000$/);
});

Deno.test("[invoices] on Tron, where wallets share no payment URI, the code holds the bare address and there is no link", () => {
  const inv = storedInvoice(now, { address: "TXYZabc" });
  assert.deepEqual(walletRequest(inv), { qr: "TXYZabc", link: null });
});

Deno.test("[invoices] a token on Ethereum whose contract we do not know is never asked for as ether", () => {
  // A coin row added without its contract: the address alone, as on Tron, rather than its units in wei.
  const inv = storedInvoice(now, {
    coin: "USDC" as "USDT",
    network: "ethereum",
    decimals: 6,
    amount: "12500000",
    address,
  });
  assert.deepEqual(walletRequest(inv), { qr: address, link: null });
});
