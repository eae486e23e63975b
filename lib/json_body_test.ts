import assert from "node:assert/strict";
import { ValidationError } from "./errors.ts";
import { parseStrictJson } from "./json_body.ts";

Deno.test("[json] parses ordinary JSON, escapes included", () => {
  assert.deepEqual(parseStrictJson('{"a":"x\\"y","b":[1,{"c":"}"}]}'), { a: 'x"y', b: [1, { c: "}" }] });
});

Deno.test("[json] rejects malformed, truncated and duplicated-key bodies", () => {
  for (const bad of ["", "{", '{"a":1', "{'a':1}", "nul", '{"a":1,}']) {
    assert.throws(() => parseStrictJson(bad), (e) => e instanceof ValidationError && /not valid JSON/.test(e.message));
  }
  assert.throws(
    () => parseStrictJson('{"amount":1,"amount":100000}'),
    (e) => e instanceof ValidationError && e.fields?.amount === "duplicated",
  );
  // The same key spelled with an escape is still the same key.
  assert.throws(() => parseStrictJson('{"id":"a","\\u0069d":"b"}'), ValidationError);
  // A long duplicated name is echoed cut, as an unknown one is, not whole (twice).
  const long = "k".repeat(5000);
  assert.throws(() => parseStrictJson(`{"${long}":1,"${long}":2}`), (e) => {
    assert.ok(e instanceof ValidationError);
    assert.deepEqual(Object.keys(e.fields!), [`${"k".repeat(63)}…`]);
    assert.ok(e.message.length < 100, e.message);
    return true;
  });
  // Same key in different objects is fine.
  assert.deepEqual(parseStrictJson('{"a":{"x":1},"b":{"x":2}}'), { a: { x: 1 }, b: { x: 2 } });
});

Deno.test("[json] rejects deep nesting", () => {
  assert.throws(() => parseStrictJson("[".repeat(100) + "]".repeat(100)), /nested too deeply/);
  assert.throws(() => parseStrictJson('{"a":'.repeat(20) + "1" + "}".repeat(20)), /nested too deeply/);
});
