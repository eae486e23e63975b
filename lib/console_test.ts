import assert from "node:assert/strict";
import { scopedFilter } from "./console.ts";

Deno.test("[console] one query, two scopes: a portal's filter is its own shop whatever the query says", () => {
  assert.equal(scopedFilter({ shopId: "shop_mine" }, { shopId: "shop_theirs", status: "failed" }).shopId, "shop_mine");
  assert.equal(scopedFilter({ shopId: "shop_mine" }, {}).shopId, "shop_mine");
  assert.equal(scopedFilter("operator", { shopId: "shop_theirs" }).shopId, "shop_theirs");
  assert.equal(scopedFilter("operator", {}).shopId, undefined, "operators see every shop");
});
