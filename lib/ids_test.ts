import assert from "node:assert/strict";
import { encodeTime, hasIdShape, randomId, sequentialId, sortableId } from "./ids.ts";

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

Deno.test("[ids] sortableId: an id for an earlier time between two for now keeps the clock's ids in sequence", () => {
  // Within one millisecond, almost every pair came out in random order when the earlier time reset the count.
  for (let i = 0; i < 200; i++) {
    const first = sortableId();
    sortableId(Date.now() - 60_000);
    const second = sortableId();
    assert.ok(first < second, `${first} then ${second}`);
  }
});

Deno.test("[ids] sortableId: later milliseconds sort after earlier ones", () => {
  const early = sortableId(1_700_000_000_000);
  const late = sortableId(1_700_000_000_001);
  assert.ok(early < late);
});

Deno.test("[ids] id shapes accept our ids and nothing longer, shorter or foreign", () => {
  assert.ok(hasIdShape("payment", "pay_" + "A".repeat(22)));
  assert.ok(!hasIdShape("payment", "pay_" + "A".repeat(23)));
  assert.ok(!hasIdShape("payment", "pay_" + "A".repeat(3000)));
  assert.ok(!hasIdShape("payment", "pay_" + "A".repeat(21) + "/"));
  assert.ok(hasIdShape("shop", "shop_" + sortableId().toLowerCase()));
  assert.ok(!hasIdShape("shop", "pay_" + "A".repeat(22)));
});

Deno.test("[ids] sequentialId has randomId's shape, sorts by its millisecond, and differs within one", () => {
  const ids = [1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_063, 1_700_000_000_064, 1_800_000_000_000]
    .map((ms) => sequentialId("re", ms));
  for (const id of ids) assert.ok(hasIdShape("refund", id), id);
  for (const id of ids) assert.match(id, /^re_[A-Za-z]/, "starts with a letter");
  assert.ok(hasIdShape("refund", randomId("re")));
  assert.deepEqual([...ids].sort(), ids);
  const same = Array.from({ length: 100 }, () => sequentialId("pay", 1_700_000_000_000));
  assert.equal(new Set(same).size, 100);
  assert.equal(new Set(same.map((id) => id.slice(0, 12))).size, 1, "one millisecond, one time part");
});
