/**
 * The shop's postback receiver, as its own process. It answers every postback
 * 200 at once and records when it arrived, under its webhook-id (stable across
 * retries, so a repeat is a duplicate) and payment id. Deliberately cheap, so
 * it is never the bottleneck of a drain.
 *
 *   POST /postback   a postback from the app
 *   GET  /stats      {received, unique, duplicates}
 *   GET  /records    [[webhook-id, payment id, received at (ms, see nowMs)], ...]
 *   POST /reset      forget everything (between phases)
 *   POST /delay?ms=N answer every postback N ms after it arrived from now on (a slow shop; 0: at once)
 *
 * Env: SHOP_PORT, SHOP_DELAY_MS (the delay to start with, default 0).
 */
import { nowMs } from "./stats.ts";

type Arrival = [messageId: string, paymentId: string, at: number];

let records: Arrival[] = [];
let delayMs = Number(Deno.env.get("SHOP_DELAY_MS") ?? 0);
let seen = new Set<string>();

async function postback(req: Request): Promise<Response> {
  const at = nowMs();
  const body = await req.text();
  const messageId = req.headers.get("webhook-id") ?? "";
  let paymentId = "";
  try {
    paymentId = JSON.parse(body).data.paymentId;
  } catch {
    // Recorded with an empty payment id; the bench then reports it as unexpected.
  }
  records.push([messageId, paymentId, at]);
  seen.add(messageId);
  // Arrival is recorded above, on receipt: a slow shop is slow to answer, not to receive.
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  return new Response("ok");
}

Deno.serve({ hostname: "127.0.0.1", port: Number(Deno.env.get("SHOP_PORT")), onListen() {} }, (req) => {
  const path = new URL(req.url).pathname;
  if (req.method === "POST" && path === "/postback") return postback(req);
  if (req.method === "GET" && path === "/stats") {
    return Response.json({ received: records.length, unique: seen.size, duplicates: records.length - seen.size });
  }
  if (req.method === "GET" && path === "/records") return Response.json(records);
  if (req.method === "POST" && path === "/delay") {
    delayMs = Number(new URL(req.url).searchParams.get("ms") ?? 0);
    return Response.json({ delayMs });
  }
  if (req.method === "POST" && path === "/reset") {
    records = [];
    seen = new Set();
    return Response.json({ ok: true });
  }
  return new Response("not found", { status: 404 });
});
