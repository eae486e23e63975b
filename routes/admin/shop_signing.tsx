import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { setRedirectSigning, switchShopSigning } from "../../lib/shops.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, ConfirmStep } from "../../components/admin_layout.tsx";
import { Island } from "../../components/island.tsx";
import type { ConsoleEnv } from "./_session.ts";
import { ID_PATTERNS } from "../../lib/ids.ts";

const SHOP = `/:id{${ID_PATTERNS.shop}}` as const;

/** A shop's signing: rotate or switch between a shared secret and a key pair; signed redirects on or off. */
export function shopSigningRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();

  app.post(`${SHOP}/signing` as const, async (c) => {
    const scheme = c.var.form.scheme === "ed25519" ? "ed25519" : "hmac";
    // The page's script asks first (data-confirm); without it, this page asks.
    if (c.var.form.confirm !== "yes") {
      return c.html(renderPage(
        <AdminLayout title="Please confirm" path="/admin/shops" email={c.var.operator.email} csrf={c.var.csrf}>
          <ConfirmStep
            question={scheme === "ed25519"
              ? "Make a new signing key pair? The old signature keeps coming for 24 hours; the shop must verify with the new public key by then."
              : "Rotate the postback signing secret? The old one stops signing after 24 hours."}
            button={scheme === "ed25519" ? "Use a new key pair" : "Rotate secret"}
            action={c.req.path}
            fields={{ scheme }}
            csrf={c.var.csrf}
            cancel={`/admin/shops/${c.req.param("id")}`}
          />
        </AdminLayout>,
      ));
    }
    const { shop, secret } = await switchShopSigning(ctx.kv, c.req.param("id"), {
      actor: c.var.operator.email,
      now: ctx.now(),
      scheme,
    });
    // A key pair has nothing secret to show: the shop page shows its public key. A new secret is shown once, here.
    if (!secret) return c.redirect(`/admin/shops/${shop.id}#signing`, 303);
    return c.html(renderPage(
      <AdminLayout
        title={`New signing secret: ${shop.name}`}
        path="/admin/shops"
        email={c.var.operator.email}
        csrf={c.var.csrf}
      >
        <section class="card secret" aria-live="polite">
          <p>
            <strong>Shown only once: give it to the shop now.</strong>
          </p>
          <div class="secret-row">
            <span>New postback signing secret</span>
            <code class="select-all" data-secret="">{secret}</code>
            <Island name="CopyButton" props={{ text: secret, label: "Copy" }} />
          </div>
        </section>
        <p>
          For the next 24 hours postbacks and redirects carry signatures with both the old and the new secret or key.
        </p>
        <p>
          <a href={`/admin/shops/${shop.id}`}>Back to the shop</a>
        </p>
      </AdminLayout>,
    ));
  });

  app.post(`${SHOP}/redirect-signing` as const, async (c) => {
    const shop = await setRedirectSigning(ctx.kv, c.req.param("id"), c.var.form.on === "1", {
      actor: c.var.operator.email,
      now: ctx.now(),
    });
    return c.redirect(`/admin/shops/${shop.id}#signing`, 303);
  });
  return app;
}
