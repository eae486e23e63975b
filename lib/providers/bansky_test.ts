import assert from "node:assert/strict";
import { BanskyProvider } from "./bansky.ts";
import { Http1Client, MAX_ANSWER_BYTES } from "./http1_client.ts";
import { ProviderRefusedError, UpstreamError } from "../errors.ts";

const TOKEN = "bansky-secret-token-91c2";

Deno.test("[bansky] calls over the kept-alive client map answers as the fetch code did: refusals with their reason, failures, timeouts, redirects not followed, no token in any error", async () => {
  let mode = "ok";
  const seen: (string | null)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    seen.push(req.headers.get("authorization"));
    if (mode === "slow") await new Promise((r) => setTimeout(r, 1_000));
    if (mode === "refused") return Response.json({ error: "amount too small" }, { status: 422 });
    if (mode === "refused, not JSON") return new Response("nope", { status: 400 });
    if (mode === "503") return new Response("down", { status: 503 });
    if (mode === "redirect") return new Response(null, { status: 302, headers: { location: "http://127.0.0.1:9/" } });
    if (mode === "not JSON") return new Response("<html></html>", { status: 200 });
    if (mode === "big") return new Response("x".repeat(MAX_ANSWER_BYTES + 1), { status: 200 });
    return Response.json({ id: "ref-1", status: "pending" });
  });
  const http = new Http1Client();
  const bansky = new BanskyProvider({
    apiUrl: `http://127.0.0.1:${server.addr.port}`,
    apiToken: TOKEN,
    webhookSecret: "unused",
    timeoutMs: 300,
    http,
  });
  try {
    assert.equal(await bansky.getStatus("ref-1"), "pending");
    assert.equal(seen.at(-1), `Bearer ${TOKEN}`);
    const cases: [string, boolean, RegExp, boolean][] = [
      ["slow", true, /^GET \/payments\/ref-1 timed out$/, false],
      ["refused", false, /^GET \/payments\/ref-1 answered 422: amount too small$/, true],
      ["refused, not JSON", false, /^GET \/payments\/ref-1 answered 400$/, true],
      ["503", false, /^GET \/payments\/ref-1 answered 503$/, false],
      ["redirect", false, /^GET \/payments\/ref-1 answered 302$/, false],
      ["not JSON", false, /^GET \/payments\/ref-1 answered an unexpected body$/, false],
      // Refused, not read whole, and said so (it did answer: not "unreachable").
      ["big", false, /^GET \/payments\/ref-1 answered a body over 1 MiB$/, false],
    ];
    for (const [m, timedOut, detail, refused] of cases) {
      mode = m;
      const err = await bansky.getStatus("ref-1").then(() => null, (e) => e);
      assert.ok(err instanceof UpstreamError, m);
      assert.equal(err.timedOut, timedOut, m);
      assert.equal(err instanceof ProviderRefusedError, refused, m);
      assert.match(err.detail, detail, m);
      assert.doesNotMatch(`${err.detail} ${err.message}`, new RegExp(TOKEN), m);
    }
    mode = "ok";
    assert.equal(await bansky.getStatus("ref-1"), "pending", "answered again after a call that timed out");
  } finally {
    http.close();
    await server.shutdown();
  }
});
