import type { Context } from "hono";
import { parseIpv6 } from "../lib/relay/url_guard.ts";

/**
 * The connection's address, not X-Forwarded-For, which a client could forge to dodge a limit. Requests that did
 * not come through Deno.serve (tests calling app.request) share "unknown".
 */
export function clientAddress(c: Context): string {
  return (c.env as Deno.ServeHandlerInfo<Deno.NetAddr> | undefined)?.remoteAddr?.hostname ?? "unknown";
}

/**
 * The address rate limits count a client by: an IPv4 address whole, an IPv6 address by its /64, the smallest block
 * a network is given (one home or phone holds all of it, so counting each address would let it try 2^64 times).
 */
export function limitedAddress(c: Context): string {
  return addressForLimits(clientAddress(c));
}

export function addressForLimits(address: string): string {
  const groups = address.includes(":") ? parseIpv6(address) : null;
  if (!groups) return address;
  // An IPv4-mapped address (::ffff:a.b.c.d) counts as its IPv4 one.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6] >> 8, groups[6] & 255, groups[7] >> 8, groups[7] & 255].join(".");
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}
