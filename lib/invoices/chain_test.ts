import assert from "node:assert/strict";
import { ChainClient } from "./chain.ts";
import { NETWORK_IDS } from "./coins.ts";
import { UpstreamError } from "../errors.ts";
import { Http1Client, MAX_ANSWER_BYTES } from "../providers/http1_client.ts";

const TOKEN = "chain-secret-token-7f3a";

/** A chain service on loopback answering every call with `answer`, and the client that calls it over Http1Client. */
function chainAt(answer: (req: Request) => Response | Promise<Response>) {
  const seen: { authorization: string | null; path: string }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    seen.push({ authorization: req.headers.get("authorization"), path: new URL(req.url).pathname });
    return answer(req);
  });
  const http = new Http1Client();
  const client = new ChainClient({
    apiUrl: `http://127.0.0.1:${server.addr.port}`,
    apiToken: TOKEN,
    webhookSecret: "unused",
    timeoutMs: 300,
    http,
  });
  return {
    client,
    seen,
    async close() {
      http.close();
      await server.shutdown();
    },
  };
}

async function refusal(call: () => Promise<unknown>): Promise<UpstreamError> {
  try {
    await call();
  } catch (err) {
    if (err instanceof UpstreamError) return err;
    throw err;
  }
  throw new Error("accepted");
}

const network = NETWORK_IDS[0];

Deno.test("[chain] the client's calls over kept-alive connections: the token in its header only, and each failure an UpstreamError that names no secret", async () => {
  let mode = "ok";
  const chain = chainAt(async () => {
    if (mode === "slow") await new Promise((r) => setTimeout(r, 1_000));
    if (mode === "500") return new Response("internal details", { status: 500 });
    if (mode === "html") return new Response("<html>proxy error</html>", { status: 200 });
    if (mode === "big") return new Response("x".repeat(MAX_ANSWER_BYTES + 1), { status: 200 });
    return Response.json({ network, address: "a1", height: 7, deposits: [] });
  });
  try {
    const state = await chain.client.getAddress(network, "a1");
    assert.equal(state.height, 7);
    assert.deepEqual(chain.seen.at(-1), { authorization: `Bearer ${TOKEN}`, path: `/addresses/${network}/a1` });

    const cases: [string, boolean, RegExp][] = [
      ["slow", true, /: timeout$/],
      ["500", false, /: HTTP 500$/],
      ["html", false, /: unexpected answer \(body: invalid_type\)$/],
      ["big", false, /over 1 MiB/],
    ];
    for (const [m, timedOut, detail] of cases) {
      mode = m;
      const err = await refusal(() => chain.client.getAddress(network, "a1"));
      assert.equal(err.timedOut, timedOut, m);
      assert.match(err.detail, detail, m);
      assert.doesNotMatch(`${err.detail} ${err.message}`, new RegExp(TOKEN), m);
    }
    // The connection a timed-out call closed is not used again: the next call is answered.
    mode = "ok";
    assert.equal((await chain.client.getAddress(network, "a1")).height, 7);
  } finally {
    await chain.close();
  }
});
