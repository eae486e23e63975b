import { jwtVerify, SignJWT } from "jose";
import type { AppContext } from "../context.ts";
import { writeAudit } from "../db/audit.ts";
import { deletePortalSession, getPortalSession, openPortalSession, type PortalSession } from "../db/portal.ts";
import { getShop } from "../db/shops.ts";
import { AppError, NotFoundError } from "../errors.ts";
import { randomId } from "../ids.ts";
import { SESSION_TTL_MS } from "./operators.ts";

const LINK_TTL_MS = 24 * 60 * 60 * 1000;
/** Link and session tokens share the signing key but never validate as each other. */
const LINK_AUDIENCE = "portal-link";
const SESSION_AUDIENCE = "portal-session";

/** A single-use sign-in link for a shop's staff, valid 24 hours; created by an operator. */
export async function createPortalLink(ctx: AppContext, shopId: string, actor: string): Promise<string> {
  if (!(await getShop(ctx.kv, shopId))) throw new NotFoundError("Unknown shop.");
  const now = ctx.now();
  const link = randomId("lnk");
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(shopId)
    .setAudience(LINK_AUDIENCE)
    .setJti(link)
    .setIssuedAt(Math.floor(now / 1000))
    .setExpirationTime(Math.floor((now + LINK_TTL_MS) / 1000))
    .sign(ctx.sessionKey);
  // The link's id is what ties the session it opens (and everything done in it) to the operator who made it. The link
  // is a signed token and nothing else is stored: recorded first, it is handed out only once the log has it.
  await writeAudit(ctx.kv, { at: now, actor, action: "portal.link", target: shopId, before: null, after: { link } });
  return `${ctx.config.publicBaseUrl}/portal/signin?token=${encodeURIComponent(token)}`;
}

/** Checks a sign-in link without using it up (the confirmation page). */
export async function peekPortalLink(ctx: AppContext, token: string): Promise<{ shopId: string; jti: string }> {
  try {
    const { payload } = await jwtVerify(token, ctx.sessionKey, {
      algorithms: ["HS256"],
      audience: LINK_AUDIENCE,
      currentDate: new Date(ctx.now()),
    });
    if (!payload.sub || !payload.jti) throw new Error("incomplete");
    return { shopId: payload.sub, jti: payload.jti };
  } catch {
    throw new AppError(401, "invalid_link", "This sign-in link is invalid or expired. Ask your contact for a new one.");
  }
}

/** Uses a sign-in link (once) and opens a portal session for its shop. */
export async function signInWithLink(ctx: AppContext, token: string): Promise<string> {
  const { shopId, jti } = await peekPortalLink(ctx, token);
  const now = ctx.now();
  const session: PortalSession = { id: randomId("pses"), shopId, createdAt: now, expiresAt: now + SESSION_TTL_MS };
  const opened = await openPortalSession(ctx.kv, { jti, ttlMs: LINK_TTL_MS }, session, {
    at: now,
    actor: portalActor(session),
    action: "portal.signin",
    target: shopId,
    before: null,
    after: { link: jti },
  });
  if (!opened) {
    throw new AppError(401, "invalid_link", "This sign-in link was already used. Ask your contact for a new one.");
  }
  return await new SignJWT({ sid: session.id })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(shopId)
    .setAudience(SESSION_AUDIENCE)
    .setExpirationTime(Math.floor(session.expiresAt / 1000))
    .sign(ctx.sessionKey);
}

export async function authenticatePortal(ctx: AppContext, token: string | undefined): Promise<PortalSession | null> {
  if (!token) return null;
  try {
    const { payload } = await jwtVerify(token, ctx.sessionKey, {
      algorithms: ["HS256"],
      audience: SESSION_AUDIENCE,
      currentDate: new Date(ctx.now()),
    });
    const session = typeof payload.sid === "string" ? await getPortalSession(ctx.kv, payload.sid) : null;
    if (!session || session.shopId !== payload.sub || session.expiresAt <= ctx.now()) return null;
    const shop = await getShop(ctx.kv, session.shopId);
    return shop?.status === "active" ? session : null;
  } catch {
    return null;
  }
}

export async function signOutPortal(ctx: AppContext, session: PortalSession) {
  await deletePortalSession(ctx.kv, session.id);
}

/**
 * Who did something in the portal, for the audit log: the shop and the session. A session opens from one sign-in
 * link, whose id its sign-in entry names, and the link's own entry names the operator who made it for someone.
 */
export function portalActor(session: Pick<PortalSession, "shopId" | "id">): string {
  return `portal:${session.shopId}:${session.id}`;
}
