import assert from "node:assert/strict";
import { Http1Client, HttpTransportError, MAX_ANSWER_BYTES, providerTransport } from "./http1_client.ts";
import { isTimeout, withTimeout } from "../timeout.ts";
import { testCertificates } from "../../fixtures/tls.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A call with a deadline, as the adapters make them. */
function call(client: Http1Client, url: string, init: { method?: string; body?: string; timeoutMs?: number } = {}) {
  return withTimeout(
    init.timeoutMs ?? 5_000,
    (signal) =>
      client.send(url, {
        method: init.method ?? "POST",
        headers: { "content-type": "application/json" },
        body: init.body,
        signal,
      }),
  );
}

/** A Deno.serve server on loopback that notes the client port of each request (one port = one connection). */
function servedWithPorts(handler: (req: Request) => Response | Promise<Response>) {
  const ports: number[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req, info) => {
    ports.push(info.remoteAddr.port);
    return handler(req);
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, ports, server };
}

/**
 * A raw TCP server on loopback that reads each request (head and Content-Length body) and answers with what `answer`
 * returns: bytes to write, "close" to close the connection without answering, or "hang" to say nothing.
 */
function scripted(answer: (request: string, n: number) => string | Uint8Array | "close" | "hang") {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let requests = 0;
  let connections = 0;
  (async () => {
    for await (const conn of listener) {
      connections++;
      conns.add(conn);
      (async () => {
        let held = "";
        const buf = new Uint8Array(64 * 1024);
        try {
          for (;;) {
            const end = held.indexOf("\r\n\r\n");
            const length = Number(/content-length: (\d+)/i.exec(held)?.[1] ?? 0);
            if (end >= 0 && held.length >= end + 4 + length) {
              const request = held.slice(0, end + 4 + length);
              held = held.slice(end + 4 + length);
              const out = answer(request, requests++);
              if (out === "close") break;
              if (out === "hang") continue;
              const bytes = typeof out === "string" ? encoder.encode(out) : out;
              for (let w = 0; w < bytes.length;) w += await conn.write(bytes.subarray(w));
              continue;
            }
            const n = await conn.read(buf);
            if (n === null) break;
            held += decoder.decode(buf.subarray(0, n));
          }
        } catch {
          // The client went away.
        }
        conns.delete(conn);
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      })();
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    get requests() {
      return requests;
    },
    get connections() {
      return connections;
    },
    close() {
      listener.close();
      for (const conn of conns) conn.close();
    },
  };
}

const ok = (body: string, extra = "") =>
  `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${
    encoder.encode(body).length
  }\r\n${extra}\r\n${body}`;

Deno.test("[http1] keeps a connection alive across calls, and opens one per call under way at once", async () => {
  const served = servedWithPorts(async (req) => Response.json({ echo: await req.json() }));
  const client = new Http1Client();
  try {
    for (let i = 0; i < 10; i++) {
      const res = await call(client, `${served.url}/payments?n=${i}`, { body: JSON.stringify({ i }) });
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(decoder.decode(res.body)), { echo: { i } });
    }
    assert.equal(new Set(served.ports).size, 1, "ten calls one after another share one connection");
    await Promise.all(Array.from({ length: 5 }, (_, i) => call(client, `${served.url}/x`, { body: String(i) })));
    assert.ok(
      new Set(served.ports).size <= 5,
      `at most one connection per call at once: ${new Set(served.ports).size}`,
    );
    assert.ok(new Set(served.ports).size >= 2, "calls under way at once do not queue for one connection");
  } finally {
    client.close();
    await served.server.shutdown();
  }
});

Deno.test("[http1] reads Content-Length, chunked and read-to-close bodies, skips 100 Continue, and honours Connection: close", async () => {
  const server = scripted((_, n) => {
    switch (n) {
      case 0:
        return ok('{"a":1}');
      case 1:
        return "HTTP/1.1 100 Continue\r\n\r\n" + ok('{"b":2}');
      case 2:
        return 'HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{"c"\r\n3;ext=1\r\n:3}\r\n0\r\nx-trailer: y\r\n\r\n';
      case 3:
        return ok('{"d":4}', "connection: close\r\n");
      default:
        return ok("{}");
    }
  });
  const client = new Http1Client();
  try {
    const bodies = [];
    for (let i = 0; i < 4; i++) {
      const res = await call(client, `${server.url}/p`);
      bodies.push([res.status, decoder.decode(res.body)]);
    }
    assert.equal(server.connections, 1, "kept alive until the server said close");
    assert.deepEqual(bodies, [[200, '{"a":1}'], [200, '{"b":2}'], [201, '{"c":3}'], [200, '{"d":4}']]);
    await call(client, `${server.url}/p`);
    assert.equal(server.connections, 2, "a connection the server closed is not used again");
  } finally {
    client.close();
    server.close();
  }
  // Chunked and a Content-Length at once: the chunks are the body, and the connection is not trusted again.
  const both = scripted((_, n) =>
    n === 0
      ? 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 7\r\n\r\n7\r\n{"f":6}\r\n0\r\n\r\n'
      : ok("{}")
  );
  const wary = new Http1Client();
  try {
    assert.equal(decoder.decode((await call(wary, `${both.url}/p`)).body), '{"f":6}');
    await call(wary, `${both.url}/p`);
    assert.equal(both.connections, 2, "an answer with both framings closes its connection");
  } finally {
    wary.close();
    both.close();
  }
  const toClose = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of toClose) {
      await conn.read(new Uint8Array(4096));
      await conn.write(encoder.encode('HTTP/1.1 200 OK\r\n\r\n{"e":5}'));
      conn.close();
    }
  })();
  const again = new Http1Client();
  try {
    const res = await call(again, `http://127.0.0.1:${(toClose.addr as Deno.NetAddr).port}/p`);
    assert.equal(decoder.decode(res.body), '{"e":5}', "without a length, the body is what comes until the close");
  } finally {
    again.close();
    toClose.close();
  }
});

