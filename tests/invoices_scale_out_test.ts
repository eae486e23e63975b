/**
 * The address pool across processes: two app instances, each with its own
 * connection to one KV file (as two processes have), take free addresses of
 * one shop's pool at once. Exclusivity comes from the store alone (a checked
 * delete of the free marker in the invoice's own commit); each instance's
 * in-memory queue only saves tries, and knows nothing of the other's.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../lib/config.ts";
import { openKv } from "../lib/db/kv.ts";
import { listPoolAddresses } from "../lib/db/invoices.ts";
import { createShop } from "../lib/shops.ts";
import { createServer } from "../server.ts";
import { freePort, loopbackAppEnv } from "../fixtures/app.ts";
import { invoiceBody } from "../fixtures/invoices.ts";

Deno.test("[invoices] two instances on one KV file never give one free address to two invoices", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aimbrella-pool-" });
  const kvPath = `${dir}/kv.sqlite3`;
  const nodes = await Promise.all([0, 1].map(async () => {
    const port = freePort();
    const config = loadConfig({ ...loopbackAppEnv(port, kvPath), JOBS_QUEUE: "off", RATE_LIMIT_PER_MINUTE: "100000" });
    const kv = await openKv(kvPath);
    const server = await createServer(config, kv);
    const http = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, server.app.fetch);
    return { baseUrl: `http://127.0.0.1:${port}`, kv, server, http };
  }));
  try {
    const { apiKey, shop } = await createShop(nodes[0].kv, { name: "Pool shop", allowedHosts: [] }, {
      allowLocalUrls: true,
      now: Date.now(),
    });
    const call = async (node: typeof nodes[number], path: string, body?: unknown) => {
      const res = await fetch(node.baseUrl + path, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    // Free addresses first: made through one instance, held, then cancelled through the other.
    const seeded = [];
    for (let i = 0; i < 40; i++) seeded.push((await call(nodes[0], "/api/v1/invoices", invoiceBody())).body.invoice);
    for (const inv of seeded) assert.equal((await call(nodes[1], `/api/v1/invoices/${inv.id}/cancel`)).status, 200);
    const free = (await listPoolAddresses(nodes[0].kv, shop.id)).filter((a) => a.heldBy === null).length;
    assert.ok(free >= 40, `${free} free`);

    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => call(nodes[i % 2], "/api/v1/invoices", invoiceBody())),
    );
    for (const r of results) assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(new Set(results.map((r) => r.body.invoice.address)).size, 40);
    const pool = await listPoolAddresses(nodes[1].kv, shop.id);
    const held = new Map(pool.filter((a) => a.heldBy).map((a) => [a.address, a.heldBy]));
    assert.equal(held.size, 40);
    for (const r of results) assert.equal(held.get(r.body.invoice.address), r.body.invoice.id);
  } finally {
    for (const n of nodes) {
      await n.server.close();
      await n.http.shutdown();
      n.kv.close();
    }
    await Deno.remove(dir, { recursive: true });
  }
});
