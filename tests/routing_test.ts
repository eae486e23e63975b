/**
 * Hono answers with its RegExpRouter only while every route of the app fits it; one route it refuses (a
 * parameter beside a static path at the same level, such as `/docs/:slug` beside `/docs/api-reference`) puts
 * every request on the slower TrieRouter, silently. That cost about 5 % of the main thread on the webhook path.
 */
import assert from "node:assert/strict";
import { startTestApp } from "../fixtures/app.ts";

Deno.test("[routing] every route of the app fits Hono's RegExpRouter", async () => {
  const app = await startTestApp();
  try {
    // The router is chosen on the first request.
    await (await fetch(`${app.baseUrl}/healthz`)).body?.cancel();
    assert.equal((app.server.app.router as { name: string }).name, "SmartRouter + RegExpRouter");
  } finally {
    await app.close();
  }
});
