/**
 * How we reach upstream APIs (each account's payment provider, the chain service behind invoices): HTTP/1.1 over
 * kept-alive connections, one pool per origin.
 *
 * Why not fetch: every init-payment makes one provider call, and fetch (its Request, Headers, body streams and
 * hyper's client behind them) cost that call about 45 µs of CPU and its garbage in a side-by-side loop, against
 * about 17 µs for a client that writes the request's bytes and reads the answer's. Under init-payment's load that
 * was about a tenth of the app's CPU a payment (docs/benchmarks.md). The client does only what a JSON API needs:
 * one request at a time per connection, answers with Content-Length or chunked bodies (or read to the close), no
 * redirects followed, no compression (it asks for none and refuses one), and every answer bounded in size.
 *
 * Where an operator sends outbound traffic through a proxy of their own (HTTPS_PROXY and the like), the calls go
 * through fetch, which honours it (fetchTransport).
 */

import { outboundProxySetting } from "../outbound_proxy.ts";

/** An API's answer: its status and body (headers are not needed by the adapters beyond the framing). */
export interface HttpAnswer {
  status: number;
  body: Uint8Array;
}

export interface HttpCall {
  method: string;
  headers: Record<string, string>;
  body?: string;
  /** Ends the call (the connection is closed) with the signal's reason: a timeout is a TimeoutError. */
  signal: AbortSignal;
}

/** One way to make calls; `close` ends its kept-alive connections (the app's close, a test's end). */
export interface HttpTransport {
  send(url: string, call: HttpCall): Promise<HttpAnswer>;
  close(): void;
}

/** A call that got no usable answer: a refused or dropped connection, or an answer that is not HTTP we read. */
export class HttpTransportError extends Error {
  override name = "HttpTransportError";
}

/** The most an answer's body may hold: a provider's JSON answers are a few hundred bytes. */
export const MAX_ANSWER_BYTES = 1024 * 1024;
/** The most an answer's status line and headers may hold. */
const MAX_HEAD_BYTES = 64 * 1024;
/** A chunk-size line longer than this is not one (a few hex digits and perhaps an extension). */
const MAX_CHUNK_LINE_BYTES = 4 * 1024;
/**
 * A connection idle longer than this is closed rather than reused: servers close idle connections after a few
 * seconds (Node's default is 5), and a request written into one the server is closing fails.
 */
const IDLE_REUSE_MS = 4_000;
/** A connection's read buffer to begin with, and again once it goes idle (it grows for a larger answer). */
const BUFFER_BYTES = 16 * 1024;
/** Idle connections kept per origin; more are closed as they come back. */
const MAX_IDLE_PER_ORIGIN = 64;

