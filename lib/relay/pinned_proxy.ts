import { base64url, randomBytes } from "../ids.ts";
import { outboundProxySetting } from "../outbound_proxy.ts";
import { describeError, log } from "../log.ts";
import { destinationAddresses, DnsTimeoutError, type Resolver } from "./url_guard.ts";

/**
 * Postbacks to https URLs go through a CONNECT proxy of this process's own, on 127.0.0.1: it resolves the shop's
 * host with our resolver, checks every address against the URL guard's rules, and connects to an address it
 * checked. So fetch never looks the name up itself, and a name that answers a public address to our check and a
 * private one to the connection (DNS rebinding) cannot make a postback reach our own network. TLS stays end to end:
 * fetch speaks it through the tunnel, checking the shop's certificate for its host name; the proxy copies bytes.
 *
 * A tunnel fetch keeps alive for later postbacks stays on the address it was opened to. Plain http postback URLs
 * (development only, DEV_ALLOW_LOCAL_URLS) do not go through it.
 */
export class PinnedProxy {
  readonly client: Deno.HttpClient;
  /** Where it listens on 127.0.0.1. */
  readonly port: number;
  readonly #listener: Deno.Listener;
  readonly #auth: string;
  readonly #open = new Set<Deno.Conn>();
  /** Why the proxy last refused each host, and when: fetch reports any refusal as "unsuccessful tunnel". */
  readonly #refusals = new Map<string, ProxyRefusal & { at: number }>();
  /** Aborted by close: lookups and connections under way stop with it. */
  readonly #closing = new AbortController();

  private constructor(listener: Deno.Listener, private readonly rules: ProxyRules, caCerts: string[] | undefined) {
    this.#listener = listener;
    const password = base64url(randomBytes(24));
    // Only this process's fetch may use it: another program on the machine gets 407.
    this.#auth = `Basic ${btoa(`relay:${password}`)}`;
    const { port } = listener.addr as Deno.NetAddr;
    this.port = port;
    this.client = Deno.createHttpClient({
      proxy: { url: `http://127.0.0.1:${port}`, basicAuth: { username: "relay", password } },
      ...(caCerts ? { caCerts } : {}),
    });
    this.#serve();
  }

  /**
   * Starts the proxy, or answers null where postbacks should connect as fetch resolves: where this runtime cannot
   * listen, or connect to itself (Deno Deploy, whose isolates cannot reach a private network anyway), and where the
   * operator sends outbound traffic through a proxy of their own (HTTPS_PROXY, ALL_PROXY), which looks names up
   * itself and which an explicit proxy here would bypass.
   */
  static async start(rules: ProxyRules, opts: { caCerts?: string[] } = {}): Promise<PinnedProxy | null> {
    const outbound = outboundProxySetting((name) => Deno.env.get(name));
    if (outbound) {
      log.info("postbacks go through the outbound proxy, not the pinned one", { setting: outbound });
      return null;
    }
    let listener: Deno.Listener;
    try {
      listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const self = await Deno.connect({
        hostname: "127.0.0.1",
        port: (listener.addr as Deno.NetAddr).port,
        signal: AbortSignal.timeout(SELF_CHECK_TIMEOUT_MS),
      });
      self.close();
    } catch (err) {
      log.info("postbacks connect where fetch resolves their host (no local proxy here)", {
        error: describeError(err),
      });
      return null;
    }
    return new PinnedProxy(listener, rules, opts.caCerts);
  }

  /** Why a tunnel to `host` was refused within the last REFUSAL_KEPT_MS, for the attempt's recorded error. */
  refusal(host: string): ProxyRefusal | null {
    const r = this.#refusals.get(host.toLowerCase().replace(/^\[|\]$/g, ""));
    return r && Date.now() - r.at < REFUSAL_KEPT_MS ? { problem: r.problem, checked: r.checked } : null;
  }

  #refused(host: string, refusal: ProxyRefusal) {
    if (this.#refusals.size >= 1_000) this.#refusals.clear();
    this.#refusals.set(host, { ...refusal, at: Date.now() });
  }

