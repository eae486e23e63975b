/**
 * A minimal HTTP/1.1 keep-alive client over a raw TCP connection, for the load
 * generator only. `fetch` costs the generator about as much CPU per request as
 * a small server spends answering it, and on a 2-core machine that would cap
 * both the app and the floor at the generator's speed and hide the difference
 * we want to measure. This client does the least work a client can: one
 * prebuilt request in, status line, headers and body (Content-Length or
 * chunked) out.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CRLFCRLF = [13, 10, 13, 10];

export interface Http1Request {
  method: "GET" | "POST";
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface Http1Response {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

/** Serialises a request once, so a hot loop only writes bytes. */
export function encodeRequest(host: string, req: Http1Request): Uint8Array {
  const body = req.body === undefined ? undefined : encoder.encode(req.body);
  let head = `${req.method} ${req.path} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const [k, v] of Object.entries(req.headers ?? {})) head += `${k}: ${v}\r\n`;
  if (body) head += `content-length: ${body.length}\r\n`;
  head += "\r\n";
  const headBytes = encoder.encode(head);
  if (!body) return headBytes;
  const out = new Uint8Array(headBytes.length + body.length);
  out.set(headBytes);
  out.set(body, headBytes.length);
  return out;
}

/** One keep-alive connection; requests on it are strictly sequential. Reconnects when the server closes it. */
export class Http1Connection {
  private conn: Deno.TcpConn | null = null;
  private buf = new Uint8Array(0);
  private readonly chunk = new Uint8Array(64 * 1024);
  /** Whether the current exchange got any answer bytes (decides whether a retry is safe). */
  private received = false;

  constructor(private readonly hostname: string, private readonly port: number) {}

  async send(request: Uint8Array): Promise<Http1Response> {
    // A kept-alive connection the server closed while idle fails on first use. Retry once on a fresh one, but
    // only when no byte of an answer arrived: then the server never saw the request, so a POST is not doubled.
    const reused = this.conn !== null;
    this.received = false;
    try {
      return await this.exchange(request);
    } catch (err) {
      this.close();
      if (!reused || this.received) throw err;
      return await this.exchange(request);
    }
  }

  close() {
    try {
      this.conn?.close();
    } catch {
      // Already closed.
    }
    this.conn = null;
    this.buf = new Uint8Array(0);
  }

  private async exchange(request: Uint8Array): Promise<Http1Response> {
    if (!this.conn) {
      this.conn = await Deno.connect({ hostname: this.hostname, port: this.port });
      this.conn.setNoDelay(true);
    }
    await writeAll(this.conn, request);
    const headEnd = await this.fill((b) => indexOf(b, CRLFCRLF));
    const head = decoder.decode(this.buf.subarray(0, headEnd));
    this.consume(headEnd + 4);
    const lines = head.split("\r\n");
    const status = Number(lines[0].split(" ", 3)[1]);
    const headers = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      if (colon > 0) headers.set(lines[i].slice(0, colon).trim().toLowerCase(), lines[i].slice(colon + 1).trim());
    }
    const body = headers.get("transfer-encoding")?.includes("chunked")
      ? await this.readChunked()
      : await this.readExactly(Number(headers.get("content-length") ?? 0));
    if (headers.get("connection")?.toLowerCase() === "close") this.close();
    return { status, headers, body };
  }

  private async readExactly(n: number): Promise<Uint8Array> {
    await this.fill((b) => (b.length >= n ? n : -1));
    const out = this.buf.slice(0, n);
    this.consume(n);
    return out;
  }

  private async readChunked(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for (;;) {
      const lineEnd = await this.fill((b) => indexOf(b, [13, 10]));
      const size = parseInt(decoder.decode(this.buf.subarray(0, lineEnd)), 16);
      this.consume(lineEnd + 2);
      if (size === 0) {
        // No trailers from the servers we test: just the final CRLF.
        await this.readExactly(2);
        break;
      }
      parts.push(await this.readExactly(size));
      await this.readExactly(2);
    }
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      out.set(p, offset);
      offset += p.length;
    }
    return out;
  }

  /** Reads until `found` returns an index >= 0 for the buffered bytes; returns that index. */
  private async fill(found: (b: Uint8Array) => number): Promise<number> {
    for (;;) {
      const at = found(this.buf);
      if (at >= 0) return at;
      const n = await this.conn!.read(this.chunk);
      if (n === null) throw new Error("connection closed by the server");
      this.received = true;
      const next = new Uint8Array(this.buf.length + n);
      next.set(this.buf);
      next.set(this.chunk.subarray(0, n), this.buf.length);
      this.buf = next;
    }
  }

  private consume(n: number) {
    this.buf = this.buf.subarray(n);
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array) {
  let written = 0;
  while (written < data.length) written += await conn.write(data.subarray(written));
}

function indexOf(haystack: Uint8Array, needle: number[]): number {
  outer: for (let i = 0; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Parses a response body as JSON (for the few fields the generator keeps). */
export function jsonBody<T>(res: Http1Response): T {
  return JSON.parse(decoder.decode(res.body)) as T;
}
