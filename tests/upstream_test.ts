import assert from "node:assert/strict";
import { callInit, paymentBody, startTestApp, waitFor } from "../fixtures/app.ts";
import { TcpRelay } from "../fixtures/tcp_relay.ts";

Deno.test("[upstream] the app's close ends its kept-alive connections to the provider, while the provider is still up", async () => {
  // The provider (the standalone sandbox) stays up until the end: only the app's own close can end the connections.
  // Left open, a command-line run (which closes the app, not the provider) would wait on them to exit.
  const network = new TcpRelay();
  const app = await startTestApp({ standaloneSandbox: true, env: { BANSKY_API_URL: network.url } });
  network.relayTo(app.sandboxUrl);
  try {
    assert.equal((await callInit(app, paymentBody())).status, 201);
    assert.equal((await callInit(app, paymentBody())).status, 201);
    assert.equal(network.open, 2, "one kept-alive connection, reused: the relay holds its two sides");
    await app.server.close();
    await waitFor("the app's connections to the provider to close", () => network.open === 0 || undefined, 2_000);
  } finally {
    // Closes the app's parts again (which takes it), then its HTTP server, the sandbox and the store.
    await app.close();
    network.close();
  }
});
