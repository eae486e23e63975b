import type { DocSet } from "./library.ts";

/** The public documentation for shops, in navigation order. */
export const PUBLIC_DOCS: DocSet = {
  basePath: "/docs",
  entries: [
    { slug: "", nav: "Overview", file: "public/index.md" },
    { slug: "how-it-works", nav: "How it works", file: "public/how-it-works.md" },
    { slug: "quick-start", nav: "Quick start", file: "public/quick-start.md" },
    { slug: "init-payment", nav: "Create a payment", file: "public/init-payment.md" },
    { slug: "embedded-checkout", nav: "Embedded checkout", file: "public/embedded-checkout.md" },
    { slug: "options", nav: "What you may take", file: "public/options.md" },
    { slug: "payment-status", nav: "Payment status", file: "public/payment-status.md" },
    { slug: "redirects", nav: "Redirects", file: "public/redirects.md" },
    { slug: "postbacks", nav: "Postbacks", file: "public/postbacks.md" },
    { slug: "refunds", nav: "Refunds", file: "public/refunds.md" },
    { slug: "forms", nav: "Forms (payment links)", file: "public/forms.md" },
    { slug: "invoices", nav: "Crypto invoices", file: "public/invoices.md" },
    { slug: "expiry-and-cancellation", nav: "Expiry and cancellation", file: "public/expiry-and-cancellation.md" },
    { slug: "errors", nav: "Errors", file: "public/errors.md" },
    { slug: "idempotency", nav: "Idempotency", file: "public/idempotency.md" },
    { slug: "sandbox", nav: "Sandbox", file: "public/sandbox.md" },
    { slug: "api-reference", nav: "API reference" },
    { slug: "changelog", nav: "Changelog", file: "public/changelog.md" },
  ],
};

/** The operators' documentation, served by internalDocsRoutes() behind the operator session. */
export const INTERNAL_DOCS: DocSet = {
  basePath: "/internal",
  entries: [
    { slug: "", nav: "Operator handbook", file: "internal/index.md" },
    { slug: "shops-and-keys", nav: "Shops and keys", file: "internal/shops-and-keys.md" },
    { slug: "rotating-secrets", nav: "Rotating secrets", file: "internal/rotating-secrets.md" },
    { slug: "bansky", nav: "Configuring Bansky", file: "internal/bansky.md" },
    { slug: "accounts", nav: "Accounts and routing", file: "internal/accounts.md" },
    { slug: "invoices", nav: "Crypto invoices", file: "internal/invoices.md" },
    { slug: "stats", nav: "Reading the stats", file: "internal/stats.md" },
    { slug: "metrics", nav: "Metrics", file: "internal/metrics.md" },
    { slug: "admin-api", nav: "Admin API and tokens", file: "internal/admin-api.md" },
    { slug: "deploy", nav: "Deploying", file: "internal/deploy.md" },
    { slug: "failing-postbacks", nav: "Runbook: failing postbacks", file: "internal/failing-postbacks.md" },
    { slug: "late-payments", nav: "Runbook: late payments", file: "internal/late-payments.md" },
    { slug: "architecture", nav: "Architecture", file: "architecture.md" },
  ],
};