  close() {
    this.#closing.abort();
    this.client.close();
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
    for (const conn of this.#open) closeQuietly(conn);
    this.#open.clear();
  }

  async #serve() {
    try {
      for await (const conn of this.#listener) this.#tunnel(conn);
    } catch {
      // The listener was closed.
    }
  }

  async #tunnel(conn: Deno.Conn) {
    this.#open.add(conn);
    let upstream: Deno.Conn | null = null;
    try {
      const head = await readHead(conn);
      const asked = head && parseConnect(head.text);
      if (!head || !asked) return await answer(conn, "400 Bad Request");
      if (!sameText(head.headers.get("proxy-authorization") ?? "", this.#auth)) {
        return await answer(conn, "407 Proxy Authentication Required");
      }
      // The client's side is read from now on, so that the lookup and the connection stop when it leaves: fetch
      // gives up at its attempt's deadline, and whatever we went on doing for it would be left open (an address
      // that drops our packets holds a connection for minutes).
      const client = clientStream(conn);
      const signal = AbortSignal.any([client.left, this.#closing.signal]);
      const checked = await destinationAddresses(asked.host, { ...this.rules, signal }).catch((err) => {
        if (err instanceof DnsTimeoutError) return { problem: err.problem };
        throw err;
      });
      if (signal.aborted) return;
      if ("problem" in checked) {
        log.warn("postback refused at connection", { host: asked.host, problem: checked.problem });
        this.#refused(asked.host, {
          problem: `${checked.problem} when connecting (refused by our address check)`,
          checked: true,
        });
        return await answer(conn, "403 Forbidden");
      }
      upstream = await connectFirst(checked.addresses, asked.port, signal);
      if (signal.aborted) return;
      if (!upstream) {
        this.#refused(asked.host, {
          problem: `no address of host ${asked.host} accepted a connection`,
          checked: false,
        });
        return await answer(conn, "502 Bad Gateway");
      }
      this.#open.add(upstream);
      await answer(conn, "200 Connection Established", { keepOpen: true });
      // Bytes the client sent past its request (it may not wait for our answer) go first.
      if (head.rest.length) await writeAll(upstream, head.rest);
      await Promise.allSettled([
        client.readable.pipeTo(upstream.writable),
        upstream.readable.pipeTo(conn.writable),
      ]);
    } catch (err) {
      log.debug("postback tunnel ended", { error: describeError(err) });
    } finally {
      this.#open.delete(conn);
      closeQuietly(conn);
      if (upstream) {
        this.#open.delete(upstream);
        closeQuietly(upstream);
      }
    }
  }
}

/**
 * Why the proxy refused a tunnel: `checked` when our address check refused the host (nothing reached the shop), not
 * when none of its addresses took the connection.
 */
export interface ProxyRefusal {
  problem: string;
  checked: boolean;
}

/**
 * The client's side of a tunnel from the end of its request on, read at once: `left` fires when it closes (or
 * fails) before we answer, and `readable` gives what it sends, a first read already under way included.
 */
function clientStream(conn: Deno.Conn): { left: AbortSignal; readable: ReadableStream<Uint8Array> } {
  const reader = conn.readable.getReader();
  const leaving = new AbortController();
  let first: Promise<ReadableStreamReadResult<Uint8Array>> | null = reader.read();
  first.then(({ done }) => done && leaving.abort(), () => leaving.abort());
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await (first ?? reader.read());
      first = null;
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  return { left: leaving.signal, readable };
}

/** What the proxy lets a postback connect to: the postback URL guard's address rules. */
export interface ProxyRules {
  allowLocal: boolean;
  resolve: Resolver;
}

/** How long a refusal's reason is kept for the attempt that asked: it reads it right after fetch fails. */
const REFUSAL_KEPT_MS = 30_000;
/** The most a CONNECT request's head may take: fetch sends a few hundred bytes. */
const MAX_HEAD_BYTES = 8 * 1024;
/** How long the proxy's check that it can reach itself may take at start. */
const SELF_CHECK_TIMEOUT_MS = 2_000;
/** How long a client may take to send its request. */
const HEAD_TIMEOUT_MS = 10_000;
/**
 * A backstop only: a connect ends when the attempt that asked for it does (its fetch leaves the tunnel). A host that
 * drops our packets thus ends as a timeout, as it did without the proxy, which keeps the destination's share (see
 * strainsDestination); a shorter limit here made it a refused connection, halving the share.
 */
