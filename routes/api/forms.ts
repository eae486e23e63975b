import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import type { Shop } from "../../lib/db/shops.ts";
import { createShopForm, disableForm, formUrl, listForms } from "../../lib/forms/mod.ts";
import { formView } from "../../lib/forms/view.ts";
import { readJson } from "../_read_json.ts";

/** The shop's forms API under /api/v1/forms; the shop's key is checked by the v1 app around it. */
export function formApiRoutes(ctx: AppContext) {
  const app = new Hono<{ Variables: { shop: Shop } }>();
  const base = ctx.config.publicBaseUrl;
  const actor = (shop: Shop) => `api:${shop.id}`;

  app.post("/", async (c) => {
    const form = await createShopForm(ctx, c.var.shop, await readJson(c), { actor: actor(c.var.shop) });
    return c.json({ status: "success", form: { id: form.id, url: formUrl(form.id, base) } }, 201);
  });

  app.get("/", async (c) => {
    const forms = await listForms(ctx, c.var.shop.id);
    return c.json({ status: "success", forms: forms.map((f) => formView(f, base)) });
  });

  app.post("/:id/disable", async (c) => {
    const form = await disableForm(ctx, c.req.param("id"), { actor: actor(c.var.shop), shopId: c.var.shop.id });
    return c.json({ status: "success", form: formView(form, base) });
  });
  return app;
}
