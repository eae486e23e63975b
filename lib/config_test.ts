import assert from "node:assert/strict";
import { ConfigError, type Env, loadConfig, startupWarnings } from "./config.ts";
import { normalizeShopUrl } from "./relay/url_guard.ts";

Deno.test("[config] zero-config defaults use the sandbox, the demo and local URLs", () => {
  const c = loadConfig({});
  assert.equal(c.port, 8000);
  assert.equal(c.publicBaseUrl, "http://localhost:8000");
  assert.equal(c.kvPath, "./data/kv.sqlite3");
  assert.equal(c.bansky, undefined);
  assert.equal(c.allowLocalUrls, true);
  assert.equal(c.demo, true);
  assert.equal(c.jobsQueue, true);
  assert.equal(c.hostname, "127.0.0.1", "its sandbox marks payments paid for whoever asks: this machine only");
  assert.equal(loadConfig({ HOSTNAME: "0.0.0.0" }).hostname, "0.0.0.0");
  assert.equal(loadConfig({ BIND_ADDRESS: "0.0.0.0" }).hostname, "0.0.0.0");
  assert.deepEqual(c.postbackScheduleMs, [0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
});

Deno.test("[config] HOSTNAME is listened on only when it is an address: containers set it to their own name", () => {
  const bansky = { BANSKY_API_URL: "https://api.bansky.example/", BANSKY_API_TOKEN: "t", BANSKY_WEBHOOK_SECRET: "s" };
  for (const name of ["3f4e5a6b7c8d", "payments-7d9f8-abcde", "shop.internal"]) {
    const zeroConfig = loadConfig({ HOSTNAME: name });
    assert.equal(zeroConfig.hostname, "127.0.0.1", name);
    assert.equal(zeroConfig.ignoredHostname, name);
    assert.equal(loadConfig({ ...bansky, HOSTNAME: name }).hostname, "0.0.0.0", name);
    assert.equal(loadConfig({ HOSTNAME: name, BIND_ADDRESS: "0.0.0.0" }).hostname, "0.0.0.0", name);
  }
  for (const address of ["0.0.0.0", "127.0.0.1", "10.1.2.3", "::", "::1", "localhost"]) {
    const c = loadConfig({ HOSTNAME: address });
    assert.equal(c.hostname, address);
    assert.equal(c.ignoredHostname, null);
  }
  assert.equal(loadConfig({ BIND_ADDRESS: "::1", HOSTNAME: "0.0.0.0" }).hostname, "::1", "BIND_ADDRESS comes first");
});

Deno.test("[config] PROVIDER_TIMEOUT_MS stays within a refund job's hold on its refund (30 s at most)", () => {
  assert.equal(loadConfig({ PROVIDER_TIMEOUT_MS: "30000" }).providerTimeoutMs, 30_000);
  assert.throws(() => loadConfig({ PROVIDER_TIMEOUT_MS: "60000" }), /PROVIDER_TIMEOUT_MS/);
});

/** What start-up tells the operator under `env`, one message a warning. */
const warningsFor = (env: Env) => startupWarnings(loadConfig(env)).map((w) => w.msg);

Deno.test("[config] a zero-config server reachable from other machines is told so at start, its sandbox being open to them", () => {
  const bansky = { BANSKY_API_URL: "https://api.bansky.example/", BANSKY_API_TOKEN: "t", BANSKY_WEBHOOK_SECRET: "s" };
  for (const open of [{ BIND_ADDRESS: "0.0.0.0" }, { HOSTNAME: "0.0.0.0" }, { BIND_ADDRESS: "10.1.2.3" }]) {
    const [warning, ...more] = warningsFor(open);
    assert.match(warning ?? "", /sandbox is reachable from other machines/);
    assert.deepEqual(more, []);
    assert.deepEqual(warningsFor({ ...bansky, ...open }), [], "a real provider's server is meant to be");
  }
  const loopback = ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "0:0:0:0:0:0:0:1", "localhost"];
  for (const here of [{}, ...loopback.map((a) => ({ BIND_ADDRESS: a })), { HOSTNAME: "::1" }]) {
    assert.deepEqual(warningsFor(here), []);
  }
  const [ignored, ...more] = warningsFor({ HOSTNAME: "3f4e5a6b7c8d" });
  assert.match(ignored ?? "", /HOSTNAME names a machine/);
  assert.deepEqual(more, []);
});

Deno.test("[config] with a KV Connect URL and no JOBS_SWEEP_INTERVAL_MS start-up warns that jobs wait for the minute's cron, suggesting 1000, beside any other warning", () => {
  for (const url of ["http://denokv.internal:4512", "https://api.deno.com/v2/databases/0e6a5b1c/connect"]) {
    const [warning, ...more] = startupWarnings(loadConfig({ DENO_KV_PATH: url }));
    assert.match(warning?.msg ?? "", /KV Connect has no queues and JOBS_SWEEP_INTERVAL_MS is unset/);
    assert.match(warning?.msg ?? "", /postback retries, postbacks a stopping process hands over, invoice reads/);
    assert.match(warning?.fields.toRunItSooner ?? "", /JOBS_SWEEP_INTERVAL_MS=1000/);
    assert.ok(!JSON.stringify(warning).includes(url), "the store's address is not logged");
    assert.deepEqual(more, []);
    assert.deepEqual(warningsFor({ DENO_KV_PATH: url, JOBS_SWEEP_INTERVAL_MS: "1000" }), []);
    assert.deepEqual(warningsFor({ DENO_KV_PATH: url, JOBS_QUEUE: "off", JOBS_SWEEP_INTERVAL_MS: "5000" }), []);
    // Both at once: each is said.
    const both = warningsFor({ DENO_KV_PATH: url, BIND_ADDRESS: "0.0.0.0" });
    assert.equal(both.length, 2, JSON.stringify(both));
    assert.match(both[0], /sandbox is reachable/);
    assert.match(both[1], /KV Connect has no queues/);
  }
  // A file has its queue: nothing waits for the cron.
  for (const path of ["./data/kv.sqlite3", ":memory:"]) assert.deepEqual(warningsFor({ DENO_KV_PATH: path }), []);
});

Deno.test("[config] configuring Bansky turns local URLs and the demo off unless asked", () => {
  const bansky = { BANSKY_API_URL: "https://api.bansky.example/", BANSKY_API_TOKEN: "t", BANSKY_WEBHOOK_SECRET: "s" };
  const c = loadConfig(bansky);
  assert.equal(c.bansky?.apiUrl, "https://api.bansky.example");
  assert.equal(c.allowLocalUrls, false);
  assert.equal(c.demo, false);
  assert.equal(c.hostname, "0.0.0.0");
  assert.equal(loadConfig({ ...bansky, DEV_ALLOW_LOCAL_URLS: "1" }).allowLocalUrls, true);
  assert.equal(loadConfig({ DEV_ALLOW_LOCAL_URLS: "0" }).allowLocalUrls, false);
});

Deno.test("[config] PAYMENT_CHECK_SCHEDULE: seconds after creation, positive and increasing", () => {
  assert.deepEqual(loadConfig({}).paymentCheckScheduleMs, [120_000, 600_000, 3_600_000, 21_600_000]);
  assert.deepEqual(loadConfig({ PAYMENT_CHECK_SCHEDULE: "3600,7200" }).paymentCheckScheduleMs, [3_600_000, 7_200_000]);
  for (const bad of ["600,120", "0,60", "1.5", "60,,120"]) {
    assert.throws(() => loadConfig({ PAYMENT_CHECK_SCHEDULE: bad }), ConfigError, bad);
  }
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

const BANSKY = { BANSKY_API_URL: "https://api.bansky.example", BANSKY_API_TOKEN: "t", BANSKY_WEBHOOK_SECRET: "s" };
const ON_DEPLOY = { DENO_DEPLOYMENT_ID: "abc123", PUBLIC_BASE_URL: "https://pay.example" };
const DEPLOY = { ...ON_DEPLOY, ...BANSKY };

Deno.test("[config] on Deno Deploy KV is the platform's database and queues are off", () => {
  const c = loadConfig(DEPLOY);
  assert.equal(c.kvPath, undefined);
  assert.equal(c.jobsQueue, false);
  assert.equal(c.allowLocalUrls, false);
  assert.equal(c.demo, false);
  assert.equal(loadConfig({ ...DEPLOY, JOBS_QUEUE: "off" }).jobsQueue, false);
  // A KV Connect URL is a database, not a file.
  const url = "https://api.deno.com/v2/databases/0e6a5b1c/connect";
  assert.equal(loadConfig({ ...DEPLOY, DENO_KV_PATH: url }).kvPath, url);
  // Elsewhere nothing changes: a file under ./data and the queue.
  assert.equal(loadConfig({}).kvPath, "./data/kv.sqlite3");
  assert.equal(loadConfig({}).jobsQueue, true);
});

Deno.test("[config] on Deno Deploy a KV file or KV queues are refused with a clear message", () => {
  for (const path of ["./data/kv.sqlite3", ":memory:", "/tmp/kv.sqlite3"]) {
    assert.throws(
      () => loadConfig({ ...DEPLOY, DENO_KV_PATH: path }),
      (err) => err instanceof ConfigError && /DENO_KV_PATH: must be unset on Deno Deploy/.test(err.message),
    );
  }
  assert.throws(
    () => loadConfig({ ...DEPLOY, JOBS_QUEUE: "on" }),
    (err) => err instanceof ConfigError && /JOBS_QUEUE: Deno Deploy has no KV queues/.test(err.message),
  );
});

Deno.test("[config] with a KV Connect URL (a denokv server) queues are off, and JOBS_QUEUE=on is refused in words right for a server and a CLI command alike: KV Connect has no queues", () => {
  for (const url of ["http://denokv.internal:4512", "https://api.deno.com/v2/databases/0e6a5b1c/connect"]) {
    const c = loadConfig({ DENO_KV_PATH: url });
    assert.equal(c.kvPath, url);
    assert.equal(c.jobsQueue, false, url);
    assert.equal(loadConfig({ DENO_KV_PATH: url, JOBS_QUEUE: "off" }).jobsQueue, false);
    assert.throws(
      () => loadConfig({ DENO_KV_PATH: url, JOBS_QUEUE: "on" }),
      (err) =>
        err instanceof ConfigError &&
        /JOBS_QUEUE: KV Connect \(DENO_KV_PATH is a URL\) has no KV queues/.test(err.message) &&
        // Said to the CLI's commands too (they read the same config), which run no sweeps: the advice names a server.
        /a server then runs its jobs by sweeps: give it JOBS_SWEEP_INTERVAL_MS=1000 too/.test(err.message),
    );
  }
  // A file keeps its queue.
  assert.equal(loadConfig({ DENO_KV_PATH: "./data/kv.sqlite3" }).jobsQueue, true);
});

Deno.test("[config] on Deno Deploy the public URL must be set, and https", () => {
  // However the scheme is written.
  assert.equal(loadConfig({ ...DEPLOY, PUBLIC_BASE_URL: "HTTPS://pay.example" }).publicBaseUrl, "https://pay.example");
  for (const url of [undefined, "http://pay.example"]) {
    const env: Record<string, string> = { ...DEPLOY };
    if (url) env.PUBLIC_BASE_URL = url;
    else delete env.PUBLIC_BASE_URL;
    assert.throws(
      () => loadConfig(env),
      (err) => err instanceof ConfigError && /PUBLIC_BASE_URL: required on Deno Deploy/.test(err.message),
    );
  }
});

Deno.test("[config] on Deno Deploy zero-config mode is refused unless DEMO=1 asks for it", () => {
  assert.throws(
    () => loadConfig(ON_DEPLOY),
    (err) =>
      err instanceof ConfigError && /BANSKY_API_URL.*required on Deno Deploy/.test(err.message) &&
      /DEMO=1/.test(err.message),
  );
  assert.throws(() => loadConfig({ ...ON_DEPLOY, DEMO: "0" }), ConfigError);
  // A deliberate demo deployment (a preview, say): the sandbox and the demo, still no local URLs, no queue.
  const demo = loadConfig({ ...ON_DEPLOY, DEMO: "1" });
  assert.equal(demo.bansky, undefined);
  assert.equal(demo.demo, true);
  assert.equal(demo.allowLocalUrls, false);
  assert.equal(demo.jobsQueue, false);
  assert.equal(demo.kvPath, undefined);
  // Never on the production timeline, even when asked.
  for (const env of [{ DEMO: "1" }, { DEMO: "1", ...BANSKY }]) {
    assert.throws(
      () => loadConfig({ ...ON_DEPLOY, DENO_TIMELINE: "production", ...env }),
      (err) =>
        err instanceof ConfigError && /DEMO: the demo .* never runs on the production timeline/.test(err.message),
    );
  }
  assert.equal(loadConfig({ ...DEPLOY, DENO_TIMELINE: "production" }).demo, false);
  assert.equal(loadConfig({ ...ON_DEPLOY, DENO_TIMELINE: "git-branch/try", DEMO: "1" }).demo, true);
});

const BIGQUERY = {
  BIGQUERY_PROJECT: "acme-analytics",
  BIGQUERY_DATASET: "aimbrella",
  BIGQUERY_LOCATION: "EU",
  BIGQUERY_CREDENTIALS: JSON.stringify({
    type: "service_account",
    client_email: "exporter@acme-analytics.iam.gserviceaccount.com",
    private_key: "-----BEGIN PRIVATE KEY-----\nMIIsecretkeymaterial\n-----END PRIVATE KEY-----\n",
    private_key_id: "k1",
  }),
};

Deno.test("[config] BigQuery is off without its variables; the email column defaults to raw", () => {
  const c = loadConfig({});
  assert.equal(c.bigquery, undefined);
  assert.deepEqual(c.analytics, {
    email: "raw",
    hashSecret: undefined,
    batchSize: 500,
    intervalMs: 5000,
    settleMs: 5000,
  });
});

Deno.test("[config] all four BigQuery variables switch the export on", () => {
  const c = loadConfig({ ...BIGQUERY, BIGQUERY_API_ENDPOINT: "http://127.0.0.1:9050/" });
  assert.deepEqual(c.bigquery, {
    projectId: "acme-analytics",
    dataset: "aimbrella",
    location: "EU",
    credentials: {
      clientEmail: "exporter@acme-analytics.iam.gserviceaccount.com",
      privateKey: "-----BEGIN PRIVATE KEY-----\nMIIsecretkeymaterial\n-----END PRIVATE KEY-----\n",
      privateKeyId: "k1",
    },
    apiEndpoint: "http://127.0.0.1:9050",
    timeoutMs: 30_000,
  });
});

Deno.test("[config] partial BigQuery settings name the missing variables and never echo the key", () => {
  const { BIGQUERY_DATASET: _d, BIGQUERY_LOCATION: _l, ...partial } = BIGQUERY;
  assert.throws(() => loadConfig(partial), (err) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /must be set together; missing: BIGQUERY_DATASET, BIGQUERY_LOCATION$/m);
    assert.ok(!err.message.includes("secretkeymaterial"));
    return true;
  });
  assert.throws(
    () => loadConfig({ BIGQUERY_API_ENDPOINT: "http://127.0.0.1:9050" }),
    /missing: BIGQUERY_PROJECT, BIGQUERY_DATASET, BIGQUERY_LOCATION, BIGQUERY_CREDENTIALS/,
  );
});

Deno.test("[config] credentials that are not a service-account key are refused without being shown", () => {
  for (const bad of ['{"private_key": "-----BEGIN PRIVATE KEY-----sk_live_x"', '{"client_email":"a@b"}', "sk_live_x"]) {
    assert.throws(() => loadConfig({ ...BIGQUERY, BIGQUERY_CREDENTIALS: bad }), (err) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /BIGQUERY_CREDENTIALS: must be a service-account key in JSON/);
      assert.ok(!err.message.includes("sk_live_x") && !err.message.includes("a@b"));
      return true;
    });
  }
});

