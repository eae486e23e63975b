import { requireKnownShop } from "../../lib/console.ts";
import { type Context, Hono } from "hono";
import type { ComponentChildren } from "preact";
import type { AppContext } from "../../lib/context.ts";
import { ConflictError, ValidationError } from "../../lib/errors.ts";
import {
  createAccount,
  describeAccount,
  getAccount,
  listAllAccounts,
  rotateAccountCredentials,
  setAccountActive,
  type ShownCredentials,
  shownCredentials,
} from "../../lib/accounts/mod.ts";
import { addShopRule, setShopRouting, shopRouting } from "../../lib/accounts/routing.ts";
import {
  accountWebhookPath,
  DEFAULT_ACCOUNT_ID,
  type ProviderAccount,
  type RouteRule,
  type ShopRouting,
} from "../../lib/accounts/types.ts";
import { getShop, listShops } from "../../lib/db/shops.ts";
import { listOperations, type OperationEntry, type Outcome, OUTCOMES } from "../../lib/db/operations.ts";
import { ID_PATTERNS } from "../../lib/ids.ts";
import { formatAmount } from "../../lib/money.ts";
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
import type { ConsoleEnv } from "./_session.ts";

const ACCOUNT = `/:id{${ID_PATTERNS.account}}` as const;
const SHOP = `/:id{${ID_PATTERNS.shop}}` as const;

