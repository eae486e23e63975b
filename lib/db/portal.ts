import { addAuditOps, type NewAuditEntry } from "./audit.ts";

/** Shop-portal sign-in links (single use) and sessions scoped to one shop. */
export interface PortalSession {
  id: string;
  shopId: string;
  createdAt: number;
  expiresAt: number;
}

const usedLinkKey = (jti: string) => ["portal_links_used", jti] as const;
const sessionKey = (id: string) => ["portal_sessions", id] as const;

/**
 * Uses a sign-in link up (links work once) and opens the session it signs in to, with its audit entry, in one atomic
 * operation; false, with nothing written, when the link was used before.
 */
export async function openPortalSession(
  kv: Deno.Kv,
  link: { jti: string; ttlMs: number },
  s: PortalSession,
  audit: NewAuditEntry,
): Promise<boolean> {
  const op = kv.atomic()
    .check({ key: usedLinkKey(link.jti), versionstamp: null })
    .set(usedLinkKey(link.jti), true, { expireIn: link.ttlMs })
    .set(sessionKey(s.id), s, { expireIn: s.expiresAt - s.createdAt });
  return (await addAuditOps(op, audit).commit()).ok;
}

export async function getPortalSession(kv: Deno.Kv, id: string): Promise<PortalSession | null> {
  return (await kv.get<PortalSession>(sessionKey(id))).value;
}

export async function deletePortalSession(kv: Deno.Kv, id: string) {
  await kv.delete(sessionKey(id));
}