Deno.test("[config] ANALYTICS_EMAIL=hash needs a hash secret; bad ids and policies are named", () => {
  assert.throws(
    () => loadConfig({ ANALYTICS_EMAIL: "hash" }),
    /ANALYTICS_HASH_SECRET: required when ANALYTICS_EMAIL=hash/,
  );
  const c = loadConfig({ ANALYTICS_EMAIL: "hash", ANALYTICS_HASH_SECRET: "0123456789abcdef" });
  assert.equal(c.analytics.email, "hash");
  assert.throws(
    () =>
      loadConfig({ ...BIGQUERY, BIGQUERY_DATASET: "a-b`; DROP", ANALYTICS_EMAIL: "sha1", ANALYTICS_BATCH_SIZE: "501" }),
    (err) => {
      assert.ok(err instanceof ConfigError);
      for (const name of ["BIGQUERY_DATASET", "ANALYTICS_EMAIL", "ANALYTICS_BATCH_SIZE"]) {
        assert.match(err.message, new RegExp(name));
      }
      return true;
    },
  );
});

Deno.test("[config] PUBLIC_BASE_URL with a query, a fragment or credentials is refused: every URL built on it would break", () => {
  for (const url of ["https://pay.example/?x=1", "https://pay.example/#top", "https://me:pw@pay.example"]) {
    assert.throws(
      () => loadConfig({ PUBLIC_BASE_URL: url }),
      (err) => err instanceof ConfigError && /PUBLIC_BASE_URL: must be an address without a query/.test(err.message),
      url,
    );
  }
});

Deno.test("[config] PUBLIC_BASE_URL is kept as a URL's own spelling, so our URLs read back from a payment match it", () => {
  // init-payment stores a return URL as the URL parser writes it; a form finds its payments by comparing that with
  // the form's own thank-you URL, built from the setting.
  for (
    const [typed, kept] of [
      ["https://Pay.Example.com", "https://pay.example.com"],
      ["https://pay.example.com:443/", "https://pay.example.com"],
      ["https://pay.example.com/buyers/", "https://pay.example.com/buyers"],
      ["https://pay.example.com", "https://pay.example.com"],
    ]
  ) {
    const base = loadConfig({ PUBLIC_BASE_URL: typed }).publicBaseUrl;
    assert.equal(base, kept, typed);
    const thanks = `${base}/forms/form_abc/thanks`;
    assert.equal(normalizeShopUrl(thanks, { allowedHosts: [], allowLocal: false }).url, thanks, typed);
  }
});