/** Provider accounts: list, create, disable or enable, rotate credentials (each confirmed). */
export function accountRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  const layout = (c: Context<ConsoleEnv>, title: string, body: ComponentChildren, status = 200) =>
    c.html(
      renderPage(
        <AdminLayout title={title} path="/admin/accounts" email={c.var.operator.email} csrf={c.var.csrf}>
          {body}
        </AdminLayout>,
      ),
      status as 200,
    );

  /** Where an account's webhooks arrive, as the provider's dashboard needs it: on our public address. */
  const webhookUrl = (accountId: string) => ctx.config.publicBaseUrl + accountWebhookPath(accountId);

  const list = async (
    c: Context<ConsoleEnv>,
    extra: {
      flash?: string;
      /** The account just created: its webhook URL is the next step of onboarding, said on top. */
      createdId?: string;
      errors?: Record<string, string>;
      values?: Record<string, string>;
    } = {},
    status = 200,
  ) => {
    const accounts = await listAllAccounts(ctx);
    const created = extra.createdId ? accounts.find((a) => a.id === extra.createdId) : undefined;
    return layout(
      c,
      "Provider accounts",
      <>
        {extra.flash && <Flash kind="ok">{extra.flash}</Flash>}
        {extra.errors && <Flash kind="bad">The account was not created: see the fields below.</Flash>}
        {created && <CreatedAccount account={created} webhookUrl={webhookUrl(created.id)} />}
        <AccountTable accounts={accounts} csrf={c.var.csrf} webhookUrl={webhookUrl} />
        <ShopRoutingLinks shops={await listShops(ctx.kv)} />
        <NewAccountForm csrf={c.var.csrf} values={extra.values} errors={extra.errors} />
      </>,
      status,
    );
  };

  app.get("/", (c) =>
    list(c, {
      flash: c.req.query("done") ? "Saved." : undefined,
      // Only ever an account's own id: anything else finds no account and shows nothing.
      createdId: c.req.query("created"),
    }));

  app.post("/", async (c) => {
    const f = c.var.form;
    try {
      const account = await createAccount(ctx, {
        provider: f.provider,
        label: f.label,
        orgId: f.orgId,
        currencies: (f.currencies ?? "").split(/[\s,]+/).filter(Boolean),
        credentials: { apiUrl: f.apiUrl, apiToken: f.apiToken, webhookSecret: f.webhookSecret },
      }, { actor: c.var.operator.email });
      // Redirected, so a reload does not create it again; the page then names its webhook URL, as the CLI prints it.
      return c.redirect(`/admin/accounts?created=${account.id}#account-${account.id}`, 303);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      // The credentials typed are not sent back into the page, and the URL only as far as it is no secret.
      const { apiToken: _t, webhookSecret: _w, _csrf, apiUrl: _u, ...values } = f;
      return list(
        c,
        { errors: err.fields ?? {}, values: { ...values, apiUrl: shownCredentials(f).apiUrl ?? "" } },
        400,
      );
    }
  });

  app.post(`${ACCOUNT}/active` as const, async (c) => {
    const id = c.req.param("id");
    const active = c.var.form.active === "yes";
    if (!active && c.var.form.confirm !== "yes") {
      const a = await getAccount(ctx, id);
      return layout(
        c,
        "Please confirm",
        <ConfirmStep
          question={`Disable ${a.label} (${a.orgId})? Shops routed to it get 422 no_route for new payments; its payments keep using it.`}
          action={`/admin/accounts/${id}/active`}
          fields={{ active: "no" }}
          button="Disable account"
          destructive
          csrf={c.var.csrf}
          cancel="/admin/accounts"
        />,
      );
    }
    await setAccountActive(ctx, id, active, { actor: c.var.operator.email });
    return c.redirect("/admin/accounts?done=1", 303);
  });

  // Rotation in two steps: confirm first, then the new credentials are typed in (the old secrets are never shown; the
  // API URL, no secret, is offered as it is).
  app.post(`${ACCOUNT}/rotate` as const, async (c) => {
    const id = c.req.param("id");
    const f = c.var.form;
    const { account: a, shown } = await describeAccount(ctx, id);
    if (f.confirm !== "yes") {
      return layout(
        c,
        "Please confirm",
        <ConfirmStep
          question={`Replace the credentials of ${a.label} (${a.orgId})? The old ones stop working here within seconds.`}
          action={`/admin/accounts/${id}/rotate`}
          button="Enter new credentials"
          // Only leads to the form: its Replace credentials button is the one that takes the old ones away.
          destructive={false}
          csrf={c.var.csrf}
          cancel="/admin/accounts"
        />,
      );
    }
    if (!f.webhookSecret) {
      return layout(
        c,
        `Rotate: ${a.label}`,
        <RotateForm account={a} shown={shown} csrf={c.var.csrf} webhookUrl={webhookUrl(a.id)} />,
      );
    }
    try {
      const credentials = a.provider === "stripe"
        ? {
          secretKey: f.secretKey,
          webhookSecret: f.webhookSecret,
          connectedAccountId: f.connectedAccountId,
          ...(f.apiUrl ? { apiUrl: f.apiUrl } : {}),
          ...(f.publishableKey ? { publishableKey: f.publishableKey } : {}),
        }
        : { apiUrl: f.apiUrl, apiToken: f.apiToken, webhookSecret: f.webhookSecret };
      await rotateAccountCredentials(ctx, id, credentials, { actor: c.var.operator.email });
      return c.redirect("/admin/accounts?done=1", 303);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      // What was typed of the shown fields comes back, as far as it is no secret; the token and secrets do not.
      const typed = shownCredentials(f);
      return layout(
        c,
        `Rotate: ${a.label}`,
        <RotateForm
          account={a}
          shown={typed}
          csrf={c.var.csrf}
          errors={err.fields}
          current={shown}
          webhookUrl={webhookUrl(a.id)}
        />,
        400,
      );
    }
  });
  return app;
}

