import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "./config.ts";

Deno.test("[config] zero-config defaults use the sandbox, the demo and local URLs", () => {
  const c = loadConfig({});
  assert.equal(c.port, 8000);
  assert.equal(c.publicBaseUrl, "http://localhost:8000");
  assert.equal(c.kvPath, "./data/kv.sqlite3");
  assert.equal(c.bansky, undefined);
  assert.equal(c.allowLocalUrls, true);
  assert.equal(c.demo, true);
  assert.equal(c.jobsQueue, true);
  assert.deepEqual(c.postbackScheduleMs, [0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
});

Deno.test("[config] configuring Bansky turns local URLs and the demo off unless asked", () => {
  const bansky = { BANSKY_API_URL: "https://api.bansky.example/", BANSKY_API_TOKEN: "t", BANSKY_WEBHOOK_SECRET: "s" };
  const c = loadConfig(bansky);
  assert.equal(c.bansky?.apiUrl, "https://api.bansky.example");
  assert.equal(c.allowLocalUrls, false);
  assert.equal(c.demo, false);
  assert.equal(loadConfig({ ...bansky, DEV_ALLOW_LOCAL_URLS: "1" }).allowLocalUrls, true);
  assert.equal(loadConfig({ DEV_ALLOW_LOCAL_URLS: "0" }).allowLocalUrls, false);
});

Deno.test("[config] one error names every bad variable and never echoes a secret", () => {
  assert.throws(
    () => loadConfig({ PORT: "eighty", JOBS_QUEUE: "maybe", POSTBACK_SCHEDULE: "0,x", BANSKY_API_URL: "ftp://x" }),
    (err) => {
      assert.ok(err instanceof ConfigError);
      for (const name of ["PORT", "JOBS_QUEUE", "POSTBACK_SCHEDULE", "BANSKY_API_URL"]) {
        assert.match(err.message, new RegExp(name));
      }
      return true;
    },
  );
  assert.throws(
    () => loadConfig({ BANSKY_API_URL: "https://b.example", BANSKY_API_TOKEN: "tok_super_secret" }),
    (err) =>
      err instanceof ConfigError && /must be set together/.test(err.message) &&
      !err.message.includes("tok_super_secret"),
  );
});
