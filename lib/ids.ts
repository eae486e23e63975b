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

/** The 64 characters of base64url in ASCII order: strings of them sort as the numbers they encode. */
const ORDERED_64 = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
const ORDERED_TIME_CHARS = 8;
const ORDERED_RANDOM_CHARS = 14;
const FIRST_TIME_DIGIT = ORDERED_64.indexOf("A");

/**
 * An unguessable public id whose KV keys land next to each other: prefix +
 * 22 characters of the same shape as randomId's, the first 8 the millisecond
 * (48 bits), the other 14 random (84 bits). For records whose key is the id:
 * a random key puts every new record on its own page of the store, which
 * cost the commits more than the rest of their keys together, while ids made
 * in time order are written to the same few pages.
 */
export function sequentialId(prefix: string, now = Date.now()): string {
  let time = "";
  let ms = now;
  for (let i = 1; i < ORDERED_TIME_CHARS; i++, ms = Math.floor(ms / 64)) time = ORDERED_64[ms % 64] + time;
  // The top digit is 0 until the year 2109: shifted to a letter, ids do not start with "-" (a double-click selects
  // the whole id) and still sort in time order, until the year 9270 (the digit stops growing there).
  time = ORDERED_64[Math.min(ms + FIRST_TIME_DIGIT, ORDERED_64.length - 1)] + time;
  let rest = "";
  for (const b of randomBytes(ORDERED_RANDOM_CHARS)) rest += ORDERED_64[b & 63];
  return `${prefix}_${time}${rest}`;
}

// Crockford's base32, the ULID alphabet: ids sort as strings in time order.
const BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TIME_CHARS = 10;
/**
 * ULIDs of one source of times: within one millisecond the random part counts up, so ids made in sequence also
 * sort in sequence. Ids for the clock and ids for times a caller passes (a record's own time, often earlier) keep
 * apart sequences: one call for an earlier time must not restart the clock's count within its millisecond.
 */
class UlidSequence {
  #random = new Uint8Array(10);
  #lastMs = -1;

  next(ms: number): string {
    if (ms === this.#lastMs && incrementBytes(this.#random)) {
      // Same millisecond: the next value after the last id.
    } else {
      crypto.getRandomValues(this.#random);
      this.#lastMs = ms;
    }
    return encodeTime(ms) + encodeBase32(this.#random);
  }
}

const clockIds = new UlidSequence();
const givenTimeIds = new UlidSequence();

/**
 * A time-ordered id for listings and logs: a ULID (48-bit millisecond time,
 * 80 random bits), for now or for the time given. Ids made in sequence in one
 * isolate sort in sequence (see UlidSequence). Written here because the
 * `ulid` package draws one random byte per character, which cost more than
 * the rest of an id on the request path.
 */
export function sortableId(at?: number): string {
  return at === undefined ? clockIds.next(Date.now()) : givenTimeIds.next(at);
}

/** The time part of a ULID for `ms`: the smallest id of that millisecond, for range bounds. */
export function encodeTime(ms: number): string {
  let out = "";
  for (let i = 0; i < TIME_CHARS; i++) {
    out = BASE32[ms % 32] + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

/** The millisecond a ULID (or a time part made by encodeTime) was made for. */
export function decodeTime(ulid: string): number {
  let ms = 0;
  for (const ch of ulid.slice(0, TIME_CHARS)) ms = ms * 32 + BASE32.indexOf(ch);
  return ms;
}

/** Adds one to a big-endian byte string; false when it wraps around. */
function incrementBytes(bytes: Uint8Array): boolean {
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 255) {
      bytes[i]++;
      return true;
    }
    bytes[i] = 0;
  }
  return false;
}

/** Base32 of a byte string whose bit length is a multiple of 40 (5 bytes → 8 characters). */
function encodeBase32(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 5) {
    const [b0, b1, b2, b3, b4] = [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3], bytes[i + 4]];
    out += BASE32[b0 >> 3] + BASE32[((b0 & 7) << 2) | (b1 >> 6)] + BASE32[(b1 >> 1) & 31] +
      BASE32[((b1 & 1) << 4) | (b2 >> 4)] + BASE32[((b2 & 15) << 1) | (b3 >> 7)] + BASE32[(b3 >> 2) & 31] +
      BASE32[((b3 & 3) << 3) | (b4 >> 5)] + BASE32[b4 & 31];
  }
  return out;
}

/**
 * The shapes of the ids we hand out, checked before an id from a request is
 * put into a KV key: KV refuses keys over 2 KiB with an error, and an id of
 * the wrong shape names nothing anyway.
 */
export const ID_PATTERNS = {
  payment: "pay_[A-Za-z0-9_-]{22}",
  shop: "shop_[0-9a-z]{26}",
  key: "key_[A-Za-z0-9_-]{22}",
  refund: "re_[A-Za-z0-9_-]{22}",
  account: "pa_[A-Za-z0-9_-]{22}",
  form: "form_[A-Za-z0-9_-]{22}",
  invoice: "inv_[A-Za-z0-9_-]{22}",
  postback: "msg_[A-Za-z0-9_-]{22}",
  operator: "op_[A-Za-z0-9_-]{22}",
} as const;

const ID_REGEXPS = Object.fromEntries(
  Object.entries(ID_PATTERNS).map(([kind, pattern]) => [kind, new RegExp(`^${pattern}$`)]),
) as Record<keyof typeof ID_PATTERNS, RegExp>;

/** True when `id` has the shape of one of our ids of this kind. */
export function hasIdShape(kind: keyof typeof ID_PATTERNS, id: string): boolean {
  return ID_REGEXPS[kind].test(id);
}
