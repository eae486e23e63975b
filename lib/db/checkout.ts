import type { CheckoutSession } from "../checkout/types.ts";

/** A checkout session by its id; the client secret is never a key, only a hash inside the record. */
const sessionKey = (id: string) => ["checkout_sessions", id] as const;

/** Adds a new session to the atomic operation that stores its payment: both are stored, or neither. */
export function addCheckoutSessionOps(op: Deno.AtomicOperation, session: CheckoutSession) {
  op.check({ key: sessionKey(session.id), versionstamp: null }).set(sessionKey(session.id), session);
}

export async function getCheckoutSession(kv: Deno.Kv, id: string): Promise<CheckoutSession | null> {
  return (await kv.get<CheckoutSession>(sessionKey(id))).value;
}
