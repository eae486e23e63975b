import type { Context } from "hono";
import type { AppContext } from "../lib/context.ts";
import { unauthenticatedLimiter } from "../lib/auth/rate_limit.ts";
import { NotFoundError } from "../lib/errors.ts";
import { limitedAddress } from "./_client_address.ts";

/**
 * A lookup on a public page by an id its visitor was given (a buyer's invoice or payment form). The ids cannot be
 * guessed, and an address whose lookups keep finding nothing is refused (429) for the rest of the minute: its misses
 * count on the app's one counter of unauthenticated attempts, with bad API keys and rejected webhooks.
 */
export async function publicLookup<T>(ctx: AppContext, c: Context, find: () => Promise<T>): Promise<T> {
  const limiter = unauthenticatedLimiter(ctx);
  const address = limitedAddress(c);
  limiter.refuseIfOver(address, ctx.now());
  try {
    return await find();
  } catch (err) {
    if (err instanceof NotFoundError) limiter.take(address, ctx.now());
    throw err;
  }
}
