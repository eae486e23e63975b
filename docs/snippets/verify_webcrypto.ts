// Deno Deploy, Cloudflare Workers, Vercel Edge, Bun, Node 20+: WebCrypto only, no dependencies.
const TOLERANCE_SECONDS = 5 * 60;

const bytes = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));

/**
 * Whether one of the space-separated entries in `signatures` signs `content` with `key`:
 * a `whsec_...` secret checks the `v1,` entries (HMAC-SHA256), a `whpk_...` public key
 * the `v1a,` entries (Ed25519). crypto.subtle.verify compares in constant time.
 */
export async function verifySignature(key: string, signatures: string, content: string): Promise<boolean> {
  const data = new TextEncoder().encode(content);
  const keyPair = key.startsWith("whpk_");
  const cryptoKey = keyPair
    ? await crypto.subtle.importKey("raw", bytes(key.slice(5)), "Ed25519", false, ["verify"])
    : await crypto.subtle.importKey(
      "raw",
      bytes(key.replace(/^whsec_/, "")),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["verify"],
    );
  for (const entry of signatures.split(" ")) {
    const [version, signature] = entry.split(",", 2);
    if (!signature || version !== (keyPair ? "v1a" : "v1")) continue;
    try {
      if (await crypto.subtle.verify(keyPair ? "Ed25519" : "HMAC", cryptoKey, bytes(signature), data)) return true;
    } catch {
      // not base64: not a match
    }
  }
  return false;
}

/**
 * Returns the parsed postback, or throws when the signature or timestamp is wrong.
 * `keys`: your `whsec_...` secret or `whpk_...` public key; during a rotation or a
 * switch, both the old and the new one. `rawBody`: the exact body text, before any JSON parsing.
 */
export async function verifyPostback(
  keys: string | string[],
  headers: Headers,
  rawBody: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): Promise<unknown> {
  const id = headers.get("webhook-id");
  const timestamp = headers.get("webhook-timestamp");
  const signatures = headers.get("webhook-signature");
  if (!id || !timestamp || !signatures) throw new Error("missing webhook headers");
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) {
    throw new Error("webhook-timestamp too old or too new");
  }
  for (const key of typeof keys === "string" ? [keys] : keys) {
    if (await verifySignature(key, signatures, `${id}.${timestamp}.${rawBody}`)) return JSON.parse(rawBody);
  }
  throw new Error("no valid signature");
}

// A fetch-style handler (Deno.serve, a Cloudflare Worker's fetch, a Vercel Edge function):
// export default {
//   async fetch(req: Request, env: { APAY_WEBHOOK_SECRET: string }) {
//     const rawBody = await req.text();
//     let postback;
//     try {
//       postback = await verifyPostback(env.APAY_WEBHOOK_SECRET, req.headers, rawBody);
//     } catch {
//       return new Response("bad signature", { status: 400 });
//     }
//     // ... deduplicate on req.headers.get("webhook-id"), then fulfil the order.
//     return new Response(null, { status: 204 });
//   },
// };
