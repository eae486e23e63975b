import { z } from "zod";
import { constantTimeEqual, hmacSha256Hex } from "../crypto.ts";
import { type Network, NETWORK_IDS } from "./coins.ts";

/**
 * The chain service's wire: what it answers about addresses and deposits, and
 * its signed notices. Shared by our client and the chain simulator, so the two
 * cannot drift apart. Amounts are integer strings of base units.
 */
export const NetworkSchema = z.enum(NETWORK_IDS as [Network, ...Network[]]);
const BaseUnits = z.string().regex(/^[0-9]{1,40}$/, "must be an integer string of base units");

export const ChainDeposit = z.object({
  txid: z.string().min(1).max(200),
  /**
   * What was sent, as our coin ids name it (COIN_IDS: USDT being Tether's own token on that network, never another
   * token of the same symbol): one address of a network takes every coin of that network (ETH and USDT on ethereum
   * share a pool), and an amount means nothing without its coin's base units. Read in capitals, whatever the case.
   */
  coin: z.string().min(1).max(20).transform((coin) => coin.toUpperCase()),
  amount: BaseUnits,
  confirmations: z.int().nonnegative(),
  /** When the chain first saw it, ms since the epoch. */
  seenAt: z.int().nonnegative(),
});
export type ChainDeposit = z.infer<typeof ChainDeposit>;

/** The most transfers one answer about an address may list: an address showing more cannot be read at all. */
export const MAX_DEPOSITS_SHOWN = 1000;

/** An address's deposits, one entry per transaction (its outputs to the address summed). */
export const AddressState = z.object({
  network: NetworkSchema,
  address: z.string().min(1).max(200),
  height: z.int().nonnegative(),
  deposits: z.array(ChainDeposit).max(MAX_DEPOSITS_SHOWN),
});
export type AddressState = z.infer<typeof AddressState>;

export const NewAddressResponse = z.object({
  network: NetworkSchema,
  address: z.string().min(1).max(200),
  /** Every address made by the call (more than one when a `count` was asked for); `address` is the first. */
  addresses: z.array(z.string().min(1).max(200)).min(1).max(100),
});

/** A notice: something happened at an address (a deposit seen or confirmed). A hint; we read the address again. */
export const ChainNotice = z.object({
  eventId: z.string().min(1).max(200),
  network: NetworkSchema,
  address: z.string().min(1).max(200),
  txid: z.string().min(1).max(200),
  confirmations: z.int().nonnegative(),
});
export type ChainNotice = z.infer<typeof ChainNotice>;

export const CHAIN_SIGNATURE_HEADER = "chain-signature";
const TOLERANCE_SECONDS = 300;

export function signChainNotice(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${hmacSha256Hex(secret, `${timestamp}.${body}`)}`;
}

/** Why a notice's signature fails, or null when it is valid and fresh. */
export function checkChainSignature(secret: string, header: string | null, body: string, nowSeconds: number) {
  if (!header) return "missing signature";
  const parts = Object.fromEntries(header.split(",").map((p) => p.trim().split("=", 2)));
  const timestamp = Number(parts.t);
  if (!Number.isInteger(timestamp)) return "malformed signature";
  if (Math.abs(nowSeconds - timestamp) > TOLERANCE_SECONDS) return "timestamp outside the allowed window";
  const mac = String(parts.v1 ?? "");
  if (!/^[0-9a-f]{64}$/.test(mac)) return "malformed signature";
  return constantTimeEqual(mac, hmacSha256Hex(secret, `${timestamp}.${body}`)) ? null : "signature mismatch";
}