Deno.test("[http1] a call past its deadline ends as a timeout, and its connection is not used again", async () => {
  let first = true;
  const served = servedWithPorts(async () => {
    if (first) {
      first = false;
      await new Promise((r) => setTimeout(r, 500));
    }
    return Response.json({ ok: true });
  });
  const client = new Http1Client();
  try {
    const started = Date.now();
    const err = await call(client, `${served.url}/slow`, { timeoutMs: 100 }).then(() => null, (e) => e);
    assert.ok(isTimeout(err), `a timeout, not ${err}`);
    assert.ok(Date.now() - started < 400, "the call ends at its deadline, not when the server answers");
    const res = await call(client, `${served.url}/fast`);
    assert.equal(res.status, 200);
    assert.equal(new Set(served.ports).size, 2, "the timed-out connection was closed, the next call opened another");
  } finally {
    client.close();
    await served.server.shutdown();
  }
});

Deno.test("[http1] a deadline that passes as the connection is made still ends the call", async () => {
  // The signal fires between the connect and the request (here, as Deno.connect returns; in production, during the
  // TLS set-up or a busy event loop): the call must end then, not wait for a server that says nothing.
  const server = scripted(() => "hang");
  const client = new Http1Client();
  const controller = new AbortController();
  const connect = Deno.connect;
  const connectThenTimeOut = async (opts: Deno.ConnectOptions) => {
    const conn = await connect(opts);
    controller.abort(new DOMException("timed out", "TimeoutError"));
    return conn;
  };
  Object.assign(Deno, { connect: connectThenTimeOut });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const err = await Promise.race([
      client.send(`${server.url}/p`, { method: "GET", headers: {}, signal: controller.signal }).then(
        () => null,
        (e) => e,
      ),
      new Promise((resolve) => timer = setTimeout(() => resolve("still waiting after 1 s"), 1_000)),
    ]);
    assert.ok(isTimeout(err), `a timeout, not ${err}`);
  } finally {
    clearTimeout(timer);
    Object.assign(Deno, { connect });
    client.close();
    server.close();
  }
});

Deno.test("[http1] a kept-alive connection the server closed unanswered is replaced once; a new one that fails is not retried", async () => {
  // Request 0 is answered; request 1 (the second call, on the kept-alive connection) is closed on, as a server
  // closing an idle connection does; the call goes again on a new connection (request 2) and is answered.
  const server = scripted((_, n) => (n === 1 ? "close" : ok(`{"n":${n}}`)));
  const client = new Http1Client();
  try {
    await call(client, `${server.url}/a`);
    const res = await call(client, `${server.url}/b`);
    assert.equal(decoder.decode(res.body), '{"n":2}');
    assert.deepEqual([server.requests, server.connections], [3, 2]);
  } finally {
    client.close();
    server.close();
  }
  const closing = scripted(() => "close");
  const fresh = new Http1Client();
  try {
    const err = await call(fresh, `${closing.url}/a`).then(() => null, (e) => e);
    assert.ok(err instanceof HttpTransportError, String(err));
    assert.match(err.message, /closed the connection before its answer/);
    assert.equal(closing.requests, 1, "a new connection's failure is the call's: not sent twice");
  } finally {
    fresh.close();
    closing.close();
  }
});