/** A shop's routes: rules in order, its default account; replaced as a whole, audited. */
export function routingRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  const page = async (c: Context<ConsoleEnv>, extra: { flash?: string; error?: string } = {}, status = 200) => {
    const shop = await getShop(ctx.kv, c.req.param("id")!);
    if (!shop) return c.notFound();
    const accounts = await listAllAccounts(ctx);
    return c.html(
      renderPage(
        <AdminLayout
          title={`Routing: ${shop.name}`}
          path="/admin/shops"
          email={c.var.operator.email}
          csrf={c.var.csrf}
        >
          {extra.flash && <Flash kind="ok">{extra.flash}</Flash>}
          {extra.error && <Flash kind="bad">{extra.error}</Flash>}
          <p>
            <a href={`/admin/shops/${shop.id}`}>Back to the shop</a> ·{" "}
            <a href={`/admin/operations?shopId=${shop.id}`}>its operation log</a>
          </p>
          <RoutingEditor shopId={shop.id} routing={shopRouting(shop)} accounts={accounts} csrf={c.var.csrf} />
        </AdminLayout>,
      ),
      status as 200,
    );
  };
  app.get(`${SHOP}/routing` as const, (c) => page(c, { flash: c.req.query("done") ? "Routing saved." : undefined }));
  app.post(`${SHOP}/routing` as const, async (c) => {
    const shopId = c.req.param("id");
    const f = c.var.form;
    const shop = await getShop(ctx.kv, shopId);
    if (!shop) return c.notFound();
    const current = shopRouting(shop);
    const change = { actor: c.var.operator.email, from: current };
    // Whether the routing changed (false: the shop had the rule already).
    let save: () => Promise<{ changed: boolean }>;
    switch (f.op) {
      case "add": {
        const rule = { accountId: f.accountId ?? "", currency: f.currency || null, type: f.type || null };
        save = () => addShopRule(ctx, shopId, rule, change);
        break;
      }
      case "remove": {
        const index = current.rules.findIndex((r, i) => String(i) === f.index && ruleName(r) === f.rule);
        // The rule as the page showed it: another operator's change meanwhile moved the list, and a position alone
        // would take away a rule nobody asked to remove.
        if (index < 0) {
          return page(c, { error: "Not removed: the rules changed since the page was shown. Here they are now." }, 409);
        }
        if (f.confirm !== "yes") {
          // Without the page's script the question comes as a page of its own.
          return c.html(renderPage(
            <AdminLayout title="Please confirm" path="/admin/shops" email={c.var.operator.email} csrf={c.var.csrf}>
              <ConfirmStep
                question={removeRuleQuestion(current.rules[index], labelsOf(await listAllAccounts(ctx)))}
                button="Remove rule"
                destructive
                action={c.req.path}
                fields={{ op: "remove", index: f.index ?? "", rule: f.rule ?? "" }}
                csrf={c.var.csrf}
                cancel={c.req.path}
              />
            </AdminLayout>,
          ));
        }
        const next = { ...current, rules: current.rules.filter((_, i) => i !== index) };
        save = async () => (await setShopRouting(ctx, shopId, next, change), { changed: true });
        break;
      }
      default: {
        const next = { ...current, defaultAccountId: !f.defaultAccountId ? null : f.defaultAccountId };
        save = async () => (await setShopRouting(ctx, shopId, next, change), { changed: true });
      }
    }
    try {
      if (!(await save()).changed) {
        // Nothing failed: the shop is routed as asked, as the command line's `shop route` says when asked twice.
        return page(c, { flash: "Not added: the shop has this rule already. Nothing changed." });
      }
    } catch (err) {
      if (err instanceof ConflictError) {
        // Another change landed between this request's read and its write: what was made from the old rules is not.
        return page(c, { error: "Not saved: the rules changed since the page was shown. Here they are now." }, 409);
      }
      if (!(err instanceof ValidationError)) throw err;
      const detail = Object.entries(err.fields ?? {}).map(([k, v]) => `${routingFieldLabel(k)} ${v}`).join("; ");
      return page(c, { error: `Not saved: ${detail || err.message}` }, 400);
    }
    return c.redirect(`/admin/shops/${shopId}/routing?done=1`, 303);
  });
  return app;
}

