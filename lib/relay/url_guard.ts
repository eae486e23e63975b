import { AppError } from "../errors.ts";
import { log } from "../log.ts";
import { withTimeout } from "../timeout.ts";

/**
 * Rules for URLs a shop gives us. Redirect URLs must be https (http and
 * loopback only in dev mode), carry no credentials and sit on the shop's
 * allowed hosts. Postback URLs additionally must not reach a private,
 * loopback, link-local, CGNAT, multicast or reserved address, checked when the
 * payment is created and again before every send (DNS can change in between).
 */
export const MAX_URL_LENGTH = 2048;

export interface UrlRules {
  allowLocal: boolean;
  /** Lower-case hostnames; "*.example.com" also matches subdomains. Empty = any host. */
  allowedHosts: readonly string[];
}

/** A shop's URL as we store and send it, or why we refuse it. */
export type NormalizedUrl = { url: string; problem: null } | { url: null; problem: string };

// C0 and C1 controls, DEL, and the Unicode line and paragraph separators: never part of a URL we send on.
// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/**
 * Checks a shop's URL and puts it in the form we keep: ASCII only, non-ASCII
 * percent-encoded and host names in punycode (the WHATWG serialisation), so
 * it can always go into a `Location` header. Control characters are refused
 * rather than encoded: in a URL they are an injection attempt or a bug.
 */
export function normalizeShopUrl(raw: string, rules: UrlRules): NormalizedUrl {
  const refuse = (problem: string): NormalizedUrl => ({ url: null, problem });
  if (raw.length > MAX_URL_LENGTH) return refuse(`must be at most ${MAX_URL_LENGTH} characters`);
  if (CONTROL_CHARS.test(raw)) return refuse("must not contain control characters or line breaks");
  // Require an explicit scheme so "//evil.example" or "/path" can never be read relative to us.
  if (!/^https?:\/\/[^/\\]/i.test(raw)) {
    // A development setup (local URLs allowed) takes http too, and says so.
    return refuse(rules.allowLocal ? "must be an absolute http or https URL" : "must be an absolute https URL");
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return refuse("is not a valid URL");
  }
  if (url.protocol !== "https:" && !(rules.allowLocal && url.protocol === "http:")) return refuse("must use https");
  if (url.username || url.password) return refuse("must not contain credentials");
  const host = url.hostname.toLowerCase();
  if (rules.allowedHosts.length > 0 && !rules.allowedHosts.some((h) => hostMatches(host, h))) {
    return refuse(`host ${host} is not in the shop's allowed hosts`);
  }
  const href = url.href;
  if (href.length > MAX_URL_LENGTH) return refuse(`must be at most ${MAX_URL_LENGTH} characters once encoded`);
  if (!isSendableUrl(href)) return refuse("is not a valid URL");
  return { url: href, problem: null };
}

/** Returns a reason the URL is unacceptable, or null when it is fine. */
export function checkShopUrl(raw: string, rules: UrlRules): string | null {
  return normalizeShopUrl(raw, rules).problem;
}

/** True when the text can go into a `Location` header as it is: printable ASCII, no spaces. */
export function isSendableUrl(text: string): boolean {
  return /^[\x21-\x7e]+$/.test(text);
}

/**
 * The full check of a postback URL, the same for a payment's own URL and a
 * shop's default: the URL rules, then where its host resolves to.
 */
export async function normalizePostbackUrl(
  raw: string,
  opts: UrlRules & { resolve: Resolver },
): Promise<NormalizedUrl> {
  const normalized = normalizeShopUrl(raw, opts);
  if (normalized.url === null) return normalized;
  const problem = await checkPostbackDestination(new URL(normalized.url), opts);
  return problem ? { url: null, problem } : normalized;
}

function hostMatches(host: string, pattern: string): boolean {
  if (pattern.startsWith("*.")) return host.endsWith(pattern.slice(1)) || host === pattern.slice(2);
  return host === pattern;
}

/** Looks up a host's addresses; `signal` (a postback attempt's deadline) abandons the lookup when it fires. */
export type Resolver = (hostname: string, signal?: AbortSignal) => Promise<string[]>;

