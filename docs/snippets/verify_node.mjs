// Node.js, no dependencies.
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";

const TOLERANCE_SECONDS = 5 * 60;

/**
 * Returns the parsed postback, or throws when the signature or timestamp is wrong.
 * `headers` as Node gives them (lower-case names); `rawBody` the exact body text.
 */
export function verifyPostback(secret, headers, rawBody, nowSeconds = Math.floor(Date.now() / 1000)) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) throw new Error("missing webhook headers");
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) {
    throw new Error("webhook-timestamp too old or too new");
  }
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${rawBody}`).digest();
  // Several entries during a secret rotation: any one may match.
  for (const entry of signatures.split(" ")) {
    const [version, signature] = entry.split(",", 2);
    if (version !== "v1" || !signature) continue;
    const given = Buffer.from(signature, "base64");
    if (given.length === expected.length && timingSafeEqual(given, expected)) return JSON.parse(rawBody);
  }
  throw new Error("no valid signature");
}

// With Express: app.post("/postbacks", express.raw({ type: "application/json" }), (req, res) => {
//   const postback = verifyPostback(process.env.APAY_WEBHOOK_SECRET, req.headers, req.body.toString("utf8"));
//   ... deduplicate on req.headers["webhook-id"], then res.sendStatus(204);
// });
