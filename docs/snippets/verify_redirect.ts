// The page behind your successUrl and errorUrl. WebCrypto only: Deno Deploy, Cloudflare Workers,
// Vercel Edge, Bun, Node 20+, and browsers.
const TOLERANCE_SECONDS = 5 * 60;

const bytes = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));

/**
 * The payment and its status from the `apay_` parameters of the address the buyer came back to,
 * or null when they are missing, too old or not signed by us. `keys`: your `whsec_...` secret
 * or `whpk_...` public key (both the old and the new one during a rotation or a switch).
 * Show the outcome with it; fulfil the order only on the postback or the status API.
 */
export async function verifyRedirect(
  keys: string | string[],
  url: string | URL,
  nowSeconds = Math.floor(Date.now() / 1000),
): Promise<{ paymentId: string; status: string } | null> {
  const query = new URL(url).searchParams;
  const paymentId = query.get("apay_payment");
  const status = query.get("apay_status");
  const timestamp = query.get("apay_ts");
  const signatures = query.get("apay_sig");
  if (!paymentId || !status || !timestamp || !signatures || !/^\d+$/.test(timestamp)) return null;
  if (Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) return null;
  const data = new TextEncoder().encode(`${paymentId}.${timestamp}.${status}`);
  for (const key of typeof keys === "string" ? [keys] : keys) {
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
        if (await crypto.subtle.verify(keyPair ? "Ed25519" : "HMAC", cryptoKey, bytes(signature), data)) {
          return { paymentId, status };
        }
      } catch {
        // not base64: not a match
      }
    }
  }
  return null;
}

// On the success page: check that apay_payment is the payment of the order in your own URL, then
//   const result = await verifyRedirect(env.APAY_WEBHOOK_SECRET, req.url);
//   result?.status === "succeeded" ? "Thank you, your payment went through." : "We are confirming your payment…";
