import type { Context } from "hono";

/**
 * The connection's address, not X-Forwarded-For, which a client could forge to dodge a limit. Requests that did
 * not come through Deno.serve (tests calling app.request) share "unknown".
 */
export function clientAddress(c: Context): string {
  return (c.env as Deno.ServeHandlerInfo<Deno.NetAddr> | undefined)?.remoteAddr?.hostname ?? "unknown";
}
