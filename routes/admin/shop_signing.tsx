import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { overlapEndsAt, setRedirectSigning, shopSigning, switchShopSigning } from "../../lib/shops.ts";
import { getShop } from "../../lib/db/shops.ts";
import { NotFoundError } from "../../lib/errors.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, ConfirmStep } from "../../components/admin_layout.tsx";
import { REDIRECT_SIGNING_OFF_QUESTION, signingQuestion } from "../../components/signing.tsx";
import { type ConsoleEnv, redirectWithReveal } from "./_session.ts";
import { ID_PATTERNS } from "../../lib/ids.ts";

const SHOP = `/:id{${ID_PATTERNS.shop}}` as const;

/** A shop's signing: rotate or switch between a shared secret and a key pair; signed redirects on or off. */
export function shopSigningRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();

  app.post(`${SHOP}/signing` as const, async (c) => {
    const scheme = c.var.form.scheme === "ed25519" ? "ed25519" : "hmac";
    const shopPath = `/admin/shops/${c.req.param("id")}`;
    if (c.var.form.confirm !== "yes") {
      // Without the page's script the question comes as a page of its own.
      const current = await getShop(ctx.kv, c.req.param("id"));
      if (!current) throw new NotFoundError("Unknown shop.");
      const currentScheme = shopSigning(current).scheme;
      const same = currentScheme === scheme;
      const question = signingQuestion(currentScheme, scheme, overlapEndsAt(current, ctx.now()) !== null);
      return c.html(renderPage(
        <AdminLayout title="Please confirm" path="/admin/shops" email={c.var.operator.email} csrf={c.var.csrf}>
          <ConfirmStep
            question={question}
            button={same ? "Rotate" : "Switch"}
            fields={{ scheme }}
            action={c.req.path}
            csrf={c.var.csrf}
            cancel={shopPath}
          />
        </AdminLayout>,
      ));
    }
    const { secret } = await switchShopSigning(ctx.kv, c.req.param("id"), {
      actor: c.var.operator.email,
      now: ctx.now(),
      scheme,
    });
    // A key pair has nothing secret to show: the shop page shows its public key. A new secret is shown once.
    return redirectWithReveal(c, {
      path: shopPath,
      flash:
        "For the next 24 hours postbacks and redirects carry signatures with both the old and the new secret or key.",
      ...(secret ? { secrets: [["New postback signing secret", secret]] as [string, string][] } : {}),
    });
  });

  app.post(`${SHOP}/redirect-signing` as const, async (c) => {
    const on = c.var.form.on === "1";
    if (!on && c.var.form.confirm !== "yes") {
      // Without the page's script the question comes as a page of its own.
      return c.html(renderPage(
        <AdminLayout title="Please confirm" path="/admin/shops" email={c.var.operator.email} csrf={c.var.csrf}>
          <ConfirmStep
            question={REDIRECT_SIGNING_OFF_QUESTION}
            button="Turn off"
            fields={{ on: "0" }}
            action={c.req.path}
            csrf={c.var.csrf}
            cancel={`/admin/shops/${c.req.param("id")}`}
          />
        </AdminLayout>,
      ));
    }
    const shop = await setRedirectSigning(ctx.kv, c.req.param("id"), on, {
      actor: c.var.operator.email,
      now: ctx.now(),
    });
    return redirectWithReveal(c, {
      path: `/admin/shops/${shop.id}`,
      flash: on
        ? "Redirects back to the shop carry signed apay_ parameters again."
        : "Redirects back to the shop no longer carry apay_ parameters.",
    });
  });
  return app;
}