/**
 * How long a host name's lookup may take. Lookups run while a shop waits (init-payment, settings) and in front of
 * every postback attempt; a resolver that never answers must not hold either past this.
 */
export const DNS_TIMEOUT_MS = 5_000;
/** How much longer the second address family (A or AAAA) may take once the first has answered. */
export const DNS_SECOND_FAMILY_GRACE_MS = 500;

/**
 * A lookup that got no answer within its time. Passing (the name's servers, or ours), so an API call that needed it
 * answers 503 with Retry-After rather than calling the URL wrong; a postback attempt is retried on its schedule.
 */
export class DnsTimeoutError extends AppError {
  /** What it means for the URL, in the words of the guard's other refusals. */
  readonly problem: string;

  constructor(readonly hostname: string, readonly ms: number) {
    super(503, "dns_timeout", `The lookup of ${hostname} got no answer in time; try again shortly.`, undefined, {
      "retry-after": "5",
    });
    this.problem = `host ${hostname} got no DNS answer within ${ms / 1000} s`;
  }
}

/**
 * A resolver of A and AAAA records with Deno's resolver, bounded in time: past `timeoutMs` both lookups are
 * abandoned and it throws DnsTimeoutError; when the caller's signal fires first, it throws the signal's reason.
 * Once one family has answered with addresses, the other gets `graceMs` more: name servers that drop AAAA queries
 * are common, and each lookup would otherwise wait the whole `timeoutMs` for nothing. `nameServer` is for tests; by
 * default the system's is used.
 */
export function dnsResolver(
  opts: { timeoutMs?: number; graceMs?: number; nameServer?: { ipAddr: string; port?: number } } = {},
): Resolver {
  const timeoutMs = opts.timeoutMs ?? DNS_TIMEOUT_MS;
  const graceMs = opts.graceMs ?? DNS_SECOND_FAMILY_GRACE_MS;
  return (hostname, callerSignal) =>
    withTimeout(timeoutMs, async (own) => {
      const grace = new AbortController();
      const signal = AbortSignal.any([own, grace.signal, ...(callerSignal ? [callerSignal] : [])]);
      const options = { signal, nameServer: opts.nameServer };
      let graceTimer: ReturnType<typeof setTimeout> | undefined;
      const startGrace = (found: string[]) => {
        if (found.length) graceTimer ??= setTimeout(() => grace.abort(), graceMs);
        return found;
      };
      const [v4, v6] = await Promise.allSettled([
        Deno.resolveDns(hostname, "A", options).then(startGrace),
        Deno.resolveDns(hostname, "AAAA", options).then(startGrace),
      ]).finally(() => clearTimeout(graceTimer));
      const addresses = [
        ...(v4.status === "fulfilled" ? v4.value : []),
        ...(v6.status === "fulfilled" ? v6.value : []),
      ];
      // Addresses of one family are enough (the other failed, or was too late); none at all by the deadline is a
      // timeout.
      if (addresses.length === 0 && callerSignal?.aborted) throw callerSignal.reason;
      if (addresses.length === 0 && own.aborted) {
        // Ours or the name's servers: many of these at once point at our own resolver.
        log.warn("host name lookup timed out", { hostname, timeoutMs });
        throw new DnsTimeoutError(hostname, timeoutMs);
      }
      return addresses;
    });
}

/** The app's resolver: the system's, each lookup bounded by DNS_TIMEOUT_MS. */
export const resolveWithDns: Resolver = dnsResolver();

/**
 * Returns a reason the postback destination is unsafe to call, or null.
 * In dev mode loopback is allowed (the demo shop and tests live there), but
 * other private ranges never are. Throws DnsTimeoutError when the host's
 * lookup got no answer in time: nothing is known of it yet.
 */
export async function checkPostbackDestination(
  url: URL,
  opts: { allowLocal: boolean; resolve: Resolver; signal?: AbortSignal },
): Promise<string | null> {
  const checked = await destinationAddresses(url.hostname, opts);
  return "problem" in checked ? checked.problem : null;
}

/**
 * The addresses a postback to `host` may connect to (every one it resolves to passes the rules), or why none may:
 * the check above, and the pinned proxy's before it connects (pinned_proxy.ts). Throws DnsTimeoutError as above.
 */