const CONNECT_TIMEOUT_MS = 120_000;

/** Reads up to the blank line ending the request's head, within MAX_HEAD_BYTES and HEAD_TIMEOUT_MS; null otherwise. */
async function readHead(
  conn: Deno.Conn,
): Promise<{ text: string; headers: Headers; rest: Uint8Array } | null> {
  const buffer = new Uint8Array(MAX_HEAD_BYTES);
  let length = 0;
  const timer = setTimeout(() => closeQuietly(conn), HEAD_TIMEOUT_MS);
  try {
    while (length < buffer.length) {
      const n = await conn.read(buffer.subarray(length));
      if (n === null) return null;
      length += n;
      const end = indexOfBlankLine(buffer.subarray(0, length));
      if (end >= 0) {
        const text = new TextDecoder().decode(buffer.subarray(0, end));
        const headers = new Headers();
        for (const line of text.split("\r\n").slice(1)) {
          const colon = line.indexOf(":");
          if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
        }
        return { text, headers, rest: buffer.slice(end + 4, length) };
      }
    }
    return null;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

function indexOfBlankLine(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) return i;
  }
  return -1;
}

/** `CONNECT host:port HTTP/1.1`, the host a name or an address (IPv6 in brackets). */
export function parseConnect(head: string): { host: string; port: number } | null {
  const m = head.match(/^CONNECT (\[[0-9a-fA-F:.]+\]|[^\s:\[\]]+):(\d{1,5}) HTTP\/1\.[01]\r?(\n|$)/);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65_535) return null;
  return { host: m[1].replace(/^\[|\]$/g, "").toLowerCase(), port };
}

/**
 * Connects to the first of the addresses that answers, each within CONNECT_TIMEOUT_MS; null when none does or
 * `signal` fires. A connection given up on is closed at once, not left to the system's own time-out (minutes).
 */
async function connectFirst(addresses: string[], port: number, signal: AbortSignal): Promise<Deno.Conn | null> {
  for (const hostname of addresses) {
    if (signal.aborted) return null;
    const late = new AbortController();
    const timer = setTimeout(() => late.abort(), CONNECT_TIMEOUT_MS);
    try {
      return await Deno.connect({ hostname, port, signal: AbortSignal.any([signal, late.signal]) });
    } catch {
      // Refused, unreachable or too late: the next address.
    } finally {
      clearTimeout(timer);
    }
  }
  return null;
}

async function answer(conn: Deno.Conn, status: string, opts: { keepOpen?: boolean } = {}) {
  await writeAll(
    conn,
    new TextEncoder().encode(`HTTP/1.1 ${status}\r\n${opts.keepOpen ? "" : "Connection: close\r\n"}\r\n`),
  );
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array) {
  for (let written = 0; written < bytes.length;) written += await conn.write(bytes.subarray(written));
}

function closeQuietly(conn: Deno.Conn) {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

const proxies = new WeakMap<object, Promise<PinnedProxy | null>>();
const started = new WeakMap<object, PinnedProxy>();

/**
 * The pinned proxy's client for `owner`'s postbacks (one per app context), started on first use; null where
 * postbacks connect as fetch resolves (see PinnedProxy.start).
 */
export async function pinnedClient(
  owner: object,
  rules: ProxyRules,
  opts: { caCerts?: string[] } = {},
): Promise<Deno.HttpClient | null> {
  let proxy = proxies.get(owner);
  if (!proxy) {
    proxies.set(owner, proxy = PinnedProxy.start(rules, opts));
    proxy.then((p) => p && started.set(owner, p));
  }
  return (await proxy)?.client ?? null;
}

/** `owner`'s proxy, if it has started one. */
export function pinnedProxyOf(owner: object): PinnedProxy | null {
  return started.get(owner) ?? null;
}

/** Stops `owner`'s proxy, if it started one (the app's close). */
export async function closePinnedProxy(owner: object) {
  (await proxies.get(owner))?.close();
  proxies.delete(owner);
  started.delete(owner);
}

/** Compares without stopping at the first difference, so the time taken tells nothing of the password. */
function sameText(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < y.length; i++) diff |= (x[i] ?? 0) ^ y[i];
  return diff === 0;
}
