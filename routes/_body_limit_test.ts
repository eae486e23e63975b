import assert from "node:assert/strict";
import { Hono } from "hono";
import { AppError } from "../lib/errors.ts";
import { limitBodies, requestText } from "./_body_limit.ts";

/** A tiny app behind the body limit that echoes the size of what it read. */
function echoApp(timeoutMs = 5_000) {
  const app = new Hono();
  app.use(limitBodies({ byPrefix: { "/small/": 10 }, timeoutMs }));
  app.post("*", async (c) => c.json({ read: (await c.req.arrayBuffer()).byteLength }));
  app.onError((err, c) =>
    c.json({ code: err instanceof AppError ? err.code : "internal" }, (err as AppError).status as 400 ?? 500)
  );
  return app;
}

/** A body that yields `chunks` chunks of `size` bytes, then stalls or ends; counts what was pulled. */
function countingStream(chunks: number, size: number, { stall = false } = {}) {
  const state = { pulled: 0 };
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (state.pulled >= chunks * size) {
        if (stall) return await new Promise(() => {});
        return controller.close();
      }
      state.pulled += size;
      controller.enqueue(new Uint8Array(size));
    },
  });
  return { stream, state };
}

Deno.test("[body limit] a body within the limit reaches the route whole", async () => {
  const res = await echoApp().request("/any", { method: "POST", body: "x".repeat(1000) });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { read: 1000 });
});

Deno.test("[body limit] a declared length over the limit is refused before reading", async () => {
  const { stream, state } = countingStream(10, 1024);
  const res = await echoApp().request("/small/x", {
    method: "POST",
    body: stream,
    headers: { "content-length": "10240" },
    duplex: "half",
  } as RequestInit);
  assert.equal(res.status, 413);
  assert.deepEqual(await res.json(), { code: "body_too_large" });
  assert.ok(state.pulled <= 1024, `read ${state.pulled} bytes of a body it refused`);
});

Deno.test("[body limit] a streamed body is cut off as soon as it passes the limit", async () => {
  const { stream, state } = countingStream(100 * 1024, 1024); // 100 MB if read to the end
  const res = await echoApp().request("/big", { method: "POST", body: stream, duplex: "half" } as RequestInit);
  assert.equal(res.status, 413);
  assert.ok(state.pulled < 256 * 1024, `read ${state.pulled} bytes`);
});

Deno.test("[body limit] a body that trickles in past the deadline gets 408", async () => {
  const { stream } = countingStream(1, 10, { stall: true });
  const started = Date.now();
  const res = await echoApp(200).request("/slow", { method: "POST", body: stream, duplex: "half" } as RequestInit);
  assert.equal(res.status, 408);
  assert.deepEqual(await res.json(), { code: "request_timeout" });
  assert.ok(Date.now() - started < 5_000);
});

Deno.test("[body limit] methods no route serves get 405 before anything reads them", async () => {
  // TRACE and TRACK cannot be built as a Request at all; tests/hardening_test.ts sends them over a socket.
  const res = await echoApp().request("/any", { method: "PROPFIND", body: "x" });
  assert.equal(res.status, 405);
  assert.deepEqual(await res.json(), { code: "method_not_allowed" });
});

Deno.test("[body limit] routes read the body it read: as text, and through Hono's own readers", async () => {
  const app = new Hono();
  app.use(limitBodies({ byPrefix: {} }));
  app.post("/text", async (c) => c.json({ ours: await requestText(c), hono: await c.req.text() }));
  app.post("/form", async (c) => c.json({ form: await c.req.parseBody({ all: true }) }));
  const text = await app.request("/text", { method: "POST", body: "héllo" });
  assert.deepEqual(await text.json(), { ours: "héllo", hono: "héllo" });
  const form = await app.request("/form", {
    method: "POST",
    body: "a=1&b=2&b=3",
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  assert.deepEqual(await form.json(), { form: { a: "1", b: ["2", "3"] } });
});