/** The operation log: every provider call, filtered by shop, account and outcome. */
export function operationRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  app.get("/", async (c) => {
    const shopId = c.req.query("shopId")?.slice(0, 64) || undefined;
    const accountId = c.req.query("accountId")?.slice(0, 64) || undefined;
    const outcomeQ = c.req.query("outcome");
    const outcome = (OUTCOMES as readonly string[]).includes(outcomeQ ?? "") ? outcomeQ as Outcome : undefined;
    const [entries, shops, accounts] = await Promise.all([
      listOperations(ctx.kv, { shopId, accountId, outcome, limit: 200 }),
      listShops(ctx.kv),
      listAllAccounts(ctx),
    ]);
    requireKnownShop(shops, shopId);
    const shopNames = new Map(shops.map((s) => [s.id, s.name]));
    const accountLabels = new Map(accounts.map((a) => [a.id, a.label]));
    return c.html(renderPage(
      <AdminLayout title="Operation log" path="/admin/operations" email={c.var.operator.email} csrf={c.var.csrf}>
        <form method="get" action="/admin/operations" class="filters" role="search">
          <label>
            Shop{" "}
            <select name="shopId">
              <option value="">All shops</option>
              {shops.map((s) => <option key={s.id} value={s.id} selected={s.id === shopId}>{s.name}</option>)}
            </select>
          </label>
          <label>
            Account{" "}
            <select name="accountId">
              <option value="">All accounts</option>
              {accounts.map((a) => (
                <option key={a.id} value={a.id} selected={a.id === accountId}>{a.label} ({a.orgId || "—"})</option>
              ))}
            </select>
          </label>
          <label>
            Outcome{" "}
            <select name="outcome">
              <option value="">Any</option>
              {OUTCOMES.map((o) => <option key={o} value={o} selected={o === outcome}>{o}</option>)}
            </select>
          </label>
          <button type="submit">Filter</button>
        </form>
        {entries.length === 0 ? <p class="muted">No provider calls match.</p> : (
          <div class="table-wrap">
            <table class="stack-phone operations">
              <thead>
                <tr>
                  <th>When (UTC)</th>
                  <th>Shop</th>
                  <th>Account (org)</th>
                  <th>Operation</th>
                  <th>Payment</th>
                  <th>Amount</th>
                  <th>Outcome</th>
                  <th>ms</th>
                </tr>
              </thead>
              <tbody>
                {entries.map((e) => (
                  <OperationRow
                    key={e.id}
                    e={e}
                    shop={shopNames.get(e.shopId)}
                    label={accountLabels.get(e.accountId)}
                  />
                ))}
              </tbody>
            </table>
          </div>
        )}
      </AdminLayout>,
    ));
  });
  return app;
}

function OperationRow({ e, shop, label }: { e: OperationEntry; shop?: string; label?: string }) {
  return (
    <tr class={e.outcome === "ok" ? undefined : "bad"}>
      <td data-label="When">{formatTime(e.at)}</td>
      <td data-label="Shop">
        <a href={`/admin/shops/${e.shopId}`}>{shop ?? e.shopId}</a>
      </td>
      <td data-label="Account">
        {label ?? e.accountId} <span class="muted">({e.orgId || "—"}, {e.provider})</span>
      </td>
      <td data-label="Operation">
        <code>{e.operation}</code>
      </td>
      <td data-label="Payment">
        <a href={`/admin/payments/${e.paymentId}`}>
          <code>{e.paymentId}</code>
        </a>
        {e.providerRef && <div class="muted small">ref {e.providerRef}</div>}
      </td>
      <td data-label="Amount">{formatAmount(e.amount, e.currency)}</td>
      <td data-label="Outcome">
        {e.outcome}
        {e.status && <span class="muted">: {e.status}</span>}
        {e.error && <div class="small error">{e.error}</div>}
      </td>
      <td data-label="ms">{e.durationMs}</td>
    </tr>
  );
}

