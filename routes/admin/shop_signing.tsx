import { type Context, Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import {
  assertOverlapRunning,
  endSigningOverlap,
  previewShopRotation,
  setRedirectSigning,
  shopSigners,
  switchShopSigning,
} from "../../lib/shops.ts";
import { getShop } from "../../lib/db/shops.ts";
import { NotFoundError } from "../../lib/errors.ts";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout, ConfirmStep, Flash } from "../../components/admin_layout.tsx";
import {
  endOverlapQuestion,
  REDIRECT_SIGNING_OFF_QUESTION,
  SigningCard,
  signingQuestion,
} from "../../components/signing.tsx";
import { type ConsoleEnv, redirectWithReveal } from "./_session.ts";
import { ID_PATTERNS } from "../../lib/ids.ts";
import { type PageNote, pageNoteStatus, refusalShownOnPage } from "../_page_note.ts";

const SHOP = `/:id{${ID_PATTERNS.shop}}` as const;

/**
 * A shop's signing: rotate or switch between a shared secret and a key pair, end a rotation's overlap; signed
 * redirects on or off.
 */
export function shopSigningRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  const shopPath = (c: Context<ConsoleEnv>) => `/admin/shops/${c.req.param("id")}`;
  const shopOf = async (c: Context<ConsoleEnv>) => {
    const shop = await getShop(ctx.kv, c.req.param("id") ?? "");
    if (!shop) throw new NotFoundError("Unknown shop.");
    return shop;
  };

  /** Why an action was refused, above the shop's signatures as they are now (and the actions they allow). */
  const refusedPage = async (c: Context<ConsoleEnv>, note: PageNote) => {
    const shop = await shopOf(c);
    return c.html(
      renderPage(
        <AdminLayout title={shop.name} path="/admin/shops" email={c.var.operator.email} csrf={c.var.csrf}>
          <Flash kind={note.kind}>{note.text}</Flash>
          <SigningCard shop={shop} now={ctx.now()} manage={{ csrf: c.var.csrf, action: shopPath(c) }} />
          <p>
            <a href={shopPath(c)}>Back to the shop</a>
          </p>
        </AdminLayout>,
      ),
      pageNoteStatus(note, c.req.method),
    );
  };

  /** Without the page's script the question comes as a page of its own. */
  const askFirst = (
    c: Context<ConsoleEnv>,
    step: { question: string; button: string; destructive: boolean; fields?: Record<string, string> },
  ) =>
    c.html(renderPage(
      <AdminLayout title="Please confirm" path="/admin/shops" email={c.var.operator.email} csrf={c.var.csrf}>
        <ConfirmStep {...step} action={c.req.path} csrf={c.var.csrf} cancel={shopPath(c)} />
      </AdminLayout>,
    ));

  app.post(`${SHOP}/signing` as const, async (c) => {
    const scheme = c.var.form.scheme === "ed25519" ? "ed25519" : "hmac";
    // Refused (three sign already): said above the signatures, with the way out.
    return await refusalShownOnPage("Not rotated", async () => {
      if (c.var.form.confirm !== "yes") {
        const { currentScheme, rotating } = await previewShopRotation(ctx.kv, c.req.param("id"), {
          actor: c.var.operator.email,
          now: ctx.now(),
          scheme,
        });
        return askFirst(c, {
          question: signingQuestion(currentScheme, scheme, rotating),
          button: currentScheme === scheme ? "Rotate" : "Switch",
          // Nothing stops now: the replaced secret or key keeps signing through the overlap.
          destructive: false,
          fields: { scheme },
        });
      }
      const now = ctx.now();
      const { shop, secret } = await switchShopSigning(ctx.kv, c.req.param("id"), {
        actor: c.var.operator.email,
        now,
        scheme,
      });
      // A key pair has nothing secret to show: the shop page shows its public key. A new secret is shown once.
      return redirectWithReveal(c, {
        path: shopPath(c),
        flash: shopSigners(shop, now).length > 2
          ? "Three secrets or keys sign for now: the new one, the one it replaced (for 24 hours) and the one " +
            "replaced before (until its own end, listed below)."
          : "For the next 24 hours postbacks and redirects carry signatures with both the old and the new secret or key.",
        ...(secret ? { secrets: [["New postback signing secret", secret]] as [string, string][] } : {}),
      });
    }, (note) => refusedPage(c, note));
  });

  app.post(`${SHOP}/signing/end-overlap` as const, async (c) => {
    // Refused (no overlap left, it ended meanwhile): said above the signatures.
    return await refusalShownOnPage("Overlap not ended", async () => {
      if (c.var.form.confirm !== "yes") {
        const current = await shopOf(c);
        const now = ctx.now();
        assertOverlapRunning(current, now);
        return askFirst(c, {
          question: endOverlapQuestion(shopSigners(current, now)),
          button: "End the overlap",
          destructive: true,
        });
      }
      await endSigningOverlap(ctx.kv, c.req.param("id"), { actor: c.var.operator.email, now: ctx.now() });
      return redirectWithReveal(c, {
        path: shopPath(c),
        flash: "Overlap ended: only the current secret or key signs postbacks and redirects now (on every server " +
          "within 30 seconds).",
      });
    }, (note) => refusedPage(c, note));
  });

  app.post(`${SHOP}/redirect-signing` as const, async (c) => {
    const on = c.var.form.on === "1";
    if (!on && c.var.form.confirm !== "yes") {
      return askFirst(c, {
        question: REDIRECT_SIGNING_OFF_QUESTION,
        button: "Turn off",
        destructive: true,
        fields: { on: "0" },
      });
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
