/** Shop-portal sign-in links (single use) and sessions scoped to one shop. */
export interface PortalSession {
  id: string;
  shopId: string;
  createdAt: number;
  expiresAt: number;
}

const usedLinkKey = (jti: string) => ["portal_links_used", jti] as const;
const sessionKey = (id: string) => ["portal_sessions", id] as const;

/** Marks a sign-in link used; false when it was used before (links work once). */
export async function useSigninLink(kv: Deno.Kv, jti: string, ttlMs: number): Promise<boolean> {
  const res = await kv.atomic()
    .check({ key: usedLinkKey(jti), versionstamp: null })
    .set(usedLinkKey(jti), true, { expireIn: ttlMs })
    .commit();
  return res.ok;
}

export async function createPortalSession(kv: Deno.Kv, s: PortalSession) {
  await kv.set(sessionKey(s.id), s, { expireIn: s.expiresAt - s.createdAt });
}

export async function getPortalSession(kv: Deno.Kv, id: string): Promise<PortalSession | null> {
  return (await kv.get<PortalSession>(sessionKey(id))).value;
}

export async function deletePortalSession(kv: Deno.Kv, id: string) {
  await kv.delete(sessionKey(id));
}
