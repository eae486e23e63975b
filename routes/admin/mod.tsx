import { Hono } from "hono";
import type { AppContext } from "../../lib/context.ts";
import { type ConsoleEnv, csrfProtection, requireOperator } from "./_session.ts";
import { authRoutes } from "./auth.tsx";
import { overviewRoutes } from "./overview.tsx";
import { shopRoutes } from "./shops.tsx";
import { shopSigningRoutes } from "./shop_signing.tsx";
import { paymentCsvRoute, paymentRoutes } from "./payments.tsx";
import { deliveryRoutes } from "./deliveries.tsx";
import { invoiceRoutes } from "./invoices.tsx";
import { auditRoutes } from "./audit.tsx";
import { operatorRoutes } from "./operators.tsx";
import { statsRoutes } from "./stats.tsx";
import { accountRoutes, operationRoutes, routingRoutes } from "./accounts.tsx";
import { internalDocsRoutes } from "../docs/internal.tsx";
import { formPages } from "./forms.tsx";
import { paidOrphanRoutes } from "./paid_orphans.tsx";
import { renderPage } from "../../components/html.tsx";
import { AdminLayout } from "../../components/admin_layout.tsx";

const PUBLIC_PATHS = new Set(["/admin/login"]);

/** The operator console at /admin: CSRF on every form, a session on every page but sign-in. */
export function consoleRoutes(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  const signedIn = requireOperator(ctx);
  app.use(csrfProtection(ctx));
  app.use((c, next) => (PUBLIC_PATHS.has(c.req.path) ? next() : signedIn(c, next)));
  app.route("/", authRoutes(ctx));
  app.route("/", overviewRoutes(ctx));
  app.route("/shops", shopRoutes(ctx));
  app.route("/shops", shopSigningRoutes(ctx));
  app.route("/payments.csv", paymentCsvRoute(ctx));
  app.route("/payments", paymentRoutes(ctx));
  app.route("/deliveries", deliveryRoutes(ctx));
  app.route("/invoices", invoiceRoutes(ctx));
  app.route("/paid-orphans", paidOrphanRoutes(ctx));
  app.route("/audit", auditRoutes(ctx));
  app.route("/operators", operatorRoutes(ctx));
  app.route("/stats", statsRoutes(ctx));
  app.route("/accounts", accountRoutes(ctx));
  app.route("/shops", routingRoutes(ctx));
  app.route("/operations", operationRoutes(ctx));
  app.route(
    "/forms",
    formPages<ConsoleEnv>(ctx, {
      scope: () => "operator",
      basePath: "/admin/forms",
      actor: (c) => c.var.operator.email,
      layout: (c, title, children) =>
        renderPage(
          <AdminLayout title={title} path="/admin/forms" email={c.var.operator.email} csrf={c.var.csrf}>
            {children}
          </AdminLayout>,
        ),
    }),
  );
  return app;
}

/** The operators' handbook at /internal: the same session as the console. */
export function internalDocsBehindSignIn(ctx: AppContext) {
  const app = new Hono<ConsoleEnv>();
  app.use(csrfProtection(ctx), requireOperator(ctx));
  app.route("/", internalDocsRoutes());
  return app;
}
