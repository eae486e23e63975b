import assert from "node:assert/strict";
import { isRefusalStatus } from "./errors.ts";

Deno.test("[errors] a provider's 400, 402, 404 and 422 refuse the request itself; a 409, a 429 or a 5xx do not (a conflict may be another request for the same thing still under way)", () => {
  for (const status of [400, 402, 404, 422]) assert.ok(isRefusalStatus(status), String(status));
  for (const status of [409, 429, 500, 502, 503, 504]) assert.ok(!isRefusalStatus(status), String(status));
});
