import assert from "node:assert/strict";
import { TABLES, VIEWS } from "./schema.ts";
import { isPaid, PAYMENT_STATUSES } from "../payments/status.ts";

const METABASE = new URL("../../docs/metabase/", import.meta.url);

/** The Metabase questions operators paste from docs/metabase/, by file name. */
async function questions(): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for await (const f of Deno.readDir(METABASE)) {
    if (f.name.endsWith(".sql")) found.set(f.name, await Deno.readTextFile(new URL(f.name, METABASE)));
  }
  return found;
}

/** The table a view reads (payments_latest -> payments). */
const tableOf = (view: string) => TABLES.find((t) => view === t.id || view.startsWith(`${t.id}_`))!;

Deno.test("[analytics] the Metabase questions read only views setup creates, and only their tables' columns", async () => {
  const all = await questions();
  assert.ok(all.size >= 5);
  for (const [name, sql] of all) {
    const views = [...sql.matchAll(/`project\.dataset\.(\w+)`/g)].map((m) => m[1]);
    assert.equal(views.length, 1, name);
    assert.ok(VIEWS.some((v) => v.id === views[0]), `${name}: ${views[0]} is no view setup creates`);
    const columns = new Set(tableOf(views[0]).fields.map((f) => f.name));
    // Keywords and functions are upper case in these files; what is left in lower case is a column or an alias.
    const body = sql.replace(/--.*$/gm, "").replace(/'[^']*'/g, "").replace(/`[^`]*`/g, "").replace(/{{\w+}}/g, "");
    const aliases = new Set([...body.matchAll(/\bAS (\w+)/g)].map((m) => m[1]));
    for (const [word] of body.matchAll(/\b[a-z_][a-z0-9_]*\b/g)) {
      assert.ok(columns.has(word) || aliases.has(word), `${name}: ${word} is not a column of ${views[0]}`);
    }
  }
});

Deno.test("[analytics] the questions of paid money date it by when it came (settled_at), not by a late payment's expiry", async () => {
  const all = await questions();
  for (const name of ["time_to_pay.sql", "volume_by_day.sql"]) {
    const sql = all.get(name)!.replace(/--.*$/gm, "");
    assert.match(sql, /COALESCE\(settled_at, finalized_at\) AS paid_at/, name);
    assert.match(sql, /DATE\(paid_at\) AS day/, name);
    assert.doesNotMatch(sql, /DATE\(finalized_at\)/, name);
  }
});

Deno.test("[analytics] the questions of paid money count refunded payments as paid, with the statuses the app calls paid", async () => {
  const all = await questions();
  const paid = `status IN (${PAYMENT_STATUSES.filter(isPaid).map((s) => `'${s}'`).join(", ")}`;
  for (const name of ["conversion.sql", "success_rate_by_shop.sql", "time_to_pay.sql", "volume_by_day.sql"]) {
    const sql = all.get(name)!.replace(/--.*$/gm, "");
    assert.ok(sql.includes(paid), `${name} names the paid statuses (${paid}))`);
    // A refunded payment was paid: 'succeeded' alone leaves its money out.
    assert.doesNotMatch(sql, /status\s*=\s*'succeeded'/, name);
  }
  // A late payment is decided when its money came, not at its expiry.
  assert.doesNotMatch(all.get("success_rate_by_shop.sql")!.replace(/--.*$/gm, ""), /DATE\(finalized_at\)/);
});
