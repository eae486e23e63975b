/**
 * The floor server: the least work each benchmarked endpoint could possibly
 * do, written for the purpose. The app is measured as a ratio to it, which
 * cancels out the machine, the Deno version and the load generator.
 *
 *   GET /integration/pay?id=   bare Deno.serve + one kv.get + 302 to the stored provider URL.
 *   POST /api/v1/init-payment  bare Deno.serve + one fetch to the same sandbox + one atomic commit.
 *   POST /api/v1/payments/{id}/refunds  the same shape: bare Deno.serve + one fetch to the sandbox's refund
 *                              endpoint + one atomic commit of the refund. The provider reference comes from
 *                              memory (kept when the floor created the payment), so not even a read.
 *   POST /api/v1/invoices      bare Deno.serve + one atomic commit of the invoice (no address service call: the
 *                              app asks for addresses in batches ahead of need, off the request's path).
 *
 * No routing library, no middleware, no auth, no validation, no logging. It
 * stores the same kind of record the app does (the request plus the
 * provider's answer) so the pay floor reads a value of realistic size.
 *
 * The provider calls use \`fetch\`, as the floor is defined. With FLOOR_PROVIDER_CLIENT=http1 they use the app's own
 * HTTP/1.1 client instead (lib/providers/http1_client.ts), as the app does, about 28 µs of CPU a call cheaper: the
 * bench runs init-payment against that floor too, so the report shows how much of the app's ratio is its client.
 *
 * Env: FLOOR_PORT, FLOOR_KV_PATH, SANDBOX_URL, SANDBOX_TOKEN, FLOOR_PROVIDER_CLIENT (unset: fetch; http1).
 */
import { Http1Client } from "../lib/providers/http1_client.ts";
import { sequentialId } from "../lib/ids.ts";

const port = Number(Deno.env.get("FLOOR_PORT"));
const sandboxUrl = Deno.env.get("SANDBOX_URL")!;
const sandboxToken = Deno.env.get("SANDBOX_TOKEN")!;
const baseUrl = `http://127.0.0.1:${port}`;
const kv = await Deno.openKv(Deno.env.get("FLOOR_KV_PATH")!);
/** Provider reference per payment id, for the refund floor. */
const refs = new Map<string, string>();
const http1 = Deno.env.get("FLOOR_PROVIDER_CLIENT") === "http1" ? new Http1Client() : null;
/**
 * The client's calls take a signal; the floor's fetch has no deadline, so neither do they: a signal that never fires,
 * not an AbortSignal.timeout per call (about 2 µs more and a live timer each), which the other floor does not pay.
 */
const noDeadline = new AbortController().signal;
const decoder = new TextDecoder();

/** POSTs JSON to the sandbox: its parsed answer, or the floor's 502 when it did not answer 2xx. */
async function postToSandbox(path: string, body: unknown): Promise<
  { json: { id: string } & Record<string, string> } | {
    failed: Response;
  }
> {
  const headers = { authorization: `Bearer ${sandboxToken}`, "content-type": "application/json" };
  if (http1) {
    const res = await http1.send(`${sandboxUrl}${path}`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      signal: noDeadline,
    });
    if (res.status < 200 || res.status > 299) {
      return { failed: new Response(decoder.decode(res.body), { status: 502 }) };
    }
    return { json: JSON.parse(decoder.decode(res.body)) };
  }
  const res = await fetch(`${sandboxUrl}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
  if (!res.ok) return { failed: new Response(await res.text(), { status: 502 }) };
  return { json: await res.json() };
}

interface FloorPayment {
  id: string;
  request: Record<string, unknown>;
  providerRef: string;
  providerUrl: string;
  createdAt: number;
}

async function pay(url: URL): Promise<Response> {
  const p = (await kv.get<FloorPayment>(["payments", url.searchParams.get("id") ?? ""])).value;
  if (!p) return new Response("not found", { status: 404 });
  return new Response(null, { status: 302, headers: { location: p.providerUrl } });
}

async function initPayment(req: Request): Promise<Response> {
  const request = await req.json();
  // Our ids, made as the app makes them: time-ordered, so new records share pages of the store.
  const id = sequentialId("pay");
  const wrapper = (kind: string) => `${baseUrl}/integration/${kind}?id=${id}`;
  // The provider gets what the spec says it gets, byte for byte the shape the app sends: our request's id, our wrapper URLs,
  // our webhook URL. The size matters: Deno.serve 2.9.5 (the sandbox) answers "Connection: close" to requests over
  // about 512 bytes (denoland/deno#36657, fixed in 2.9.6), so a shorter request would keep its connection alive
  // where the app's may not.
  const res = await postToSandbox("/payments", {
    // As the app names the request at the provider: the payment id and 12 characters of its fingerprint.
    id: `${id}.${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`,
    email: request.email,
    amount: request.amount,
    currency: request.currency,
    type: request.type ?? "fiat",
    sussessUrl: wrapper("success"),
    errorUrl: wrapper("error"),
    postbackUrl: `${baseUrl}/api/payment-verify`,
  });
  if ("failed" in res) return res.failed;
  const provider = res.json;
  const payment: FloorPayment = {
    id,
    request,
    providerRef: provider.id,
    providerUrl: provider.url,
    createdAt: Date.now(),
  };
  await kv.atomic().check({ key: ["payments", id], versionstamp: null }).set(["payments", id], payment).commit();
  refs.set(id, provider.id);
  return Response.json({ status: "success", id, url: `${baseUrl}/integration/pay?id=${id}` }, { status: 201 });
}

async function refund(req: Request, paymentId: string): Promise<Response> {
  const request = await req.json();
  const ref = refs.get(paymentId);
  if (!ref) return new Response("not found", { status: 404 });
  // Our refund ids, made as the app makes them (the bench's refunds are not named: time-ordered).
  const id = sequentialId("re");
  const res = await postToSandbox(`/payments/${encodeURIComponent(ref)}/refunds`, { id, amount: request.amount });
  if ("failed" in res) return res.failed;
  const provider = res.json;
  const record = { id, paymentId, amount: request.amount, providerRef: provider.id, status: provider.status };
  await kv.atomic().check({ key: ["refunds", id], versionstamp: null }).set(["refunds", id], record).commit();
  return Response.json({ status: "success", refund: record }, { status: 201 });
}

async function invoice(req: Request): Promise<Response> {
  const request = await req.json();
  // Our ids' shape and length (inv_ + 22 characters): the bench's invoices are named, and a named invoice's id is an
  // HMAC of its name, so not time-ordered.
  const id = `inv_${crypto.randomUUID().replaceAll("-", "").slice(0, 22)}`;
  const record = { id, request, status: "waiting_for_deposit", address: `T${id}`, createdAt: Date.now() };
  await kv.atomic().check({ key: ["invoices", id], versionstamp: null }).set(["invoices", id], record).commit();
  return Response.json({ status: "success", invoice: record }, { status: 201 });
}

const REFUND_PATH = /^\/api\/v1\/payments\/([^/]+)\/refunds$/;

Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (req) => {
  const url = new URL(req.url);
  const refundOf = req.method === "POST" ? REFUND_PATH.exec(url.pathname) : null;
  if (refundOf) return refund(req, decodeURIComponent(refundOf[1]));
  if (req.method === "GET" && url.pathname === "/integration/pay") return pay(url);
  if (req.method === "POST" && url.pathname === "/api/v1/init-payment") return initPayment(req);
  if (req.method === "POST" && url.pathname === "/api/v1/invoices") return invoice(req);
  return new Response("not found", { status: 404 });
});
