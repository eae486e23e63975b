/**
 * The Bansky sandbox on its own port, so the proxy reaches it over a real
 * network hop: `deno task sandbox`. Point the proxy at it with
 * BANSKY_API_URL=http://127.0.0.1:8001, BANSKY_API_TOKEN and
 * BANSKY_WEBHOOK_SECRET set to the same values as here. SANDBOX_MERCHANTS adds
 * merchant accounts for routing (`name:token:webhookSecret`, comma-separated);
 * create a provider account for each with the same token and secret.
 *
 * The chain simulator (crypto invoices) answers under /chain on the same port:
 * point the app at it with CHAIN_API_URL=http://127.0.0.1:8001/chain and
 * CHAIN_API_TOKEN / CHAIN_WEBHOOK_SECRET set to the same values as here.
 */
import { Hono } from "hono";
import { Sandbox } from "./bansky.tsx";
import { ChainSimulator } from "./chain.ts";

const port = Number(Deno.env.get("SANDBOX_PORT") ?? 8001);
const hostname = Deno.env.get("SANDBOX_HOSTNAME") ?? "127.0.0.1";
const merchants = Object.fromEntries(
  (Deno.env.get("SANDBOX_MERCHANTS") ?? "").split(",").filter(Boolean).map((m) => {
    const [name, apiToken, webhookSecret] = m.split(":");
    if (!name || !apiToken || !webhookSecret) {
      throw new Error("SANDBOX_MERCHANTS: name:token:webhookSecret, comma-separated");
    }
    return [name, { apiToken, webhookSecret }];
  }),
);
const sandbox = new Sandbox({
  merchants,
  apiToken: Deno.env.get("SANDBOX_API_TOKEN") ?? "sandbox-token",
  webhookSecret: Deno.env.get("SANDBOX_WEBHOOK_SECRET") ?? "sandbox-webhook-secret",
  publicUrl: Deno.env.get("SANDBOX_PUBLIC_URL") ?? `http://localhost:${port}`,
  knobs: {
    latencyMs: Number(Deno.env.get("SANDBOX_LATENCY_MS") ?? 0),
    failureRate: Number(Deno.env.get("SANDBOX_FAILURE_RATE") ?? 0),
    duplicateWebhooks: Deno.env.get("SANDBOX_DUPLICATE_WEBHOOKS") === "1",
    outOfOrderWebhooks: Deno.env.get("SANDBOX_OUT_OF_ORDER_WEBHOOKS") === "1",
    webhookDelayMs: Number(Deno.env.get("SANDBOX_WEBHOOK_DELAY_MS") ?? 0),
    dropWebhooks: Deno.env.get("SANDBOX_DROP_WEBHOOKS") === "1",
    refuseCancels: Deno.env.get("SANDBOX_REFUSE_CANCELS") === "1",
    refundFailureRate: Number(Deno.env.get("SANDBOX_REFUND_FAILURE_RATE") ?? 0),
    asyncRefunds: Deno.env.get("SANDBOX_ASYNC_REFUNDS") === "1",
  },
});
const chain = new ChainSimulator({
  apiToken: Deno.env.get("CHAIN_SANDBOX_API_TOKEN") ?? "chain-sandbox-token",
  webhookSecret: Deno.env.get("CHAIN_SANDBOX_WEBHOOK_SECRET") ?? "chain-sandbox-webhook-secret",
  knobs: { dropNotices: Deno.env.get("CHAIN_SANDBOX_DROP_NOTICES") === "1" },
});
// The chain first: the Bansky sandbox answers everything else at the root, as it always has.
const app = new Hono().route("/chain", chain.app).route("/", sandbox.app);
Deno.serve({
  port,
  hostname,
  onListen: ({ port }) => console.log(JSON.stringify({ msg: "Bansky sandbox and chain simulator listening", port })),
}, app.fetch);
