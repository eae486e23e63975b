import { base64url, randomBytes } from "../ids.ts";
import { constantTimeEqual } from "../crypto.ts";

/**
 * Password hashing with PBKDF2-SHA256 from WebCrypto (no native add-ons on
 * Deno Deploy). The iteration count is stored with each hash, so raising it
 * later only affects new passwords.
 */
const encoder = new TextEncoder();

async function derive(password: string, salt: Uint8Array<ArrayBuffer>, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256);
  return new Uint8Array(bits);
}

/** `pbkdf2-sha256$<iterations>$<salt>$<hash>` */
export async function hashPassword(password: string, iterations: number): Promise<string> {
  const salt = randomBytes(16);
  return `pbkdf2-sha256$${iterations}$${base64url(salt)}$${base64url(await derive(password, salt, iterations))}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, iter, salt, hash] = stored.split("$");
  if (scheme !== "pbkdf2-sha256" || !salt || !hash) return false;
  const actual = base64url(await derive(password, fromBase64url(salt), Number(iter)));
  return constantTimeEqual(actual, hash);
}

/** A random password for a new operator: 18 bytes, about 144 bits. */
export function newPassword(): string {
  return base64url(randomBytes(18));
}

function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}
