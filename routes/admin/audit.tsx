import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { type AuditAction, type AuditEntry, searchAudit } from "../../lib/db/audit.ts";
import { hasIdShape } from "../../lib/ids.ts";
import { listShops } from "../../lib/db/shops.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, formatTime } from "../../components/admin_layout.tsx";
import type { ConsoleEnv } from "./_session.ts";

/**
 * Each audited action as the middle of a sentence: "<actor> <words> <target>". Over every action the code writes
 * (AUDIT_ACTIONS), so an action without its words is a type error; an entry of an action no longer written (an older
 * version's) is shown by its code.
 */
const ACTION_WORDS = {
  "account.create": "created the provider account",
  "account.disable": "disabled the provider account",
  "account.enable": "enabled the provider account",
  "account.rotate": "replaced the credentials of the provider account",
  "form.create": "created the payment form",
  "form.disable": "disabled the payment form",
  "invoice.cancel": "cancelled the invoice",
  "key.create": "created an API key for",
  "key.revoke": "revoked an API key of",
  "operator.create": "created the operator",
  "operator.disable": "disabled the operator",
  "operator.enable": "enabled the operator",
  "operator.password": "changed the password of",
  "operator_token.create": "created the API token",
  "operator_token.revoke": "revoked the API token",
  "paid_orphan.handle": "marked handled the paid orphan (money at the provider no payment names)",
  "payment.recheck": "asked the provider again about",
  "payment.refund": "refunded",
  "portal.link": "created a portal sign-in link for",
  "portal.signin": "signed in to the portal of",
  "postback.replay": "replayed the failed and retrying postbacks of",
  "postback.resend": "resent a postback of",
  "refund.settle": "settled by hand, after checking with the provider, a refund of",
  "shop.create": "created the shop",
  "shop.update": "changed the settings of",
  "shop.enable": "enabled the shop",
  "shop.disable": "disabled the shop",
  "shop.rotate_secret": "rotated the postback signing secret of",
  "shop.rotate_secret.refused": "was refused a rotation of the postback signing secret of",
  "shop.switch_signing": "switched the postback signing of",
  "shop.switch_signing.refused": "was refused a switch of the postback signing of",
  "shop.end_signing_overlap": "ended the signing overlap of",
  "shop.redirect_signing": "changed redirect signing of",
  "shop.routing": "changed the routing of",
  "shop.rate_limit": "changed the rate limit of",
  "shop.embed_origins": "changed the sites that may embed the pages of",
  "signin": "signed in from",
  "signin.failed": "failed to sign in from",
  "signout": "signed out of the session",
} as const satisfies Record<AuditAction, string>;

/** What an entry's action says, in words when it is one the code writes (see ACTION_WORDS). */
function actionWords(action: string): string {
  return (ACTION_WORDS as Record<string, string>)[action] ?? action;
}

/** Fields that hold secrets or their hashes: the audit names the change, never the value. */
const HIDDEN_FIELDS = /secret|hash|token|password/i;

export function auditRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  app.get("/", async (c) => {
    const q = c.req.query("q")?.slice(0, 200) ?? "";
    const [entries, shops] = await Promise.all([searchAudit(ctx.kv, { query: q, limit: 200 }), listShops(ctx.kv)]);
    const shopNames = new Map(shops.map((s) => [s.id, s.name]));
    return c.html(renderPage(
      <AdminLayout title="Audit log" path="/admin/audit" email={c.var.operator.email} csrf={c.var.csrf}>
        <form method="get" action="/admin/audit" class="filters" role="search">
          <label>
            Search <input type="search" name="q" value={q} placeholder="operator, action, shop or payment id" />
          </label>
          <button type="submit">Search</button>
        </form>
        <div class="table-wrap">
          <table class="stack-phone">
            <thead>
              <tr>
                <th>When (UTC)</th>
                <th>What happened</th>
                <th>Changes</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr key={e.id}>
                  <td data-label="When">{formatTime(e.at)}</td>
                  <td data-label="What">
                    <strong>{e.actor}</strong> {actionWords(e.action)}{" "}
                    <AuditTarget target={e.target} shopNames={shopNames} /> <code class="muted">{e.action}</code>
                  </td>
                  <td data-label="Changes" class="small">
                    <AuditChanges entry={e} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </AdminLayout>,
    ));
  });
  return app;
}

/** What an entry names, linked when the console has a page for it. */
function AuditTarget({ target, shopNames }: { target: string; shopNames: Map<string, string> }) {
  if (target.startsWith("shop_")) {
    return <a href={`/admin/shops/${target}`}>{shopNames.get(target) ?? target}</a>;
  }
  const page = hasIdShape("payment", target)
    ? `/admin/payments/${target}`
    : hasIdShape("invoice", target)
    ? `/admin/invoices/${target}`
    : hasIdShape("account", target)
    ? `/admin/accounts#account-${target}`
    : null;
  if (page) {
    return (
      <a href={page}>
        <code>{target}</code>
      </a>
    );
  }
  return <code>{target}</code>;
}

/** The fields that changed, one per line as "field: before → after"; secrets only as "changed". */
function AuditChanges({ entry }: { entry: AuditEntry }) {
  const before = asRecord(entry.before);
  const after = asRecord(entry.after);
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((k) =>
    JSON.stringify(before[k]) !== JSON.stringify(after[k])
  );
  if (!keys.length) return <span class="muted">—</span>;
  return (
    <ul class="changes">
      {keys.slice(0, 12).map((k) => (
        <li key={k}>
          {k}: {HIDDEN_FIELDS.test(k) ? "changed" : (
            <>
              {k in before && <code>{show(before[k])}</code>}
              {k in before && k in after && " → "}
              {k in after && <code>{show(after[k])}</code>}
            </>
          )}
        </li>
      ))}
    </ul>
  );
}

function asRecord(v: unknown): Record<string, unknown> {
  return v && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : v == null ? {} : { value: v };
}

/** A value for reading: times as UTC, long values cut. */
function show(v: unknown): string {
  if (typeof v === "number" && v > 1e12 && v < 1e14) return formatTime(v);
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s.length > 120 ? s.slice(0, 117) + "…" : s;
}
