import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { changePassword, signIn, signOut } from "../../lib/auth/operators.ts";
import { AppError, ValidationError } from "../../lib/errors.ts";
import { unauthenticatedLimiter } from "../../lib/auth/rate_limit.ts";
import { clientAddress, limitedAddress } from "../_client_address.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, CsrfField, Field, Flash } from "../../components/admin_layout.tsx";
import { Page } from "../../components/html.tsx";
import { clearSessionCookie, type ConsoleEnv, requireOperator, safeNext, setSessionCookie } from "./_session.ts";

/** Sign-in, sign-out and password change. CSRF is checked by the console's middleware before these run. */
export function authRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();

  app.get("/login", (c) => c.html(renderPage(<LoginPage csrf={c.var.csrf} next={c.req.query("next")} />)));

  app.post("/login", async (c) => {
    const form = c.var.form;
    const ip = clientAddress(c);
    try {
      // Every sign-in post counts against its address, on top of signIn's own throttle.
      unauthenticatedLimiter(ctx).take(limitedAddress(c), ctx.now());
      const { token } = await signIn(ctx, { email: form.email ?? "", password: form.password ?? "", ip });
      setSessionCookie(c, token);
      return c.redirect(safeNext(form.next), 303);
    } catch (err) {
      if (!(err instanceof AppError) || (err.status !== 401 && err.status !== 429)) throw err;
      for (const [k, v] of Object.entries(err.headers ?? {})) c.header(k, v);
      return c.html(
        renderPage(<LoginPage csrf={c.var.csrf} next={form.next} email={form.email} error={err.message} />),
        err.status as 401,
      );
    }
  });

  app.post("/logout", requireOperator(ctx), async (c) => {
    await signOut(ctx, c.var.session);
    clearSessionCookie(c);
    return c.redirect("/admin/login", 303);
  });

  app.get("/password", requireOperator(ctx), (c) =>
    c.html(renderPage(
      <PasswordPage csrf={c.var.csrf} email={c.var.operator.email} forced={c.var.operator.mustChangePassword} />,
    )));

  app.post("/password", requireOperator(ctx), async (c) => {
    const f = c.var.form;
    try {
      const { token } = await changePassword(ctx, { operator: c.var.operator, session: c.var.session }, {
        current: f.current ?? "",
        next: f.password ?? "",
        repeat: f.repeat ?? "",
      });
      setSessionCookie(c, token);
      return c.redirect("/admin", 303);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      return c.html(
        renderPage(
          <PasswordPage
            csrf={c.var.csrf}
            email={c.var.operator.email}
            forced={c.var.operator.mustChangePassword}
            errors={err.fields}
          />,
        ),
        400,
      );
    }
  });
  return app;
}

function LoginPage(props: { csrf: string; next?: string; email?: string; error?: string }) {
  return (
    <Page title="Sign in · AimbrellaPay console">
      <h1>Sign in</h1>
      <p class="muted">The AimbrellaPay operator console.</p>
      {props.error && <Flash kind="bad">{props.error}</Flash>}
      <form method="post" action="/admin/login" class="stack">
        <CsrfField token={props.csrf} />
        <input type="hidden" name="next" value={props.next ?? ""} />
        <Field label="Email" name="email" type="email" value={props.email} required autocomplete="username" />
        <Field label="Password" name="password" type="password" required autocomplete="current-password" />
        <button type="submit">Sign in</button>
      </form>
    </Page>
  );
}

function PasswordPage(props: { csrf: string; email: string; forced: boolean; errors?: Record<string, string> }) {
  return (
    <AdminLayout title="Set your password" path="/admin/password" email={props.email} csrf={props.csrf}>
      {props.forced && <Flash kind="ok">You signed in with a one-time password. Choose your own to continue.</Flash>}
      <form method="post" action="/admin/password" class="stack narrow">
        <CsrfField token={props.csrf} />
        <Field label="Current password" name="current" type="password" required error={props.errors?.current} />
        <Field
          label="New password"
          name="password"
          type="password"
          required
          autocomplete="new-password"
          hint="At least 12 characters."
          error={props.errors?.password}
        />
        <Field label="Repeat it" name="repeat" type="password" required error={props.errors?.repeat} />
        <button type="submit">Save password</button>
      </form>
    </AdminLayout>
  );
}
