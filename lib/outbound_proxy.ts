/** The variables through which an operator sends this process's outbound traffic via a proxy, as fetch reads them. */
const PROXY_VARIABLES = {
  "https:": ["HTTPS_PROXY", "https_proxy"],
  "http:": ["HTTP_PROXY", "http_proxy"],
} as const;

/**
 * The first variable that sends requests to URLs of these schemes through an operator's proxy (fetch honours it),
 * or null. ALL_PROXY covers every scheme. Code that makes its own connections checks this first and leaves such
 * traffic to fetch: a connection of its own would bypass the proxy.
 */
export function outboundProxySetting(
  env: (name: string) => string | undefined,
  schemes: readonly (keyof typeof PROXY_VARIABLES)[] = ["https:"],
): string | null {
  return [...schemes.flatMap((s) => PROXY_VARIABLES[s]), "ALL_PROXY", "all_proxy"].find((name) => env(name)) ?? null;
}
