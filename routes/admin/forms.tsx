import { type Context, Hono } from "hono";
import type { ComponentChildren } from "preact";
import type { AppContext } from "../../lib/context.ts";
import { createScopedForm, disableScopedForm, listScopedForms, type Scope } from "../../lib/console.ts";
import { listShops } from "../../lib/db/shops.ts";
import { ValidationError } from "../../lib/errors.ts";
import { ID_PATTERNS } from "../../lib/ids.ts";
import { COIN_CHOICES } from "../../lib/forms/crypto.ts";
import { formUrl } from "../../lib/forms/mod.ts";
import { ConfirmStep, Flash } from "../../components/admin_layout.tsx";
import { EmbedSnippet, FormsList, NewFormCard } from "../../components/forms.tsx";
import { type CsrfEnv, redirectWithReveal, takeReveal } from "./_session.ts";

const FORM = `/:id{${ID_PATTERNS.form}}` as const;

/** How one audience's pages differ: whose forms, where they live, who acts, and the shell around them. */
export interface FormPagesOptions<E extends CsrfEnv> {
  scope: (c: Context<E>) => Scope;
  basePath: string;
  actor: (c: Context<E>) => string;
  layout: (c: Context<E>, title: string, children: ComponentChildren) => string;
}

/**
 * The forms pages of the console (every shop's) and of the shop portal (its
 * own): one list, one create form and one disable step, scoped as
 * lib/console.ts scopes them. Disabling asks first.
 */
export function formPages<E extends CsrfEnv>(ctx: AppContext, opts: FormPagesOptions<E>) {
  const app = new Hono<E>();
  const base = ctx.config.publicBaseUrl;

  const list = async (
    c: Context<E>,
    extra: { values?: Record<string, string>; errors?: Record<string, string>; flash?: string },
    status: 200 | 400 = 200,
  ) => {
    const scope = opts.scope(c);
    const [{ forms, outOfOrder }, shops] = await Promise.all([
      listScopedForms(ctx, scope),
      scope === "operator" ? listShops(ctx.kv) : undefined,
    ]);
    const created = c.req.query("created");
    const createdForm = created ? forms.find((f) => f.id === created) : undefined;
    return c.html(
      opts.layout(
        c,
        "Forms",
        <>
          {extra.flash && <Flash kind="ok">{extra.flash}</Flash>}
          {createdForm && (
            <>
              <Flash kind="ok">Form created: share its link, or show it in an iframe on the shop's site.</Flash>
              <EmbedSnippet url={formUrl(createdForm.id, base)} />
            </>
          )}
          {extra.errors && <Flash kind="bad">The form was not created: see the fields below.</Flash>}
          <FormsList
            forms={forms}
            outOfOrder={outOfOrder}
            basePath={opts.basePath}
            csrf={c.var.csrf}
            publicBaseUrl={base}
            shopNames={shops && new Map(shops.map((s) => [s.id, s.name]))}
          />
          <NewFormCard
            action={opts.basePath}
            csrf={c.var.csrf}
            coins={COIN_CHOICES}
            values={extra.values}
            errors={extra.errors}
            shops={shops}
          />
        </>,
      ),
      status,
    );
  };

  app.get("/", (c) => list(c, { flash: takeReveal(c)?.flash }));

  app.post("/", async (c) => {
    try {
      const form = await createScopedForm(ctx, opts.scope(c), c.var.form, { actor: opts.actor(c) });
      return c.redirect(`${opts.basePath}?created=${form.id}`, 303);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      return await list(c, { values: c.var.form, errors: err.fields ?? {} }, 400);
    }
  });

  app.post(`${FORM}/disable` as const, async (c) => {
    if (c.var.form.confirm !== "yes") {
      // Without the page's script the question comes as a page of its own.
      return c.html(opts.layout(
        c,
        "Please confirm",
        <ConfirmStep
          question="Disable this form? Its page stops taking payments at once; this cannot be undone."
          button="Disable form"
          destructive
          action={c.req.path}
          csrf={c.var.csrf}
          cancel={opts.basePath}
        />,
      ));
    }
    const form = await disableScopedForm(ctx, opts.scope(c), c.req.param("id"), { actor: opts.actor(c) });
    return redirectWithReveal(c, { path: opts.basePath, flash: `Form "${form.title}" disabled.` });
  });
  return app;
}
