import { ulid } from "ulid";

/** base64url without padding, as used in our public ids and keys. */
export function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** An unguessable public id: prefix + 128 random bits. */
export function randomId(prefix: string): string {
  return `${prefix}_${base64url(randomBytes(16))}`;
}

/** A time-ordered id for listings (ULIDs sort by creation time). */
export function sortableId(): string {
  return ulid();
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
