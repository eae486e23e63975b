import { SignJWT } from "jose";
import type { MetabaseConfig } from "../config.ts";

/** Metabase's limit for us: embed tokens live at most ten minutes. */
const EMBED_TTL_SECONDS = 10 * 60;

/**
 * A signed Metabase embed URL (static embedding): HS256 over `resource` and
 * `params` with the embedding secret. For a shop the `shop_id` parameter is
 * locked inside the signed token, so the shop cannot change it in the page.
 */
export async function dashboardEmbedUrl(
  mb: MetabaseConfig,
  view: { kind: "operator" } | { kind: "shop"; shopId: string },
  now: number,
): Promise<string> {
  const dashboard = view.kind === "operator" ? mb.operatorDashboardId : mb.shopDashboardId;
  const params = view.kind === "shop" ? { shop_id: view.shopId } : {};
  const token = await new SignJWT({ resource: { dashboard }, params })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(Math.floor(now / 1000))
    .setExpirationTime(Math.floor(now / 1000) + EMBED_TTL_SECONDS)
    .sign(new TextEncoder().encode(mb.secretKey));
  return `${mb.siteUrl}/embed/dashboard/${token}#bordered=false&titled=true`;
}
