import { type Context, Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { getShop, listApiKeys, listShops, type Shop } from "../../lib/db/shops.ts";
import type { ApiKeyRecord } from "../../lib/db/shops.ts";
import { NotFoundError, ValidationError } from "../../lib/errors.ts";
import {
  createShop,
  createShopKey,
  listFromField,
  revokeShopKey,
  setEmbedOrigins,
  setShopRateLimit,
  setShopStatus,
  UnconfirmedRemovalError,
  updateShopSettings,
} from "../../lib/shops.ts";
import { renderPage } from "../../components/html.tsx";
import {
  AdminLayout,
  ConfirmStep,
  CsrfField,
  DestructiveButton,
  Field,
  Flash,
  formatTime,
} from "../../components/admin_layout.tsx";
import { Island } from "../../components/island.tsx";
import { SigningCard } from "../../components/signing.tsx";
import { EmbeddingCard, embedRemovalConfirmed, embedRemovalQuestion } from "../../components/embedding.tsx";
import { type ConsoleEnv, redirectWithReveal, takeReveal } from "./_session.ts";
import { createPortalLink } from "../../lib/auth/portal.ts";
import { ID_PATTERNS } from "../../lib/ids.ts";
import { shopRouting } from "../../lib/accounts/routing.ts";

/** A shop id in the path; any other shape is not found before it reaches KV. */
const SHOP = `/:id{${ID_PATTERNS.shop}}` as const;

/** Shops: list, create, edit, disable; keys; signing-secret rotation. */
export function shopRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  const opts = (actor: string) => ({
    actor,
    allowLocalUrls: ctx.config.allowLocalUrls,
    now: ctx.now(),
    resolve: ctx.resolve,
  });

  app.get("/", async (c) => {
    const shops = await listShops(ctx.kv);
    return c.html(renderPage(
      <AdminLayout title="Shops" path="/admin/shops" email={c.var.operator.email} csrf={c.var.csrf}>
        <ShopList shops={shops} />
        <NewShopForm csrf={c.var.csrf} />
      </AdminLayout>,
    ));
  });

  app.post("/", async (c) => {
    const f = c.var.form;
    try {
      const { shop, apiKey } = await createShop(ctx.kv, {
        name: f.name ?? "",
        allowedHosts: listFromField(f.allowedHosts),
        defaultPostbackUrl: f.defaultPostbackUrl || null,
      }, opts(c.var.operator.email));
      return c.html(
        renderPage(
          <AdminLayout
            title={`Shop created: ${shop.name}`}
            path="/admin/shops"
            email={c.var.operator.email}
            csrf={c.var.csrf}
          >
            <SecretsOnce
              items={[["API key", apiKey], ["Postback signing secret", shop.webhookSecret]]}
              note="Give these to the shop now: they are shown only once."
            />
            <p>
              <a href={`/admin/shops/${shop.id}`}>Go to the shop</a>
            </p>
          </AdminLayout>,
        ),
        201,
      );
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      const shops = await listShops(ctx.kv);
      return c.html(
        renderPage(
          <AdminLayout title="Shops" path="/admin/shops" email={c.var.operator.email} csrf={c.var.csrf}>
            <ShopList shops={shops} />
            <NewShopForm csrf={c.var.csrf} values={f} errors={err.fields} />
          </AdminLayout>,
        ),
        400,
      );
    }
  });

  const detail = async (c: Context<ConsoleEnv>, extra: {
    errors?: Record<string, string>;
    values?: Record<string, string>;
    flash?: string;
    secrets?: [string, string][];
  } = {}, status = 200) => {
    const shop = await getShop(ctx.kv, c.req.param("id") ?? "");
    if (!shop) throw new NotFoundError("Unknown shop.");
    const keys = await listApiKeys(ctx.kv, shop.id);
    return c.html(
      renderPage(
        <AdminLayout title={shop.name} path="/admin/shops" email={c.var.operator.email} csrf={c.var.csrf}>
          {extra.flash && <Flash kind="ok">{extra.flash}</Flash>}
          {extra.secrets && <SecretsOnce items={extra.secrets} note="Shown only once: copy it now." />}
          <ShopDetail
            shop={shop}
            keys={keys}
            csrf={c.var.csrf}
            errors={extra.errors}
            values={extra.values}
            now={ctx.now()}
            defaultRateLimit={ctx.config.rateLimitPerMinute}
          />
        </AdminLayout>,
      ),
      status as 200,
    );
  };

  app.get(SHOP, (c) => {
    const reveal = takeReveal(c);
    return detail(c, { flash: reveal?.flash, secrets: reveal?.secrets });
  });

  /** The question of a risky action on a page of its own, when the page's script did not ask: its form again. */
  const confirmPage = (
    c: Context<ConsoleEnv>,
    step: { question: string; button: string; destructive: boolean; fields?: Record<string, string> },
  ) =>
    c.html(renderPage(
      <AdminLayout title="Please confirm" path="/admin/shops" email={c.var.operator.email} csrf={c.var.csrf}>
        <ConfirmStep
          {...step}
          action={c.req.path}
          csrf={c.var.csrf}
          cancel={`/admin/shops/${c.req.param("id")}`}
        />
      </AdminLayout>,
    ));
  /** Risky actions are confirmed: by the page's script, or else by this page. */
  const confirmFirst = (
    c: Context<ConsoleEnv>,
    step: { question: string; button: string; destructive: boolean; fields?: Record<string, string> },
  ) => c.var.form.confirm === "yes" ? null : confirmPage(c, step);
  const shopPath = (c: Context<ConsoleEnv>) => `/admin/shops/${c.req.param("id")}`;

  app.post(SHOP, async (c) => {
    const f = c.var.form;
    try {
      await updateShopSettings(ctx.kv, c.req.param("id"), {
        name: f.name ?? "",
        allowedHosts: listFromField(f.allowedHosts),
        defaultPostbackUrl: f.defaultPostbackUrl || null,
      }, opts(c.var.operator.email));
      return detail(c, { flash: "Saved." });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      return detail(c, { errors: err.fields, values: f }, 400);
    }
  });

  app.post(`${SHOP}/rate-limit` as const, async (c) => {
    const raw = (c.var.form.rateLimitPerMinute ?? "").trim();
    try {
      await setShopRateLimit(ctx.kv, c.req.param("id"), raw === "" ? null : Number(raw), {
        actor: c.var.operator.email,
        now: ctx.now(),
      });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      return detail(c, { errors: err.fields, values: c.var.form }, 400);
    }
    return redirectWithReveal(c, {
      path: shopPath(c),
      flash: raw === "" ? "Rate limit: back to the default." : `Rate limit: ${raw} requests a minute per key.`,
    });
  });

  app.post(`${SHOP}/embed` as const, async (c) => {
    const value = c.var.form.embedOrigins ?? "";
    const origins = listFromField(value);
    try {
      await setEmbedOrigins(ctx.kv, c.req.param("id"), origins, {
        actor: c.var.operator.email,
        now: ctx.now(),
        allowLocalUrls: ctx.config.allowLocalUrls,
        removing: embedRemovalConfirmed(c.var.form),
      });
    } catch (err) {
      // Taking a site away stops the shop's checkout on its pages: asked first, naming what goes, when the page's
      // script did not ask (or asked about other sites than the list takes away now).
      if (err instanceof UnconfirmedRemovalError) {
        return confirmPage(c, {
          question: embedRemovalQuestion(err.removed.join(", "), "this shop's"),
          button: "Save embedding sites",
          destructive: true,
          fields: { embedOrigins: value, removing: err.removed.join(" ") },
        });
      }
      if (!(err instanceof ValidationError)) throw err;
      return detail(c, { errors: err.fields, values: c.var.form }, 400);
    }
    return redirectWithReveal(c, {
      path: shopPath(c),
      flash: origins.length ? "Embedding sites saved." : "No site may frame this shop's pages now.",
    });
  });

  app.post(`${SHOP}/status` as const, async (c) => {
    const status = c.var.form.status === "active" ? "active" : "disabled";
    const ask = status === "disabled" && confirmFirst(c, {
      question: "Disable this shop? Its API keys stop working at once and it cannot start payments.",
      button: "Disable shop",
      destructive: true,
      fields: { status },
    });
    if (ask) return ask;
    await setShopStatus(ctx.kv, c.req.param("id"), status, { actor: c.var.operator.email, now: ctx.now() });
    return redirectWithReveal(c, {
      path: shopPath(c),
      flash: status === "active" ? "Shop enabled." : "Shop disabled: its keys stop working now.",
    });
  });

  app.post(`${SHOP}/keys` as const, async (c) => {
    const kind = c.var.form.kind === "publishable" ? "publishable" : "secret";
    const { apiKey } = await createShopKey(ctx.kv, c.req.param("id"), {
      now: ctx.now(),
      actor: c.var.operator.email,
      kind,
    });
    // Redirected, so reloading the page shows the shop again instead of making another key.
    return redirectWithReveal(c, {
      path: shopPath(c),
      secrets: [[kind === "publishable" ? "New publishable key (for the browser)" : "New API key", apiKey]],
    });
  });

  app.post(`${SHOP}/keys/:keyId{${ID_PATTERNS.key}}/revoke` as const, async (c) => {
    const ask = confirmFirst(c, {
      question: "Revoke this API key? Requests with it fail from the next one on; this cannot be undone.",
      button: "Revoke key",
      destructive: true,
    });
    if (ask) return ask;
    await revokeShopKey(ctx.kv, { shopId: c.req.param("id"), keyId: c.req.param("keyId") }, {
      now: ctx.now(),
      actor: c.var.operator.email,
    });
    return redirectWithReveal(c, { path: shopPath(c), flash: "Key revoked: it fails from the next request on." });
  });

  app.post(`${SHOP}/portal-link` as const, async (c) => {
    const link = await createPortalLink(ctx, c.req.param("id"), c.var.operator.email);
    return redirectWithReveal(c, {
      path: shopPath(c),
      secrets: [["Portal sign-in link (single use, 24 h)", link]],
      flash: "Send this link to the shop's staff: it signs them in to their own portal once.",
    });
  });

  return app;
}

