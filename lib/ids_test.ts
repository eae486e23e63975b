import assert from "node:assert/strict";
import { encodeTime, hmacSha256, sha256Hex, sortableId } from "./ids.ts";

Deno.test("[ids] sortableId is a ULID: the spec's time encoding, Crockford base32, 26 characters", () => {
  // The ULID specification's example time.
  assert.equal(encodeTime(1469918176385), "01ARYZ6S41");
  const id = sortableId(1469918176385);
  assert.match(id, /^01ARYZ6S41[0-9A-HJKMNP-TV-Z]{16}$/);
});

Deno.test("[ids] sortableId: ids made in sequence sort in sequence, within one millisecond too", () => {
  const now = Date.now();
  const ids = [sortableId(now), sortableId(now), sortableId(now), sortableId(now + 1), sortableId(now + 1)];
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, ids.length);
  // A new millisecond draws fresh random bits instead of counting on.
  assert.notEqual(ids[3].slice(10), ids[2].slice(10));
});

Deno.test("[ids] sortableId: later milliseconds sort after earlier ones", () => {
  const early = sortableId(1_700_000_000_000);
  const late = sortableId(1_700_000_000_001);
  assert.ok(early < late);
});

Deno.test("[ids] sha256Hex and hmacSha256 match the known-answer vectors (FIPS 180-2, RFC 4231 case 2)", () => {
  assert.equal(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const mac = hmacSha256(new TextEncoder().encode("Jefe"), "what do ya want for nothing?");
  assert.equal(
    Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(""),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
});