/** Said once an account is created: where the provider's webhooks for it go, the next step of onboarding. */
function CreatedAccount({ account, webhookUrl }: { account: ProviderAccount; webhookUrl: string }) {
  return (
    <section class="card" aria-labelledby="created-account">
      <h2 id="created-account">Account created: {account.label}</h2>
      <p>
        In the provider's dashboard, point this merchant account's webhooks at this address, with the webhook secret you
        entered. Then route shops to it (below) and take a test payment.
      </p>
      <div class="secret-row">
        <span>Webhook URL</span>
        <code class="select-all" data-webhook-url={account.id}>{webhookUrl}</code>
        <Island name="CopyButton" props={{ text: webhookUrl, label: "Copy" }} />
      </div>
    </section>
  );
}

function AccountTable(
  { accounts, csrf, webhookUrl }: {
    accounts: ProviderAccount[];
    csrf: string;
    webhookUrl: (accountId: string) => string;
  },
) {
  return (
    <section class="card">
      <h2>Accounts</h2>
      <div class="table-wrap">
        <table class="stack-phone">
          <thead>
            <tr>
              <th>Account</th>
              <th>Provider</th>
              <th>Org id</th>
              <th>Currencies</th>
              <th>Status</th>
              <th>Credentials</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {accounts.map((a) => (
              // The anchor a payment's page links to (its Account field).
              <tr key={a.id} id={`account-${a.id}`}>
                <td data-label="Account">
                  {/* One block: on a phone the cell is a grid of its children, the label's column and the value's. */}
                  <div>
                    {a.label}
                    <div class="muted small">
                      <code>{a.id}</code> · <a href={`/admin/operations?accountId=${a.id}`}>operations</a>
                    </div>
                    <div class="muted small">
                      webhooks at <code>{webhookUrl(a.id)}</code>
                    </div>
                  </div>
                </td>
                <td data-label="Provider">{a.provider}</td>
                <td data-label="Org id">{a.orgId || "—"}</td>
                <td data-label="Currencies">{a.currencies.length ? a.currencies.join(", ") : "any"}</td>
                <td data-label="Status">{a.active ? "active" : "disabled"}</td>
                <td data-label="Credentials">
                  {a.id === DEFAULT_ACCOUNT_ID ? "from the environment" : `set ${formatTime(a.credentialsUpdatedAt)}`}
                </td>
                <td>
                  {a.id !== DEFAULT_ACCOUNT_ID && (
                    <>
                      <form method="post" action={`/admin/accounts/${a.id}/active`} class="inline">
                        <CsrfField token={csrf} />
                        <input type="hidden" name="active" value={a.active ? "no" : "yes"} />
                        {a.active
                          ? <DestructiveButton small>Disable</DestructiveButton>
                          : <button type="submit" class="secondary small">Enable</button>}
                      </form>{" "}
                      <form method="post" action={`/admin/accounts/${a.id}/rotate`} class="inline">
                        <CsrfField token={csrf} />
                        <button type="submit" class="secondary small">Rotate credentials</button>
                      </form>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function ShopRoutingLinks({ shops }: { shops: { id: string; name: string; routing?: ShopRouting }[] }) {
  return (
    <section class="card">
      <h2>Routing per shop</h2>
      {shops.length === 0 ? <p class="muted">No shops yet.</p> : (
        <ul>
          {shops.map((s) => (
            <li key={s.id}>
              <a href={`/admin/shops/${s.id}/routing`}>{s.name}</a>{" "}
              <span class="muted">
                {s.routing?.rules.length ?? 0} rule(s), default{" "}
                <code>{s.routing?.defaultAccountId ?? "platform default"}</code>
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function NewAccountForm(props: { csrf: string; values?: Record<string, string>; errors?: Record<string, string> }) {
  const v = props.values ?? {};
  const e = props.errors ?? {};
  return (
    <section class="card">
      <h2>New Bansky account</h2>
      <p class="muted">The token and webhook secret are stored apart and never shown again.</p>
      <form method="post" action="/admin/accounts" class="stack narrow">
        <CsrfField token={props.csrf} />
        <input type="hidden" name="provider" value="bansky" />
        <Field label="Label" name="label" value={v.label} error={e.label} required />
        <Field label="Organisation id (e.g. BIN)" name="orgId" value={v.orgId} error={e.orgId} required />
        <Field
          label="Currencies"
          name="currencies"
          value={v.currencies}
          error={Object.entries(e).find(([k]) => k.startsWith("currencies"))?.[1]}
          hint="ISO codes, comma-separated; empty takes any"
        />
        <Field label="API URL" name="apiUrl" type="url" value={v.apiUrl} error={e["credentials.apiUrl"]} required />
        <Field label="API token" name="apiToken" type="password" error={e["credentials.apiToken"]} required />
        <Field
          label="Webhook secret"
          name="webhookSecret"
          type="password"
          error={e["credentials.webhookSecret"]}
          required
        />
        <button type="submit">Create account</button>
      </form>
    </section>
  );
}

function RotateForm(
  props: {
    account: ProviderAccount;
    /** The non-secret fields filled in: the account's own, or what was typed when the form comes back. */
    shown: ShownCredentials;
    /** The account's own, when `shown` is what was typed. */
    current?: ShownCredentials;
    csrf: string;
    errors?: Record<string, string>;
    /** Where the provider sends this account's webhooks. */
    webhookUrl: string;
  },
) {
  const e = props.errors ?? {};
  const current = props.current ?? props.shown;
  const keep = "The current one, filled in: keep it unless it changed.";
  return (
    <section class="card">
      <p>
        New credentials for <strong>{props.account.label}</strong>{" "}
        ({props.account.orgId}). Point the provider's webhooks at <code>{props.webhookUrl}</code> with the new secret.
      </p>
      {current.apiUrl && (
        <p>
          It calls the provider at <code>{current.apiUrl}</code> now.
        </p>
      )}
      <form method="post" action={`/admin/accounts/${props.account.id}/rotate`} class="stack narrow">
        <CsrfField token={props.csrf} />
        <input type="hidden" name="confirm" value="yes" />
        {props.account.provider === "stripe"
          ? (
            <>
              <Field label="Secret key" name="secretKey" type="password" error={e["credentials.secretKey"]} required />
              <Field
                label="Connected account (acct_...)"
                name="connectedAccountId"
                value={props.shown.connectedAccountId}
                hint={current.connectedAccountId ? keep : undefined}
                error={e["credentials.connectedAccountId"]}
                required
              />
              <Field
                label="Publishable key (pk_..., optional: for Stripe's embedded checkout)"
                name="publishableKey"
                value={props.shown.publishableKey}
                hint={current.publishableKey
                  ? `${keep} Emptied, shops' pages can no longer mount Stripe's checkout.`
                  : undefined}
                error={e["credentials.publishableKey"]}
              />
              <Field
                label="API URL (optional: another host than Stripe's)"
                name="apiUrl"
                type="url"
                value={props.shown.apiUrl}
                hint={current.apiUrl ? keep : "Empty: Stripe's own."}
                error={e["credentials.apiUrl"]}
              />
            </>
          )
          : (
            <>
              <Field
                label="API URL"
                name="apiUrl"
                type="url"
                value={props.shown.apiUrl}
                error={e["credentials.apiUrl"]}
                hint={current.apiUrl ? keep : undefined}
                required
              />
              <Field label="API token" name="apiToken" type="password" error={e["credentials.apiToken"]} required />
            </>
          )}
        <Field
          label="Webhook secret"
          name="webhookSecret"
          type="password"
          error={e["credentials.webhookSecret"]}
          required
        />
        <DestructiveButton>Replace credentials</DestructiveButton>
      </form>
    </section>
  );
}

/** A routing rule as its removal form names it, so the server removes the rule the operator saw. */
function ruleName(r: RouteRule): string {
  return `${r.accountId}|${r.currency ?? ""}|${r.type ?? ""}`;
}

function labelsOf(accounts: ProviderAccount[]): Map<string, string> {
  return new Map(accounts.map((a) => [a.id, `${a.label} (${a.orgId || "—"})`]));
}

function describeRule(r: RouteRule, labels: Map<string, string>): string {
  return `${r.currency ?? "any currency"}, ${r.type ?? "any type"} → ${labels.get(r.accountId) ?? r.accountId}`;
}

/**
 * A refused field of the routing as this page shows it: the rules are numbered from 1 in its list, so `rules.5.currency`
 * is "Rule 6: currency" (an added rule takes the next number), where the API's position sends the operator counting.
 */
function routingFieldLabel(field: string): string {
  const rule = field.match(/^rules\.(\d+)\.(accountId|currency|type)$/);
  if (rule) return `Rule ${Number(rule[1]) + 1}: ${rule[2] === "accountId" ? "account" : rule[2]}`;
  return field === "defaultAccountId" ? "The default account" : field;
}

function removeRuleQuestion(r: RouteRule, labels: Map<string, string>): string {
  return `Remove the rule "${
    describeRule(r, labels)
  }"? Its payments go by the next rule that matches, or the default account, from now on.`;
}

function RoutingEditor(
  props: { shopId: string; routing: ShopRouting; accounts: ProviderAccount[]; csrf: string },
) {
  const labels = labelsOf(props.accounts);
  const action = `/admin/shops/${props.shopId}/routing`;
  const AccountSelect = ({ name, selected, none }: { name: string; selected?: string | null; none?: string }) => (
    <select name={name}>
      {none && <option value="">{none}</option>}
      {props.accounts.map((a) => (
        <option key={a.id} value={a.id} selected={a.id === selected}>
          {labels.get(a.id)}
          {a.active ? "" : " [disabled]"}
        </option>
      ))}
    </select>
  );
  return (
    <>
      <section class="card">
        <h2>Rules</h2>
        <p class="muted">Tried in order; the first whose currency and type match takes the payment.</p>
        {props.routing.rules.length === 0 ? <p class="muted">No rules.</p> : (
          <ol class="routes">
            {props.routing.rules.map((r, i) => (
              <li key={i}>
                {describeRule(r, labels)}{" "}
                <form method="post" action={action} class="inline" data-confirm={removeRuleQuestion(r, labels)}>
                  <CsrfField token={props.csrf} />
                  <input type="hidden" name="op" value="remove" />
                  <input type="hidden" name="index" value={String(i)} />
                  <input type="hidden" name="rule" value={ruleName(r)} />
                  <DestructiveButton small>Remove</DestructiveButton>
                </form>
              </li>
            ))}
          </ol>
        )}
        <form method="post" action={action} class="stack narrow">
          <CsrfField token={props.csrf} />
          <input type="hidden" name="op" value="add" />
          <label>
            Account <AccountSelect name="accountId" />
          </label>
          <Field label="Currency" name="currency" hint="ISO code; empty matches any" />
          <label>
            Type{" "}
            <select name="type">
              <option value="">any</option>
              <option value="fiat">fiat</option>
              <option value="crypto">crypto</option>
            </select>
          </label>
          <button type="submit">Add rule</button>
        </form>
      </section>
      <section class="card">
        <h2>Default account</h2>
        <form method="post" action={action} class="stack narrow">
          <CsrfField token={props.csrf} />
          <input type="hidden" name="op" value="default" />
          <label>
            When no rule matches{" "}
            <AccountSelect
              name="defaultAccountId"
              selected={props.routing.defaultAccountId}
              none="the platform default"
            />
          </label>
          <button type="submit">Save</button>
        </form>
      </section>
    </>
  );
}