/** The transport for an environment: fetch where an outbound proxy is set, kept-alive connections otherwise. */
export function providerTransport(env: (name: string) => string | undefined): HttpTransport {
  // Provider and chain URLs may be http (development) or https.
  return outboundProxySetting(env, ["https:", "http:"]) ? fetchTransport() : new Http1Client();
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Kept-alive HTTP/1.1 connections, pooled per origin (scheme, host and port). */
export class Http1Client implements HttpTransport {
  readonly #idle = new Map<string, Connection[]>();
  #closed = false;

  constructor(private readonly opts: { caCerts?: string[]; now?: () => number } = {}) {}

  async send(url: string, call: HttpCall): Promise<HttpAnswer> {
    const target = new URL(url);
    if (target.protocol !== "http:" && target.protocol !== "https:") {
      throw new HttpTransportError(`cannot call ${target.protocol} URLs`);
    }
    const request = encodeRequest(target, call);
    call.signal.throwIfAborted();
    const reused = this.#takeIdle(target.origin);
    const conn = reused ?? await this.#connect(target, call.signal);
    try {
      return await this.#exchange(target.origin, conn, request, call);
    } catch (err) {
      // A kept-alive connection the server closed meanwhile fails before any byte of an answer. The request is sent
      // once more on a new connection, once: the server may have got it, so this is safe only because the calls
      // we make are idempotent on our ids (Bansky's payments and refunds) or read-only, and the one that is neither
      // (the chain service's new addresses) at worst leaves a batch of addresses nobody was ever shown.
      if (!reused || conn.answered || call.signal.aborted) throw err;
      return await this.#exchange(target.origin, await this.#connect(target, call.signal), request, call);
    }
  }

  close() {
    this.#closed = true;
    for (const list of this.#idle.values()) for (const conn of list) conn.close();
    this.#idle.clear();
  }

  async #exchange(origin: string, conn: Connection, request: Uint8Array, call: HttpCall): Promise<HttpAnswer> {
    const onAbort = () => conn.close();
    call.signal.addEventListener("abort", onAbort, { once: true });
    try {
      // The signal may have fired while the connection was made (its listener above would never run).
      call.signal.throwIfAborted();
      const answer = await conn.exchange(request, call.method === "HEAD");
      if (answer.keepAlive) this.#release(origin, conn);
      else conn.close();
      return answer;
    } catch (err) {
      conn.close();
      if (call.signal.aborted) throw call.signal.reason;
      throw err instanceof HttpTransportError ? err : new HttpTransportError(describe(err));
    } finally {
      call.signal.removeEventListener("abort", onAbort);
    }
  }

  async #connect(target: URL, signal: AbortSignal): Promise<Connection> {
    // URL keeps an IPv6 literal's brackets; the socket wants the address alone.
    const hostname = target.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(target.port || (target.protocol === "https:" ? 443 : 80));
    try {
      const tcp = await Deno.connect({ hostname, port, signal });
      tcp.setNoDelay(true);
      if (target.protocol === "http:") return new Connection(tcp, this.#now());
      // TLS over the connection made above, so that the connect honours the signal. The handshake happens with the
      // first request's bytes, under the exchange's abort.
      const tls = await Deno.startTls(tcp, { hostname, caCerts: this.opts.caCerts, alpnProtocols: ["http/1.1"] });
      return new Connection(tls, this.#now());
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw new HttpTransportError(`cannot connect to ${target.host}: ${describe(err)}`);
    }
  }

  #takeIdle(origin: string): Connection | null {
    const list = this.#idle.get(origin);
    if (!list) return null;
    const now = this.#now();
    // The list is oldest first: connections idle too long are at its front.
    while (list.length && now - list[0].idleSince > list[0].idleLimitMs) list.shift()!.close();
    // The newest is taken, held to its own limit: a server's Keep-Alive timeout may make it shorter than others'.
    for (let conn = list.pop(); conn; conn = list.pop()) {
      if (now - conn.idleSince <= conn.idleLimitMs) return conn;
      conn.close();
    }
    return null;
  }

  #release(origin: string, conn: Connection) {
    if (this.#closed) return conn.close();
    conn.idleSince = this.#now();
    let list = this.#idle.get(origin);
    if (!list) this.#idle.set(origin, list = []);
    const idle = list;
    idle.push(conn);
    conn.watchIdle(() => {
      const at = idle.indexOf(conn);
      if (at >= 0) idle.splice(at, 1);
    });
    if (list.length > MAX_IDLE_PER_ORIGIN) list.shift()!.close();
  }

  #now(): number {
    return this.opts.now?.() ?? Date.now();
  }
}

interface Answer extends HttpAnswer {
  /** True when the connection may carry another request. */
  keepAlive: boolean;
}

/** One connection and the bytes read from it but not yet used. Requests on it are strictly one at a time. */
class Connection {
  #buf = new Uint8Array(BUFFER_BYTES);
  #start = 0;
  #end = 0;
  #closed = false;
  /** A read begun while the connection sat idle in the pool (see watchIdle), which the next exchange takes over. */
  #idleRead: Promise<number | null> | null = null;
  #inUse = true;
  /** True once any byte of an answer to the current request arrived (a retry is no longer safe). */
  answered = false;
  idleSince: number;
  /** How long it may stay idle and be reused (the server's Keep-Alive timeout can shorten it). */
  idleLimitMs = IDLE_REUSE_MS;