Deno.test("[http1] bytes a server sends after an answer are never read as the next call's answer", async () => {
  // The first connection answers, then (as a confused or hostile server, or one that sent more body than its
  // Content-Length said) sends a second answer nobody asked for. Kept in the pool, the connection would hand those
  // bytes to the next call, say a payment's status read as another payment's.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  let firstClosedByClient!: () => void;
  const firstClosed = new Promise<void>((resolve) => firstClosedByClient = resolve);
  const served = (async () => {
    const handlers = [];
    for await (const conn of listener) {
      const n = connections++;
      handlers.push((async () => {
        const buf = new Uint8Array(4096);
        try {
          await conn.read(buf);
          await conn.write(encoder.encode(ok(`{"n":"answer ${n}"}`)));
          if (n === 0) {
            await new Promise((r) => setTimeout(r, 20));
            await conn.write(encoder.encode(ok('{"n":"unasked"}')));
            if ((await conn.read(buf)) === null) firstClosedByClient();
          } else {
            await conn.read(buf);
          }
        } catch {
          // The client went away.
        }
        conn.close();
      })());
    }
    await Promise.all(handlers);
  })();
  const client = new Http1Client();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/p`;
    assert.equal(decoder.decode((await call(client, url, { method: "GET" })).body), '{"n":"answer 0"}');
    // The unasked answer is in flight: the client drops the connection once it sees it (or a second passes).
    await Promise.race([firstClosed, new Promise((r) => timer = setTimeout(r, 1_000))]);
    assert.equal(decoder.decode((await call(client, url, { method: "GET" })).body), '{"n":"answer 1"}');
    assert.equal(connections, 2);
  } finally {
    clearTimeout(timer);
    client.close();
    listener.close();
    await served;
  }
});

Deno.test("[http1] a connection idle past its limit is closed rather than reused", async () => {
  const served = servedWithPorts(() => Response.json({}));
  let now = 1_000_000;
  const client = new Http1Client({ now: () => now });
  try {
    await call(client, served.url);
    now += 3_000;
    await call(client, served.url);
    assert.equal(new Set(served.ports).size, 1, "idle 3 s: reused");
    now += 4_001;
    await call(client, served.url);
    assert.equal(new Set(served.ports).size, 2, "idle over 4 s: a new connection");
  } finally {
    client.close();
    await served.server.shutdown();
  }
});

Deno.test("[http1] each idle connection is held to its own server's Keep-Alive timeout", async () => {
  // Two connections go idle: the first with no Keep-Alive timeout (4 s), the second, newer, whose answer said
  // timeout=2 (reused within 1 s). After 1.5 s the second must not be reused though the first still may be.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  const served = (async () => {
    const handlers = [];
    for await (const conn of listener) {
      const k = connections++;
      handlers.push((async () => {
        const buf = new Uint8Array(4096);
        try {
          for (let n = 0; (await conn.read(buf)) !== null; n++) {
            if (k === 1 && n === 0) await new Promise((r) => setTimeout(r, 50));
            await conn.write(encoder.encode(ok(`{"conn":${k}}`, k === 1 ? "keep-alive: timeout=2\r\n" : "")));
          }
        } catch {
          // The client went away.
        }
        conn.close();
      })());
    }
    await Promise.all(handlers);
  })();
  let now = 1_000_000;
  const client = new Http1Client({ now: () => now });
  try {
    const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/p`;
    await Promise.all([call(client, url, { method: "GET" }), call(client, url, { method: "GET" })]);
    assert.equal(connections, 2);
    now += 1_500;
    const res = await call(client, url, { method: "GET" });
    assert.equal(decoder.decode(res.body), '{"conn":0}', "the connection past its server's timeout is not reused");
  } finally {
    client.close();
    listener.close();
    await served;
  }
});

