/**
 * The load generator, run as its own process by bench/run.ts so it never
 * shares an event loop with a server under test. Takes one JSON spec as its
 * argument and prints one JSON result on stdout.
 *
 *   closed: `concurrency` keep-alive connections, each sending its next request
 *           as soon as the last is answered, for `durationMs` (or `maxRequests`).
 *           Measures throughput of the pay redirect and init-payment.
 *   paced:  settles payments at the sandbox at a fixed rate (open loop, so a slow
 *           app cannot slow the arrivals down) and reports when each was sent;
 *           the webhook that follows is what the end-to-end latency measures.
 */
import { encodeRequest, Http1Connection, type Http1Request, jsonBody } from "./http1.ts";
import { nowMs, percentile, sortedCopy } from "./stats.ts";

export type RequestKind =
  /** GET /integration/pay?id=… cycling through the payment ids in `idsFile`. */
  | { kind: "pay"; idsFile: string }
  /**
   * POST /api/v1/init-payment with a fresh shop transaction id per request (none with `noShopId`: no postbacks);
   * postbacks go to the shop's default URL unless `postbackUrl` names another.
   */
  | { kind: "init"; apiKey: string; txPrefix: string; noShopId?: boolean; postbackUrl?: string }
  /** POST /api/v1/payments/{id}/refunds of 1 minor unit, cycling through the paid payment ids in `idsFile`. */
  | { kind: "refund"; apiKey: string; idsFile: string }
  /** POST /api/v1/invoices with a fresh shop invoice id per request. */
  | { kind: "invoice"; apiKey: string; txPrefix: string };

export interface ClosedSpec {
  mode: "closed";
  port: number;
  concurrency: number;
  durationMs: number;
  maxRequests?: number;
  expectStatus: number;
  request: RequestKind;
  /** Write the `id` of every successful JSON answer here (a JSON array), for later phases. */
  saveIdsTo?: string;
}

export interface ClosedResult {
  ok: number;
  errors: number;
  statuses: Record<string, number>;
  firstError: string | null;
  elapsedMs: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

export interface PacedSpec {
  mode: "paced";
  appPort: number;
  sandboxPort: number;
  sandboxToken: string;
  /** Payment ids (ours) of pending payments whose postbacks go to the bench shop. */
  idsFile: string;
  rate: number;
}

export interface PacedResult {
  /** [payment id, time the sandbox was told the buyer paid (ms, see nowMs)]. */
  sent: [string, number][];
  errors: number;
  firstError: string | null;
  /** The most any send started behind its schedule, in ms (the generator's own lag). */
  maxLagMs: number;
}

const HOST = "127.0.0.1";

async function runClosed(spec: ClosedSpec): Promise<ClosedResult> {
  const next = requestMaker(spec);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const savedIds: string[] = [];
  let errors = 0;
  let started = 0;
  let firstError: string | null = null;
  const t0 = performance.now();
  const deadline = t0 + spec.durationMs;
  const more = () => performance.now() < deadline && (spec.maxRequests === undefined || started < spec.maxRequests);

  await Promise.all(Array.from({ length: spec.concurrency }, async () => {
    const conn = new Http1Connection(HOST, spec.port);
    try {
      while (more()) {
        started++;
        const request = next();
        const sentAt = performance.now();
        try {
          const res = await conn.send(request);
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status === spec.expectStatus) {
            latencies.push(performance.now() - sentAt);
            if (spec.saveIdsTo) savedIds.push(jsonBody<{ id: string }>(res).id);
          } else {
            errors++;
            firstError ??= `HTTP ${res.status}: ${new TextDecoder().decode(res.body).slice(0, 300)}`;
          }
        } catch (err) {
          errors++;
          firstError ??= String(err);
          conn.close();
        }
      }
    } finally {
      conn.close();
    }
  }));