export async function destinationAddresses(
  hostname: string,
  opts: { allowLocal: boolean; resolve: Resolver; signal?: AbortSignal },
): Promise<{ addresses: string[] } | { problem: string }> {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  let addresses: string[];
  if (isIpLiteral(host)) {
    addresses = [host];
  } else if (host === "localhost" || host.endsWith(".localhost")) {
    addresses = ["127.0.0.1"];
  } else {
    addresses = await opts.resolve(host, opts.signal);
    if (addresses.length === 0) return { problem: `host ${host} does not resolve` };
  }
  for (const address of addresses) {
    const kind = classifyAddress(address);
    if (kind === "public" || (kind === "loopback" && opts.allowLocal)) continue;
    return { problem: `host ${host} resolves to a ${kind} address` };
  }
  return { addresses };
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

export type AddressKind = "public" | "loopback" | "private" | "link-local" | "multicast" | "reserved" | "invalid";

/** Classifies an IPv4 or IPv6 address (IPv4-mapped and NAT64/6to4 forms judged by the IPv4 inside). */
export function classifyAddress(address: string): AddressKind {
  if (address.includes(":")) return classifyIpv6(address);
  const parts = address.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return "invalid";
  return classifyIpv4(parts);
}

function classifyIpv4([a, b, c]: number[]): AddressKind {
  if (a === 127) return "loopback";
  if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)) return "private";
  if (a === 100 && b >= 64 && b <= 127) return "private"; // CGNAT, RFC 6598
  if (a === 169 && b === 254) return "link-local";
  if (a >= 224 && a <= 239) return "multicast";
  if (
    a === 0 || a >= 240 || // "this network", reserved and broadcast
    (a === 192 && b === 0 && (c === 0 || c === 2)) || // IETF protocol assignments, TEST-NET-1
    (a === 192 && b === 88 && c === 99) || // 6to4 relay anycast
    (a === 198 && (b === 18 || b === 19)) || // benchmarking
    (a === 198 && b === 51 && c === 100) || (a === 203 && b === 0 && c === 113) // TEST-NET-2/3
  ) return "reserved";
  return "public";
}

function classifyIpv6(address: string): AddressKind {
  const groups = parseIpv6(address);
  if (!groups) return "invalid";
  const embeddedV4 = (i: number) => [groups[i] >> 8, groups[i] & 255, groups[i + 1] >> 8, groups[i + 1] & 255];
  const zeros = (n: number) => groups.slice(0, n).every((g) => g === 0);
  if (zeros(8)) return "reserved"; // ::
  if (zeros(7) && groups[7] === 1) return "loopback"; // ::1
  if (zeros(5) && groups[5] === 0xffff) return classifyIpv4(embeddedV4(6)); // ::ffff:a.b.c.d
  if (zeros(6)) return "reserved"; // deprecated IPv4-compatible ::a.b.c.d
  if (groups[0] === 0x64 && groups[1] === 0xff9b) return classifyIpv4(embeddedV4(6)); // NAT64
  if (groups[0] === 0x2002) return classifyIpv4(embeddedV4(1)); // 6to4
  const first = groups[0];
  if ((first & 0xfe00) === 0xfc00) return "private"; // fc00::/7 unique local
  if ((first & 0xffc0) === 0xfe80 || (first & 0xffc0) === 0xfec0) return "link-local";
  if ((first & 0xff00) === 0xff00) return "multicast";
  if (first === 0x2001 && (groups[1] < 0x200 || groups[1] === 0xdb8)) return "reserved"; // 2001::/23, docs
  if ((first & 0xe000) !== 0x2000) return "reserved"; // only 2000::/3 is global unicast
  return "public";
}

/** An IPv6 address's eight 16-bit groups (a dotted IPv4 tail and a zone allowed), or null when it is not one. */
export function parseIpv6(address: string): number[] | null {
  let text = address.toLowerCase().split("%")[0];
  const v4 = text.match(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number);
    if ([a, b, c, d].some((n) => n > 255)) return null;
    text = text.slice(0, v4.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parse = (
    s: string,
  ) => (s === "" ? [] : s.split(":").map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16) : NaN)));
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill(0), ...tail];
  return groups.some((g) => Number.isNaN(g)) ? null : groups;
}