  constructor(private readonly conn: Deno.Conn, now: number) {
    this.idleSince = now;
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Closed already by the other side's error.
    }
  }

  /**
   * Reads from the connection while it is idle: bytes the server sends, or its close, before the next request is
   * written make the connection unusable (it is closed and `onGone` drops it from the pool). Such bytes are not an
   * answer to anything we will send, and must never be read as the next request's answer. Once an exchange begins,
   * the read is its first.
   */
  watchIdle(onGone: () => void) {
    this.#inUse = false;
    // Nothing is held now: a buffer grown for a large answer is let go, or 64 idle connections could keep 2 MiB each.
    if (this.#buf.length > BUFFER_BYTES) this.#buf = new Uint8Array(BUFFER_BYTES);
    const read = this.#idleRead = this.conn.read(this.#buf.subarray(this.#end));
    const gone = () => {
      if (this.#inUse) return;
      this.close();
      onGone();
    };
    read.then(gone, gone);
  }

  async exchange(request: Uint8Array, head: boolean): Promise<Answer> {
    this.#inUse = true;
    this.answered = false;
    for (let written = 0; written < request.length;) written += await this.conn.write(request.subarray(written));
    let parsed = this.#parseHead(await this.#readHead());
    // Interim answers (100 Continue, 103 Early Hints) come before the real one.
    while (parsed.status >= 100 && parsed.status < 200) {
      if (parsed.status === 101) throw new HttpTransportError("answered 101: switching protocols is not expected");
      parsed = this.#parseHead(await this.#readHead());
    }
    const { status, headers, version } = parsed;
    const connection = headers.get("connection")?.toLowerCase() ?? "";
    let keepAlive = version === "1.1" && !/(^|,)\s*close\s*(,|$)/.test(connection);
    const timeout = /timeout=(\d+)/i.exec(headers.get("keep-alive") ?? "")?.[1];
    if (timeout) this.idleLimitMs = Math.min(IDLE_REUSE_MS, Number(timeout) * 1000 - 1000);
    const encoding = headers.get("content-encoding")?.toLowerCase();
    if (encoding && encoding !== "identity") {
      throw new HttpTransportError(`answered in ${encoding}, which was not asked for`);
    }

    let body: Uint8Array;
    const transferEncoding = headers.get("transfer-encoding")?.toLowerCase();
    if (head || status === 204 || status === 304) {
      body = new Uint8Array(0);
    } else if (transferEncoding !== undefined) {
      // Chunked alone: a coding before it (gzip, chunked) is compression that was not asked for.
      if (transferEncoding !== "chunked") {
        throw new HttpTransportError(`answered with transfer-encoding ${transferEncoding}`);
      }
      body = await this.#readChunked();
      // With a Content-Length too, the two sides may not agree where the answer ended (RFC 9112 §6.3).
      if (headers.has("content-length")) keepAlive = false;
    } else if (headers.has("content-length")) {
      body = await this.#readExactly(contentLength(headers.get("content-length")!));
    } else {
      // No length given: the body is what comes until the server closes the connection.
      body = await this.#readToClose();
      keepAlive = false;
    }
    // Bytes past the answer mean the two sides no longer agree where messages end.
    if (this.#end > this.#start) keepAlive = false;
    return { status, body, keepAlive };
  }

  async #readHead(): Promise<Uint8Array> {
    // How far into the held bytes the search got: the buffer may move its bytes (#fill), so counted from #start.
    let searched = 0;
    for (;;) {
      const at = indexOfCrlfCrlf(this.#buf, this.#start + searched, this.#end);
      const size = at >= 0 ? at - this.#start + 4 : this.#end - this.#start;
      if (size > MAX_HEAD_BYTES) throw new HttpTransportError("answered a head over 64 KiB");
      if (at >= 0) return this.#take(size);
      searched = Math.max(0, this.#end - this.#start - 3);
      if (!(await this.#fill())) throw new HttpTransportError(closedWhere(this.answered, "before its answer"));
    }
  }

  #parseHead(bytes: Uint8Array) {
    const lines = decoder.decode(bytes).split("\r\n");
    const statusLine = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]);
    if (!statusLine) throw new HttpTransportError("answered something that is not HTTP/1.x");
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      if (!line) continue;
      const colon = line.indexOf(":");
      if (colon <= 0) throw new HttpTransportError("answered a malformed header line");
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const before = headers.get(name);
      headers.set(name, before === undefined ? value : `${before}, ${value}`);
    }
    return { version: `1.${statusLine[1]}`, status: Number(statusLine[2]), headers };
  }

  async #readExactly(n: number): Promise<Uint8Array> {
    if (n > MAX_ANSWER_BYTES) throw new HttpTransportError("answered a body over 1 MiB");
    while (this.#end - this.#start < n) {
      if (!(await this.#fill())) throw new HttpTransportError("closed the connection in the middle of its answer");
    }
    return this.#take(n);
  }

  async #readChunked(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const line = decoder.decode(await this.#readLine());
      const size = /^([0-9a-fA-F]{1,8})\s*(;.*)?$/.exec(line);
      if (!size) throw new HttpTransportError("answered a malformed chunk");
      const n = parseInt(size[1], 16);
      if (n === 0) break;
      total += n;
      if (total > MAX_ANSWER_BYTES) throw new HttpTransportError("answered a body over 1 MiB");
      parts.push(await this.#readExactly(n));
      if ((await this.#readLine()).length !== 0) throw new HttpTransportError("answered a malformed chunk");
    }
    // Trailer fields, if any, up to the empty line that ends the message.
    while ((await this.#readLine()).length !== 0);
    return concat(parts, total);
  }

  async #readLine(): Promise<Uint8Array> {
    for (;;) {
      const at = this.#buf.subarray(this.#start, this.#end).indexOf(10);
      if (at > 0 && this.#buf[this.#start + at - 1] === 13) return this.#take(at + 1).subarray(0, at - 1);
      if (at >= 0) throw new HttpTransportError("answered a line without its carriage return");
      if (this.#end - this.#start > MAX_CHUNK_LINE_BYTES) throw new HttpTransportError("answered a malformed chunk");
      if (!(await this.#fill())) throw new HttpTransportError("closed the connection in the middle of its answer");
    }
  }

  async #readToClose(): Promise<Uint8Array> {
    while (await this.#fill()) {
      if (this.#end - this.#start > MAX_ANSWER_BYTES) throw new HttpTransportError("answered a body over 1 MiB");
    }
    return this.#take(this.#end - this.#start);
  }

  /** Reads more bytes into the buffer; false when the server closed the connection. */
  async #fill(): Promise<boolean> {
    const idleRead = this.#idleRead;
    if (idleRead) {
      // Begun while idle, into the then empty buffer (a connection goes idle only with nothing held).
      this.#idleRead = null;
      return this.#filled(await idleRead);
    }
    if (this.#end === this.#buf.length) {
      const held = this.#end - this.#start;
      // Room is made by moving what is held to the front, or by a larger buffer when it is mostly full.
      const next = held > this.#buf.length / 2 ? new Uint8Array(this.#buf.length * 2) : this.#buf;
      next.set(this.#buf.subarray(this.#start, this.#end), 0);
      this.#buf = next;
      this.#start = 0;
      this.#end = held;
    }
    return this.#filled(await this.conn.read(this.#buf.subarray(this.#end)));
  }

  #filled(n: number | null): boolean {
    if (n === null) return false;
    this.#end += n;
    this.answered = true;
    return true;
  }

  /** The next `n` buffered bytes, as a copy (the buffer is reused). */
  #take(n: number): Uint8Array {
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return out;
  }
}

/** The request's bytes. Header names and values, and the path, are checked: a line break would start another. */
function encodeRequest(target: URL, call: HttpCall): Uint8Array {
  const body = call.body === undefined ? undefined : encoder.encode(call.body);
  const headers: Record<string, string> = {
    host: target.host,
    "user-agent": "AimbrellaPay",
    accept: "application/json",
    "accept-encoding": "identity",
    ...call.headers,
  };
  if (body || call.method === "POST" || call.method === "PUT" || call.method === "PATCH") {
    headers["content-length"] = String(body?.length ?? 0);
  }
  if (!/^[A-Z]+$/.test(call.method)) throw new HttpTransportError("invalid method");
  let head = `${call.method} ${target.pathname}${target.search} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value)) {
      throw new HttpTransportError(`invalid header ${JSON.stringify(name)}`);
    }
    head += `${name}: ${value}\r\n`;
  }
  const headBytes = encoder.encode(head + "\r\n");
  if (!body) return headBytes;
  const out = new Uint8Array(headBytes.length + body.length);
  out.set(headBytes);
  out.set(body, headBytes.length);
  return out;
}

/** A Content-Length's value; repeated values must agree (RFC 9112 §6.3), anything else is refused. */
function contentLength(value: string): number {
  const values = new Set(value.split(",").map((v) => v.trim()));
  const [only] = values;
  if (values.size !== 1 || !/^[0-9]{1,15}$/.test(only)) throw new HttpTransportError("answered a bad Content-Length");
  return Number(only);
}

function indexOfCrlfCrlf(buf: Uint8Array, from: number, end: number): number {
  for (let i = buf.indexOf(13, from); i >= 0 && i + 3 < end; i = buf.indexOf(13, i + 1)) {
    if (buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

function closedWhere(answered: boolean, where: string): string {
  return answered ? "closed the connection in the middle of its answer" : `closed the connection ${where}`;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The same calls through fetch, for where an outbound proxy must be honoured. */
export function fetchTransport(): HttpTransport {
  return {
    async send(url, call) {
      const res = await fetch(url, {
        method: call.method,
        headers: call.headers,
        body: call.body,
        redirect: "manual",
        signal: call.signal,
      }).catch((err) => {
        if (call.signal.aborted) throw call.signal.reason;
        throw new HttpTransportError(describe(err));
      });
      const body = await readBounded(res).catch((err) => {
        if (call.signal.aborted) throw call.signal.reason;
        throw err instanceof HttpTransportError ? err : new HttpTransportError(describe(err));
      });
      return { status: res.status, body };
    },
    close() {},
  };
}

/** A fetch answer's body, refused once it passes MAX_ANSWER_BYTES (before it is all in memory). */
async function readBounded(res: Response): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const part of res.body) {
    total += part.length;
    // Leaving the loop cancels the rest of the body.
    if (total > MAX_ANSWER_BYTES) throw new HttpTransportError("answered a body over 1 MiB");
    parts.push(part);
  }
  return concat(parts, total);
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
