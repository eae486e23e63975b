import type { Context } from "hono";

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
  if (!address.includes(":")) return address;
  // The first four groups, with "::" spelled out; an IPv4-mapped address counts as its IPv4 one.
  const mapped = address.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i);
  if (mapped) return mapped[1];
  const [head, tail = ""] = address.toLowerCase().split("%")[0].split("::");
  const headGroups = head ? head.split(":") : [];
  const tailGroups = tail ? tail.split(":") : [];
  const groups = address.includes("::")
    ? [...headGroups, ...Array(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill("0"), ...tailGroups]
    : headGroups;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}