function ShopList({ shops }: { shops: Shop[] }) {
  if (!shops.length) return <p class="muted">No shops yet.</p>;
  return (
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Id</th>
            <th>Status</th>
            <th>Allowed hosts</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {shops.map((s) => (
            <tr key={s.id}>
              <td>
                <a href={`/admin/shops/${s.id}`}>{s.name}</a>
              </td>
              <td>
                <code>{s.id}</code>
              </td>
              <td class={s.status === "active" ? "ok" : "bad"}>{s.status}</td>
              <td>{s.allowedHosts.join(", ") || "any"}</td>
              <td>{formatTime(s.createdAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function NewShopForm(props: { csrf: string; values?: Record<string, string>; errors?: Record<string, string> }) {
  const e = props.errors ?? {};
  return (
    <section class="card">
      <h2>New shop</h2>
      <form method="post" action="/admin/shops" class="stack narrow">
        <CsrfField token={props.csrf} />
        <Field label="Name" name="name" value={props.values?.name} required error={e.name} />
        <Field
          label="Allowed hosts"
          name="allowedHosts"
          value={props.values?.allowedHosts}
          hint="Space or comma separated, e.g. shop.example *.shop.example. Empty allows any host."
          error={firstError(e, "allowedHosts")}
        />
        <Field
          label="Default postback URL"
          name="defaultPostbackUrl"
          type="url"
          value={props.values?.defaultPostbackUrl}
          error={e.defaultPostbackUrl}
        />
        <button type="submit">Create shop</button>
      </form>
    </section>
  );
}

function firstError(errors: Record<string, string>, prefix: string): string | undefined {
  const key = Object.keys(errors).find((k) => k === prefix || k.startsWith(prefix + "."));
  return key ? errors[key] : undefined;
}

function SecretsOnce({ items, note }: { items: [string, string][]; note: string }) {
  return (
    <section class="card secret" aria-live="polite">
      <p>
        <strong>{note}</strong>
      </p>
      {items.map(([label, value]) => (
        <div key={label} class="secret-row">
          <span>{label}</span>
          <code class="select-all" data-secret="">{value}</code>
          <Island name="CopyButton" props={{ text: value, label: "Copy" }} />
        </div>
      ))}
    </section>
  );
}

function ShopDetail(props: {
  shop: Shop;
  keys: ApiKeyRecord[];
  csrf: string;
  errors?: Record<string, string>;
  values?: Record<string, string>;
  now: number;
  defaultRateLimit: number;
}) {
  const { shop, csrf } = props;
  const e = props.errors ?? {};
  const v = props.values;
  return (
    <>
      <p class="muted">
        <code>{shop.id}</code> · created {formatTime(shop.createdAt)} · status{" "}
        <strong class={shop.status === "active" ? "ok" : "bad"}>{shop.status}</strong>
      </p>
      <section class="card">
        <h2>Settings</h2>
        <form method="post" action={`/admin/shops/${shop.id}`} class="stack narrow">
          <CsrfField token={csrf} />
          <Field label="Name" name="name" value={v?.name ?? shop.name} required error={e.name} />
          <Field
            label="Allowed hosts"
            name="allowedHosts"
            value={v?.allowedHosts ?? shop.allowedHosts.join(" ")}
            hint="Space or comma separated. Empty allows any host."
            error={firstError(e, "allowedHosts")}
          />
          <Field
            label="Default postback URL"
            name="defaultPostbackUrl"
            type="url"
            value={v?.defaultPostbackUrl ?? shop.defaultPostbackUrl ?? ""}
            error={e.defaultPostbackUrl}
          />
          <button type="submit">Save</button>
        </form>
      </section>
      <section class="card">
        <h2>Rate limit</h2>
        <p class="muted">
          {shop.rateLimitPerMinute
            ? `${shop.rateLimitPerMinute} requests a minute per API key (this shop's own limit).`
            : `${props.defaultRateLimit} requests a minute per API key (the default).`}
        </p>
        <form method="post" action={`/admin/shops/${shop.id}/rate-limit`} class="stack narrow">
          <CsrfField token={csrf} />
          <Field
            label="Requests a minute per key"
            name="rateLimitPerMinute"
            value={v?.rateLimitPerMinute ?? (shop.rateLimitPerMinute ? String(shop.rateLimitPerMinute) : "")}
            hint={`Empty for the default (${props.defaultRateLimit}). Counted for all servers together.`}
            error={e.rateLimitPerMinute}
          />
          <button type="submit">Save rate limit</button>
        </form>
      </section>
      <RoutingCard shop={shop} />
      <EmbeddingCard
        action={`/admin/shops/${shop.id}/embed`}
        csrf={csrf}
        value={v?.embedOrigins ?? (shop.embedOrigins ?? []).join("\n")}
        saved={shop.embedOrigins ?? []}
        whose="this shop's"
        error={e.embedOrigins}
      />
      <section class="card">
        <h2>API keys</h2>
        <div class="table-wrap">
          {
            /* On a phone, a card per key with its labels, as the console's lists: five columns in 390 px crushed the
              Revoke button into a letter a line. */
          }
          <table class="stack-phone">
            <thead>
              <tr>
                <th>Key</th>
                <th>Kind</th>
                <th>Created</th>
                <th>Revoked</th>
                <th></th>
              </tr>
            </thead>
            <tbody>
              {props.keys.map((k) => (
                <tr key={k.id}>
                  <td data-label="Key">
                    {/* A publishable key is public (it sits in the shop's pages): shown whole. */}
                    <code>{k.publishableKey ?? `${k.hint}…`}</code>
                  </td>
                  <td data-label="Kind">{k.kind === "publishable" ? "publishable" : "secret"}</td>
                  <td data-label="Created">{formatTime(k.createdAt)}</td>
                  <td data-label="Revoked">{formatTime(k.revokedAt)}</td>
                  <td class="row-actions">
                    {k.revokedAt === null && (
                      <form
                        method="post"
                        action={`/admin/shops/${shop.id}/keys/${k.id}/revoke`}
                        class="inline"
                        data-confirm={`Revoke the key ${k.hint}…? Requests with it fail from the next one on.`}
                      >
                        <CsrfField token={csrf} />
                        <DestructiveButton small>Revoke</DestructiveButton>
                      </form>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <form method="post" action={`/admin/shops/${shop.id}/keys`} data-busy="Creating…">
          <CsrfField token={csrf} />
          <button type="submit">Create a key</button>
        </form>
        <p class="muted">
          A publishable key (<code>apay_pk_</code>) is safe in a browser: it only reads the embedded checkout's config
          and opens checkout sessions your server created. Every other call refuses it.
        </p>
        <form method="post" action={`/admin/shops/${shop.id}/keys`} data-busy="Creating…">
          <CsrfField token={csrf} />
          <input type="hidden" name="kind" value="publishable" />
          <button type="submit" class="secondary">Create a publishable key</button>
        </form>
      </section>
      <SigningCard shop={shop} now={props.now} manage={{ csrf, action: `/admin/shops/${shop.id}` }} />
      <section class="card">
        <h2>Status</h2>
        <form
          method="post"
          action={`/admin/shops/${shop.id}/status`}
          data-confirm={shop.status === "active"
            ? `Disable ${shop.name}? Its API keys stop working at once.`
            : undefined}
        >
          <CsrfField token={csrf} />
          <input type="hidden" name="status" value={shop.status === "active" ? "disabled" : "active"} />
          {shop.status === "active"
            ? <DestructiveButton>Disable shop</DestructiveButton>
            : <button type="submit">Enable shop</button>}
        </form>
        <form method="post" action={`/admin/shops/${shop.id}/portal-link`}>
          <CsrfField token={csrf} />
          <button type="submit" class="secondary">Create a portal sign-in link</button>
        </form>
        <p>
          <a href={`/admin/payments?shopId=${shop.id}`}>Payments of this shop</a> ·{" "}
          <a href={`/admin/invoices?shopId=${shop.id}`}>Invoices and deposit addresses</a> ·{" "}
          <a href={`/admin/deliveries?shopId=${shop.id}`}>Failing postbacks</a>
        </p>
      </section>
    </>
  );
}

/** Which provider accounts take the shop's payments, in short, and the way to its routing page. */
function RoutingCard({ shop }: { shop: Shop }) {
  const routing = shopRouting(shop);
  const rules = routing.rules.length;
  return (
    <section class="card">
      <h2>Routing</h2>
      <p class="muted">
        {rules ? `${rules} ${rules === 1 ? "rule" : "rules"} by currency and type, then ` : "No rules: "}
        {routing.defaultAccountId ? <code>{routing.defaultAccountId}</code> : "the platform's default account"}
        {rules ? " for the rest." : " takes every payment."}
      </p>
      <p>
        <a href={`/admin/shops/${shop.id}/routing`}>Routing of this shop</a>
      </p>
    </section>
  );
}