Deno.test("[http1] refuses answers it cannot trust: too large, a huge head, compressed, bad framing, not HTTP", async (t) => {
  const big = "x".repeat(MAX_ANSWER_BYTES + 1);
  const cases: [string, string | Uint8Array, RegExp][] = [
    [
      "a body over 1 MiB by its length",
      `HTTP/1.1 200 OK\r\ncontent-length: ${MAX_ANSWER_BYTES + 1}\r\n\r\n`,
      /over 1 MiB/,
    ],
    [
      "a chunked body over 1 MiB",
      `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${
        (MAX_ANSWER_BYTES + 1).toString(16)
      }\r\n${big}\r\n0\r\n\r\n`,
      /over 1 MiB/,
    ],
    ["a head over 64 KiB", `HTTP/1.1 200 OK\r\nx-big: ${"y".repeat(70_000)}\r\n\r\n`, /head over 64 KiB/],
    [
      "a compressed body",
      "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 2\r\n\r\n{}",
      /gzip, which was not asked for/,
    ],
    [
      "two Content-Lengths that differ",
      "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}",
      /bad Content-Length/,
    ],
    [
      "a malformed chunk size",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
      /malformed chunk/,
    ],
    ["another transfer coding", "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", /transfer-encoding gzip/],
    [
      "a transfer coding before chunked",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
      /transfer-encoding gzip, chunked/,
    ],
    ["something not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", /not HTTP\/1.x/],
  ];
  for (const [name, answer, message] of cases) {
    await t.step(name, async () => {
      const server = scripted(() => answer);
      const client = new Http1Client();
      try {
        const err = await call(client, `${server.url}/p`).then(() => null, (e) => e);
        assert.ok(err instanceof HttpTransportError, String(err));
        assert.match(err.message, message);
      } finally {
        client.close();
        server.close();
      }
    });
  }
});

Deno.test("[http1] refuses to send a header or path that would start another line, before connecting", async () => {
  const server = scripted(() => ok("{}"));
  const client = new Http1Client();
  try {
    for (
      const headers of [{ authorization: "Bearer x\r\nx-injected: 1" }, { "bad name": "1" }, { ok: "a\nb" }] as Record<
        string,
        string
      >[]
    ) {
      const err = await withTimeout(
        1_000,
        (signal) => client.send(`${server.url}/p`, { method: "GET", headers, signal }),
      ).then(() => null, (e) => e);
      assert.ok(err instanceof HttpTransportError, String(err));
      assert.match(err.message, /invalid header/);
    }
    assert.equal(server.connections, 0);
    // URL parsing turns a raw line break in a path into %0A / drops it: the request line stays one line.
    const res = await withTimeout(
      1_000,
      (signal) => client.send(`${server.url}/p\r\nx: 1`, { method: "GET", headers: {}, signal }),
    );
    assert.equal(res.status, 200);
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("[http1] speaks TLS to a server its authority vouches for, and refuses one it does not", async () => {
  const certs = await testCertificates("127.0.0.1");
  const ports = new Set<number>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: certs.cert, key: certs.key, onListen() {} },
    (_, info) => {
      ports.add(info.remoteAddr.port);
      return Response.json({ tls: true });
    },
  );
  const url = `https://127.0.0.1:${server.addr.port}/payments`;
  const trusting = new Http1Client({ caCerts: [certs.caCert] });
  const stranger = new Http1Client();
  try {
    const res = await call(trusting, url, { body: "{}" });
    assert.deepEqual(JSON.parse(decoder.decode(res.body)), { tls: true });
    const again = await call(trusting, url, { body: "{}" });
    assert.deepEqual(JSON.parse(decoder.decode(again.body)), { tls: true });
    assert.equal(ports.size, 1, "the TLS connection is kept alive and reused");
    const err = await call(stranger, url, { body: "{}" }).then(() => null, (e) => e);
    assert.ok(err instanceof HttpTransportError, String(err));
  } finally {
    trusting.close();
    stranger.close();
    await server.shutdown();
  }
});

Deno.test("[http1] where an operator's proxy is set for http or https URLs, calls go through fetch, which honours it", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.ok(providerTransport(env({})) instanceof Http1Client);
  for (const name of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]) {
    const transport = providerTransport(env({ [name]: "http://proxy.internal:3128" }));
    assert.ok(!(transport instanceof Http1Client), name);
    transport.close();
  }
});