  const elapsedMs = performance.now() - t0;
  if (spec.saveIdsTo) await Deno.writeTextFile(spec.saveIdsTo, JSON.stringify(savedIds));
  const sorted = sortedCopy(latencies);
  return {
    ok: latencies.length,
    errors,
    statuses,
    firstError,
    elapsedMs,
    rps: latencies.length / (elapsedMs / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  };
}

/** Returns a function producing the bytes of the next request of this spec. */
function requestMaker(spec: ClosedSpec): () => Uint8Array {
  const host = `${HOST}:${spec.port}`;
  const r = spec.request;
  if (r.kind === "pay") {
    const ids: string[] = JSON.parse(Deno.readTextFileSync(r.idsFile));
    if (ids.length === 0) throw new Error(`no payment ids in ${r.idsFile}`);
    // Prebuilt once: the hot loop only writes bytes.
    const requests = ids.map((id) => encodeRequest(host, payRequest(id)));
    let i = 0;
    return () => requests[i++ % requests.length];
  }
  if (r.kind === "refund") {
    const ids: string[] = JSON.parse(Deno.readTextFileSync(r.idsFile));
    if (ids.length === 0) throw new Error(`no payment ids in ${r.idsFile}`);
    const requests = ids.map((id) => encodeRequest(host, refundRequest(r.apiKey, id)));
    let i = 0;
    return () => requests[i++ % requests.length];
  }
  let n = 0;
  if (r.kind === "invoice") return () => encodeRequest(host, invoiceRequest(r.apiKey, `${r.txPrefix}-${n++}`));
  return () => encodeRequest(host, initRequest(r.apiKey, r.noShopId ? null : `${r.txPrefix}-${n++}`, r.postbackUrl));
}

function payRequest(id: string): Http1Request {
  return { method: "GET", path: `/integration/pay?id=${encodeURIComponent(id)}` };
}

/** A partial refund of one minor unit: each paid payment (1999) can take many, so the ids are cycled. */
function refundRequest(apiKey: string, paymentId: string): Http1Request {
  return {
    method: "POST",
    path: `/api/v1/payments/${encodeURIComponent(paymentId)}/refunds`,
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ amount: 1 }),
  };
}

/** A crypto invoice as a shop creates one: its own id, a coin on a network and a decimal amount. */
function invoiceRequest(apiKey: string, shopInvoiceId: string): Http1Request {
  return {
    method: "POST",
    path: "/api/v1/invoices",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ id: shopInvoiceId, coin: "USDT", network: "tron", amount: "19.99", title: "Order" }),
  };
}

/** What a shop sends: its own transaction id, the buyer, the amount and where the buyer returns. */
function initRequest(apiKey: string, shopTxId: string | null, postbackUrl?: string): Http1Request {
  return {
    method: "POST",
    path: "/api/v1/init-payment",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({
      ...(shopTxId === null ? {} : { id: shopTxId }),
      ...(postbackUrl ? { postbackUrl } : {}),
      email: "buyer@example.com",
      amount: 1999,
      currency: "EUR",
      successUrl: "http://127.0.0.1:9/shop/success",
      errorUrl: "http://127.0.0.1:9/shop/error",
    }),
  };
}

async function runPaced(spec: PacedSpec): Promise<PacedResult> {
  const ids: string[] = JSON.parse(await Deno.readTextFile(spec.idsFile));
  // Before the clock starts: find each payment's provider reference the way a buyer would, through our pay
  // redirect (the sandbox's page URL ends in it).
  const refs = await mapLimit(ids, 16, async (id) => {
    const res = await fetch(`http://${HOST}:${spec.appPort}/integration/pay?id=${encodeURIComponent(id)}`, {
      redirect: "manual",
    });
    await res.body?.cancel();
    const location = res.headers.get("location");
    if (res.status !== 302 || !location) throw new Error(`pay redirect for ${id} answered ${res.status}`);
    return location.slice(location.lastIndexOf("/") + 1);
  });

  const sent: [string, number][] = [];
  const inFlight: Promise<void>[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let maxLagMs = 0;
  const interval = 1000 / spec.rate;
  const start = performance.now();
  for (let i = 0; i < ids.length; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    maxLagMs = Math.max(maxLagMs, performance.now() - due);
    // Open loop: do not wait for the answer before the next send.
    inFlight.push((async () => {
      const at = nowMs();
      try {
        const res = await fetch(`http://${HOST}:${spec.sandboxPort}/payments/${refs[i]}/complete`, {
          method: "POST",
          headers: { authorization: `Bearer ${spec.sandboxToken}`, "content-type": "application/json" },
          body: JSON.stringify({ outcome: "paid" }),
        });
        await res.body?.cancel();
        if (!res.ok) throw new Error(`sandbox complete answered ${res.status}`);
        sent.push([ids[i], at]);
      } catch (err) {
        errors++;
        firstError ??= String(err);
      }
    })());
  }
  await Promise.all(inFlight);
  return { sent, errors, firstError, maxLagMs };
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  }));
  return out;
}

if (import.meta.main) {
  const spec = JSON.parse(Deno.args[0]) as ClosedSpec | PacedSpec;
  const result = spec.mode === "closed" ? await runClosed(spec) : await runPaced(spec);
  console.log(JSON.stringify(result));
}
