import assert from "node:assert/strict";
import { recordPaidOrphanSighting } from "../lib/db/paid_orphans.ts";
import { addDeliveryOps } from "../lib/db/deliveries.ts";
import { createPayment } from "../lib/db/payments.ts";
import { storedPayment } from "../fixtures/payments.ts";
import { newDelivery } from "../lib/relay/delivery.ts";
import { getRefundReservation, insertRefund } from "../lib/db/refunds.ts";
import { searchAudit } from "../lib/db/audit.ts";
import { refundEvents } from "../lib/refunds/view.ts";
import type { Refund } from "../lib/refunds/types.ts";
import { sortableId } from "../lib/ids.ts";
import { startTestApp } from "../fixtures/app.ts";
import { operatorBrowser } from "../fixtures/browser.ts";

/** The --actor of the operator each test makes first (`operator create ops@example.com`, which needs none). */
const AS_OPS = ["--actor", "ops@example.com"];

/**
 * Runs an operator command against a KV file, as an operator would; returns its parsed JSON output. The file is made
 * if it is not there (NEW_DATABASE=1), as the server makes it at its first start; cliWith runs it with other variables.
 */
async function cli(kvPath: string, script: string, ...args: string[]) {
  return await cliWith({ NEW_DATABASE: "1" }, kvPath, script, ...args);
}

/** A new store holding its first operator (ops@example.com, see AS_OPS) for `test`; removed after it. */
async function withOperatorStore(test: (kvPath: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    const kvPath = `${dir}/kv.sqlite3`;
    assert.equal((await cli(kvPath, "operator", "create", "ops@example.com")).code, 0);
    await test(kvPath);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function cliWith(env: Record<string, string>, kvPath: string, script: string, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `cli/${script}.ts`, ...args],
    env: { DENO_KV_PATH: kvPath, LOG_LEVEL: "warn", PASSWORD_ITERATIONS: "1000", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  return { code: out.code, json: out.code === 0 ? JSON.parse(stdout) : null, stderr };
}

Deno.test("[cli] shops, keys and operators from the command line", async () => {
  const dir = await Deno.makeTempDir();
  const kv = `${dir}/kv.sqlite3`;
  try {
    // A command pointed at a file that is not there (the wrong path) makes nothing: it says so and how to go on.
    const nowhere = await cliWith(
      {},
      kv,
      "shop",
      "create",
      "--name",
      "Acme",
      "--allowed-host",
      "shop.example",
      ...AS_OPS,
    );
    assert.equal(nowhere.code, 2);
    assert.match(nowhere.stderr, /no database at .*kv\.sqlite3: the server makes it when it first starts/);
    assert.match(nowhere.stderr, /NEW_DATABASE=1/);
    assert.equal(await Deno.stat(kv).then(() => true, () => false), false, "no file was made");

    // The store's first operator, who names no one (there is no one yet); every change after names them.
    const op = await cli(kv, "operator", "create", "ops@example.com");
    assert.equal(op.code, 0, op.stderr);
    assert.equal(op.json.email, "ops@example.com");
    assert.ok(op.json.oneTimePassword.length >= 20);
    // Asked to, the first command made the file, and says so.
    assert.match(op.stderr, /kv\.sqlite3 did not exist; a new, empty database was made there/);

    const created = await cli(kv, "shop", "create", "--name", "Acme", "--allowed-host", "shop.example", ...AS_OPS);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.json.shopId, /^shop_/);
    assert.match(created.json.apiKey, /^apay_sk_/);
    assert.match(created.json.webhookSecret, /^whsec_/);
    assert.doesNotMatch(created.stderr, /did not exist/, "not once the file is there");
    const key = await cli(kv, "shop", "key", "create", created.json.shopId, ...AS_OPS);
    assert.match(key.json.apiKey, /^apay_sk_/);
    const revoked = await cli(kv, "shop", "key", "revoke", created.json.shopId, key.json.keyId, ...AS_OPS);
    assert.equal(revoked.code, 0, revoked.stderr);

    const list = await cli(kv, "shop", "list");
    assert.equal(list.json.length, 1);
    assert.deepEqual(list.json[0].allowedHosts, ["shop.example"]);
    assert.equal(list.json[0].keys.length, 2);
    assert.equal(list.json[0].keys.filter((k: { revokedAt: string | null }) => k.revokedAt).length, 1);
    const listed = JSON.stringify(list.json);
    assert.ok(
      !listed.includes(created.json.apiKey) && !listed.includes(created.json.webhookSecret),
      "no secrets in listings",
    );

    const embed = await cli(kv, "shop", "embed", created.json.shopId, "--origin", "https://Shop.Example", ...AS_OPS);
    assert.equal(embed.code, 0, embed.stderr);
    assert.deepEqual(embed.json.embedOrigins, ["https://shop.example"]);
    const badEmbed = await cli(
      kv,
      "shop",
      "embed",
      created.json.shopId,
      "--origin",
      "https://shop.example/pay",
      ...AS_OPS,
    );
    assert.equal(badEmbed.code, 2);
    assert.match(badEmbed.stderr, /origin only/);
    assert.deepEqual((await cli(kv, "shop", "list")).json[0].embedOrigins, ["https://shop.example"]);

    const bad = await cli(kv, "shop", "create", "--name", "", ...AS_OPS);
    assert.equal(bad.code, 2);
    // A mistyped option or one missing its value is told with the usage, not a stack trace.
    for (
      const args of [["shop", "create", "--nme", "x"], ["shop", "create", "--postback-url"], ["account", "list", "--x"]]
    ) {
      const typo = await cli(kv, args[0], ...args.slice(1));
      assert.equal(typo.code, 2, args.join(" "));
      assert.match(typo.stderr, /usage:/, args.join(" "));
      assert.doesNotMatch(typo.stderr, /Uncaught|^\s+at /m, args.join(" "));
    }
    // Asked for help, each command prints its usage and succeeds, without a store (none is needed to read it).
    for (const script of ["shop", "account", "operator", "payment", "bq"]) {
      const help = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `cli/${script}.ts`, "--help"],
        env: { DENO_KV_PATH: `${dir}/none.sqlite3` },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const [stdout, stderr] = [help.stdout, help.stderr].map((b) => new TextDecoder().decode(b));
      assert.equal(help.code, 0, `${script} --help: ${stderr}`);
      assert.match(stdout, new RegExp(`^usage:\\n  .*deno task ${script} `, "s"), script);
      assert.equal(stderr, "", script);
    }
    const unknown = await cli(kv, "payment", "show", "pay_nope");
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /not_found/);
    const reindex = await cli(kv, "payment", "reindex");
    assert.equal(reindex.code, 0, reindex.stderr);
    assert.equal(reindex.json.emailIndex, "complete");
    const backfill = await cli(kv, "payment", "backfill");
    assert.equal(backfill.code, 0, backfill.stderr);
    assert.deepEqual(
      backfill.json.backfills.map((b: { name: string; state: string }) => [b.name, b.state]),
      [
        ["payment_late_checks", "complete"],
        ["refund_reversal_checks", "complete"],
        ["refund_pending_index", "complete"],
        ["invoice_late_index", "complete"],
        ["payment_names", "complete"],
      ],
    );

    assert.equal((await cli(kv, "operator", "create", "ops@example.com", ...AS_OPS)).code, 2, "emails are unique");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[cli] every command called with no arguments, an unknown subcommand or one missing its arguments prints its usage before opening a store, not that there is no database", async () => {
  const dir = await Deno.makeTempDir();
  const kv = `${dir}/none.sqlite3`;
  try {
    const calls = [
      ["shop"],
      ["shop", "nope"],
      ["shop", "route", "shop_x"],
      ["shop", "signing", "shop_x", "rsa"],
      ["account"],
      ["account", "nope"],
      ["account", "disable"],
      ["operator"],
      ["operator", "nope"],
      ["payment"],
      ["payment", "nope", "pay_x"],
      ["payment", "handle-orphan", "default", "bsk_x"],
      ["bq"],
      ["bq", "nope"],
    ];
    for (const [script, ...args] of calls) {
      const out = await cliWith({}, kv, script, ...args);
      const call = [script, ...args].join(" ");
      assert.equal(out.code, 2, call);
      assert.match(out.stderr, new RegExp(`^usage:\\n  .*deno task ${script} `, "s"), call);
      assert.doesNotMatch(out.stderr, /no database/, call);
    }
    assert.equal(await Deno.stat(kv).then(() => true, () => false), false, "no file was made");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[cli] a refused account or route names the option or variable the operator gives, not the API's field", () =>
  withOperatorStore(async (kv) => {
    const account = (...args: string[]) => cli(kv, "account", "create", ...args, ...AS_OPS);
    // The secrets come from the environment, so the line names the variable to set; the rest by their options.
    const bansky = await account("--label", "Acme", "--api-url", "https://api.bansky.example/v1");
    assert.equal(bansky.code, 2);
    assert.match(bansky.stderr, /"--org-id":"is required"/);
    const noSecrets = await account("--label", "Acme", "--org-id", "BIN1");
    assert.equal(noSecrets.code, 2);
    assert.match(noSecrets.stderr, /"--api-url":"is required"/);
    assert.match(noSecrets.stderr, /"ACCOUNT_API_TOKEN":"is required"/);
    assert.match(noSecrets.stderr, /"ACCOUNT_WEBHOOK_SECRET":"is required"/);
    const stripe = await account("--provider", "stripe", "--label", "S", "--org-id", "BIN1");
    assert.match(stripe.stderr, /"ACCOUNT_SECRET_KEY":"is required"/);
    assert.match(stripe.stderr, /"--connected-account":"is required"/);
    assert.doesNotMatch(noSecrets.stderr + stripe.stderr + bansky.stderr, /credentials\.|orgId/);
    // An account's URL is the provider's API, not a shop's page: the example says so.
    const ftp = await account("--label", "Acme", "--org-id", "BIN1", "--api-url", "ftp://x");
    assert.equal(ftp.code, 2);
    assert.match(
      ftp.stderr,
      /"--api-url":"must be the provider's API base URL, such as https:\/\/api\.provider\.example\/v1"/,
    );
    assert.doesNotMatch(ftp.stderr, /shop\.example/);
    assert.deepEqual((await cli(kv, "account", "list")).json.map((a: { id: string }) => a.id), ["default"]);

    // A route's rule by its options, not by the place the new rule would take in the list.
    const shop = await cli(kv, "shop", "create", "--name", "Acme", ...AS_OPS);
    const route = await cli(kv, "shop", "route", shop.json.shopId, "--account", "default", "--type", "card", ...AS_OPS);
    assert.equal(route.code, 2);
    assert.match(route.stderr, /"--type":"must be one of/);
    assert.doesNotMatch(route.stderr, /rules\./);
    const badHost = await cli(kv, "shop", "create", "--name", "B", "--allowed-host", "not a host", ...AS_OPS);
    assert.match(badHost.stderr, /"--allowed-host":"is not a hostname"/);
  }));

Deno.test("[cli] an option's value is taken whatever it begins with (a dash, -h, --help); -h and --help ask for help only as flags", () =>
  withOperatorStore(async (kv) => {
    for (const name of ["-5 EUR kept", "-h", "--help", "--actors"]) {
      const made = await cli(kv, "shop", "create", "--name", name, ...AS_OPS);
      assert.equal(made.code, 0, `${name}: ${made.stderr}`);
    }
    const names = (await cli(kv, "shop", "list")).json.map((s: { name: string }) => s.name).sort();
    assert.deepEqual(names, ["--actors", "--help", "-5 EUR kept", "-h"]);
    // After --, an argument is no flag: the shop's id "-h" is looked for, not the usage printed.
    const afterDashes = await cli(kv, "payment", "show", "--", "-h");
    assert.equal(afterDashes.code, 2);
    assert.doesNotMatch(afterDashes.stderr, /usage:/);
    // As a flag, anywhere: the usage, and nothing done.
    for (const flag of ["-h", "--help"]) {
      const help = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "cli/shop.ts", "create", "--name", "Helped", flag, ...AS_OPS],
        env: { DENO_KV_PATH: kv },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(help.code, 0, flag);
      assert.match(new TextDecoder().decode(help.stdout), /^usage:\n {2}deno task shop /, flag);
    }
    assert.equal((await cli(kv, "shop", "list")).json.length, 4);
  }));

Deno.test("[cli] an option left without its value is refused, not given the option after it as its value, and an argument a command does not take is refused: nothing is made", () =>
  withOperatorStore(async (kv) => {
    // The name forgotten: the option after --name is not taken as the name, however it is written.
    for (const next of [["--allowed-host", "shop.example"], ["--allowed-host=shop.example"], ["--actor"]]) {
      const noName = await cli(kv, "shop", "create", "--name", ...next, ...AS_OPS);
      assert.equal(noName.code, 2, noName.stderr);
      assert.match(noName.stderr, /^Option '--name' has no value: '--(allowed-host|actor)[^']*' after it is an option/);
      assert.match(noName.stderr, /\nusage:/);
    }
    assert.deepEqual((await cli(kv, "shop", "list")).json, []);
    // An argument left over (what --email=... would leave, were the value forgotten) is refused too.
    const extra = await cli(kv, "operator", "create", "new@example.com", "other@example.com", ...AS_OPS);
    assert.equal(extra.code, 2, extra.stderr);
    assert.match(extra.stderr, /^usage:/);
    const emails = (await cli(kv, "operator", "list")).json.map((o: { email: string }) => o.email);
    assert.deepEqual(emails, ["ops@example.com"]);
    // Every command: one that acts on nothing (a list) and one that reads one thing.
    for (
      const args of [["shop", "list", "extra"], ["operator", "list", "extra"], ["payment", "show", "pay_x", "extra"]]
    ) {
      const refused = await cli(kv, args[0], ...args.slice(1));
      assert.equal(refused.code, 2, args.join(" "));
      assert.match(refused.stderr, /^usage:/, args.join(" "));
    }
  }));

Deno.test("[cli] an option that takes one value given twice is refused, not the first dropped: nothing is made under either --actor", () =>
  withOperatorStore(async (kv) => {
    assert.equal((await cli(kv, "operator", "create", "second@example.com", ...AS_OPS)).code, 0);
    for (
      const args of [
        ["--name", "Acme", ...AS_OPS, "--actor", "second@example.com"],
        ["--name", "Acme", "--name=Other", ...AS_OPS],
      ]
    ) {
      const twice = await cli(kv, "shop", "create", ...args);
      assert.equal(twice.code, 2, args.join(" "));
      assert.match(twice.stderr, /^Option '--(actor|name)' is given twice/, args.join(" "));
      assert.match(twice.stderr, /\nusage:/);
    }
    assert.deepEqual((await cli(kv, "shop", "list")).json, []);
    // One an option may repeat is still taken each time.
    const hosts = await cli(
      kv,
      "shop",
      "create",
      "--name",
      "Acme",
      "--allowed-host",
      "a.example",
      "--allowed-host",
      "b.example",
      ...AS_OPS,
    );
    assert.equal(hosts.code, 0, hosts.stderr);
    assert.deepEqual((await cli(kv, "shop", "list")).json.map((s: { allowedHosts: string[] }) => s.allowedHosts), [[
      "a.example",
      "b.example",
    ]]);
  }));

Deno.test("[cli] an option the command does not take is refused, not dropped: nothing is made", () =>
  withOperatorStore(async (kv) => {
    const cases = [
      ["shop", "create", "--name", "Acme", "--account", "acc_x", ...AS_OPS],
      ["operator", "token", "create", "ops@example.com", "--email", "other@example.com", ...AS_OPS],
      ["payment", "resend", "pay_x", "--note", "the shop asked", ...AS_OPS],
    ];
    for (const [script, ...args] of cases) {
      const refused = await cli(kv, script, ...args);
      assert.equal(refused.code, 2, args.join(" "));
      assert.match(
        refused.stderr,
        /^(shop create|operator token create|payment resend) takes no --(account|email|note)\nusage:/,
      );
    }
    assert.deepEqual((await cli(kv, "shop", "list")).json, []);
    assert.deepEqual((await cli(kv, "operator", "token", "list")).json, []);
  }));

Deno.test("[cli] shop route asked for a rule or a default the shop has already changes nothing and says it is already routed", () =>
  withOperatorStore(async (kv) => {
    const shop = await cli(kv, "shop", "create", "--name", "Acme", ...AS_OPS);
    const route = (...args: string[]) =>
      cli(kv, "shop", "route", shop.json.shopId, "--account", "default", ...args, ...AS_OPS);
    const first = await route("--currency", "EUR", "--type", "fiat");
    assert.equal(first.code, 0, first.stderr);
    assert.doesNotMatch(first.stderr, /already routed/);
    // Asked again, in another case: the same rule.
    const again = await route("--currency", "eur", "--type", "fiat");
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /already routed so; nothing changed/);
    assert.deepEqual(again.json.routing.rules, [{ accountId: "default", currency: "EUR", type: "fiat" }]);
    // Another rule is added as before.
    const other = await route("--currency", "EUR");
    assert.equal(other.json.routing.rules.length, 2, other.stderr);

    const byDefault = await route();
    assert.equal(byDefault.json.routing.defaultAccountId, "default");
    assert.doesNotMatch(byDefault.stderr, /already routed/);
    const defaultAgain = await route();
    assert.equal(defaultAgain.code, 0, defaultAgain.stderr);
    assert.match(defaultAgain.stderr, /already routed so/);
    // A blank value (a variable that came out empty) is refused, not read as "no currency": that set the default.
    for (const blank of [["--currency", ""], ["--type", ""], ["--currency="]]) {
      const refused = await route(...blank);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /^Option '--(currency|type)' has an empty value/);
    }

    const srv = await Deno.openKv(kv);
    try {
      const audited = await searchAudit(srv, { query: "shop.routing", limit: 10 });
      assert.equal(audited.length, 3, "the changes that were made, not the ones asked again");
    } finally {
      srv.close();
    }
  }));

Deno.test("[cli] payment show lists a payment's postbacks without the relay's lease token or a stale next attempt; a resend naming no operator (--actor) is refused and changes nothing", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/kv.sqlite3`;
  try {
    const now = Date.now();
    const kv = await Deno.openKv(path);
    const payment = storedPayment(now, {
      shopId: "shop_00000000000000000000000000",
      shopTxId: "order-1",
      postbackUrl: "https://shop.example/postback",
      status: "succeeded",
      finalizedAt: now,
    });
    assert.ok(await createPayment(kv, payment));
    // Failed after its last attempt, as the relay leaves it: a lease token and the time it last held.
    const d = {
      ...newDelivery({
        paymentId: payment.id,
        shopId: payment.shopId,
        url: payment.postbackUrl!,
        eventType: "payment.succeeded",
        body: "{}",
        now,
        leaseUntil: now + 10_000,
      }),
      status: "failed" as const,
      attempts: 8,
      nextAttemptAt: now + 36_000_000,
    };
    const op = kv.atomic();
    addDeliveryOps(op, d, { queue: false, now });
    assert.ok((await op.commit()).ok);
    kv.close();

    const shown = await cli(path, "payment", "show", payment.id);
    assert.equal(shown.code, 0, shown.stderr);
    const [listed] = shown.json.deliveries;
    assert.equal(listed.id, d.id);
    assert.ok(!("leaseToken" in listed), "no lease token");
    assert.equal(listed.nextAttemptAt, null, "a failed postback has no next attempt");

    // A resend says who runs it (an operator's email) or is refused before anything is sent, changed or audited.
    const anonymous = await cli(path, "payment", "resend", payment.id);
    assert.equal(anonymous.code, 2);
    assert.match(anonymous.stderr, /--actor EMAIL is required: resend is audited under the operator who runs it/);
    const stranger = await cli(path, "payment", "resend", payment.id, "--actor", "nobody@example.com");
    assert.equal(stranger.code, 2);
    assert.match(stranger.stderr, /--actor names no operator/);
    const after = await cli(path, "payment", "show", payment.id);
    assert.deepEqual(after.json.deliveries, shown.json.deliveries, "the postback is as it was");
    const check = await Deno.openKv(path);
    try {
      assert.deepEqual(await searchAudit(check, { query: "postback.resend", limit: 10 }), []);
    } finally {
      check.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[cli] payment settle-refund settles a refund its provider leaves pending, audited with the note under the operator who ran it; a refund not pending is refused, saying how it settled", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/kv.sqlite3`;
  try {
    const now = Date.now();
    const kv = await Deno.openKv(path);
    const payment = storedPayment(now, {
      shopId: "shop_00000000000000000000000000",
      status: "succeeded",
      providerRef: "bsk_cli",
      finalizedAt: now,
    });
    assert.ok(await createPayment(kv, payment));
    const refund: Refund = {
      id: "re_cliAAAAAAAAAAAAAAAAAAA",
      seq: sortableId(now),
      paymentId: payment.id,
      shopId: payment.shopId,
      shopRefundId: null,
      idempotencyKey: null,
      requestHash: "x",
      amount: 400,
      currency: "EUR",
      reason: null,
      status: "pending",
      providerRef: null,
      failureReason: null,
      requestedBy: "api",
      checks: 7,
      // Its next check is hours away: the command's own start-up sweep asks the provider nothing.
      nextCheckAt: now + 6 * 3_600_000,
      createdAt: now,
      updatedAt: now,
      settledAt: null,
    };
    const reservation = await getRefundReservation(kv, payment.id);
    const stored = await insertRefund(kv, {
      refund,
      reservation,
      event: refundEvents(refund).requested,
      jobs: { queue: false, now },
    });
    assert.ok(stored);
    kv.close();

    assert.equal((await cli(path, "operator", "create", "ops@example.com")).code, 0);
    assert.equal((await cli(path, "operator", "create", "gone@example.com", ...AS_OPS)).code, 0);
    assert.equal((await cli(path, "operator", "disable", "--email", "gone@example.com", ...AS_OPS)).code, 0);
    const args = ["payment", "settle-refund", payment.id, refund.id] as const;
    const note = "Bansky support confirmed no refund on 2026-11-30";
    // Who ran it is asked, and must be an active operator: otherwise nothing is done or recorded.
    const anonymous = await cli(path, ...args, "failed", note);
    assert.equal(anonymous.code, 2);
    assert.match(
      anonymous.stderr,
      /--actor EMAIL is required: settle-refund is audited under the operator who runs it/,
    );
    for (
      const [actor, said] of [
        ["nobody@example.com", /--actor names no operator.*"--actor":"is not an operator's email"/],
        ["gone@example.com", /--actor names a disabled operator/],
        ["not an email", /"--actor":"is not an email"/],
        ["x".repeat(5000), /"--actor":"is not an email"/],
      ] as const
    ) {
      const refused = await cli(path, ...args, "failed", note, "--actor", actor);
      assert.equal(refused.code, 2, actor);
      assert.match(refused.stderr, said);
    }
    const noNote = await cli(path, ...args, "failed", "", "--actor", "ops@example.com");
    assert.equal(noNote.code, 2);
    assert.match(noNote.stderr, /say in the note how you know/);

    // The note as --note, where it may begin with a dash (as may any option's value), or last, as before.
    const both = await cli(path, ...args, "failed", note, "--note", note, "--actor", "ops@example.com");
    assert.equal(both.code, 2);
    assert.match(both.stderr, /^usage:/);
    const dashed = "-5 EUR kept: Bansky support confirmed they refunded the rest, not this";
    const done = await cli(path, ...args, "failed", "--note", dashed, "--actor", "Ops@Example.com");
    assert.equal(done.code, 0, done.stderr);
    assert.equal(done.json.refund.status, "failed");
    assert.match(done.json.refund.failureReason, /An operator recorded, after checking with the provider/);
    assert.deepEqual(done.json.settledBy, { actor: "ops@example.com (cli)", note: dashed });
    assert.deepEqual(done.json.payment, { id: payment.id, status: "succeeded", refundedAmount: 0 });

    const again = await cli(path, ...args, "succeeded", "second try", "--actor", "ops@example.com");
    assert.equal(again.code, 2);
    assert.match(
      again.stderr,
      /refund_not_pending: This refund is not pending any more: it failed at .* UTC, recorded by ops@example\.com \(cli\)/,
    );

    const check = await Deno.openKv(path);
    try {
      assert.equal((await getRefundReservation(check, payment.id)).value, 0, "its amount is free again");
      const audit = await searchAudit(check, { query: "refund.settle", limit: 10 });
      assert.deepEqual(audit.map((e) => [e.actor, e.target, e.after]), [
        ["ops@example.com (cli)", payment.id, { refund: refund.id, status: "failed", note: dashed }],
      ]);
    } finally {
      check.close();
    }
    // The console's audit log names the operator, and that it was from the command line.
    const app = await startTestApp({ kvPath: path });
    try {
      const b = await operatorBrowser(app, "reader@example.com");
      const page = await b.get("/admin/audit?q=refund.settle");
      assert.match(page.text, /<strong>ops@example\.com \(cli\)<\/strong> settled by hand/);
    } finally {
      await app.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Every record in the store, to show a refused command changed nothing (audit entries included). */
async function storeSnapshot(path: string) {
  const kv = await Deno.openKv(path);
  try {
    const entries: [Deno.KvKey, unknown][] = [];
    for await (const e of kv.list({ prefix: [] })) entries.push([e.key, e.value]);
    return entries;
  } finally {
    kv.close();
  }
}

Deno.test("[cli] every command that writes an audit entry is refused without --actor, changing nothing, and with it is audited under that operator; only the first operator is made without one", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/kv.sqlite3`;
  const accountEnv = { NEW_DATABASE: "1", ACCOUNT_API_TOKEN: "tok_cli_test", ACCOUNT_WEBHOOK_SECRET: "whsec_cli_test" };
  /** Refused without --actor, exit 2 and nothing written; then, with it, done and audited as `EMAIL (cli)`. */
  const actsAs = async (label: string, args: string[]) => {
    const before = await storeSnapshot(path);
    const anonymous = await cliWith(accountEnv, path, args[0], ...args.slice(1));
    assert.equal(anonymous.code, 2, label);
    assert.match(anonymous.stderr, /--actor EMAIL is required: .* is audited under the operator who runs it/, label);
    assert.deepEqual(await storeSnapshot(path), before, `${label}: nothing changed or audited`);
    // An email in another case is the same operator, named as the store spells it.
    const done = await cliWith(accountEnv, path, args[0], ...args.slice(1), "--actor", "Ops@Example.com");
    assert.equal(done.code, 0, `${label}: ${done.stderr}`);
    const kv = await Deno.openKv(path);
    try {
      const [newest] = await searchAudit(kv, { limit: 1 });
      assert.equal(newest.actor, "ops@example.com (cli)", label);
    } finally {
      kv.close();
    }
    return done.json;
  };
  try {
    // The store's first operator: there is no one to name yet, so it needs no --actor and is made as `cli`.
    const first = await cli(path, "operator", "create", "ops@example.com");
    assert.equal(first.code, 0, first.stderr);
    const check = await Deno.openKv(path);
    try {
      assert.deepEqual((await searchAudit(check, { query: "operator.create", limit: 10 })).map((e) => e.actor), [
        "cli",
      ]);
    } finally {
      check.close();
    }
    // An email that is not an operator's is refused as well, before anything is done.
    const before = await storeSnapshot(path);
    const stranger = await cli(path, "shop", "create", "--name", "Acme", "--actor", "nobody@example.com");
    assert.equal(stranger.code, 2);
    assert.match(stranger.stderr, /--actor names no operator/);
    assert.deepEqual(await storeSnapshot(path), before, "nothing changed");

    const shop = await actsAs("shop create", ["shop", "create", "--name", "Acme", "--allowed-host", "shop.example"]);
    const key = await actsAs("shop key create", ["shop", "key", "create", shop.shopId]);
    await actsAs("shop key revoke", ["shop", "key", "revoke", shop.shopId, key.keyId]);
    await actsAs("shop route", ["shop", "route", shop.shopId, "--account", "default"]);
    await actsAs("shop signing", ["shop", "signing", shop.shopId, "ed25519"]);
    await actsAs("shop signing end-overlap", ["shop", "signing", shop.shopId, "end-overlap"]);
    await actsAs("shop redirects", ["shop", "redirects", shop.shopId, "on"]);
    await actsAs("shop embed", ["shop", "embed", shop.shopId, "--origin", "https://shop.example"]);
    const account = await actsAs("account create", [
      "account",
      "create",
      "--label",
      "Acme",
      "--org-id",
      "BIN1",
      "--api-url",
      "https://api.bansky.example/v1",
    ]);
    await actsAs("account disable", ["account", "disable", account.id]);
    await actsAs("account enable", ["account", "enable", account.id]);
    // Once an operator can sign in, a new one is made by one of them.
    await actsAs("operator create", ["operator", "create", "two@example.com"]);
    const token = await actsAs("operator token create", ["operator", "token", "create", "two@example.com"]);
    await actsAs("operator token revoke", ["operator", "token", "revoke", token.tokenId]);
    await actsAs("operator disable", ["operator", "disable", "--email", "two@example.com"]);
    await actsAs("operator enable", ["operator", "enable", "--email", "two@example.com"]);
    // A paid orphan, as a refused webhook records it; the list shows it waiting, the mark is audited with its note.
    const kv = await Deno.openKv(path);
    try {
      await recordPaidOrphanSighting(kv, {
        provider: "bansky",
        accountId: "default",
        ref: "bsk_cli_orphan",
        paymentId: "pay_AAAAAAAAAAAAAAAAAAAAAA",
        paymentStored: false,
        storedRef: null,
        claimed: "succeeded",
        lastEventId: "evt_cli",
      }, Date.now());
    } finally {
      kv.close();
    }
    const listed = await cli(path, "payment", "orphans");
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(listed.json.unhandled.map((o: { ref: string }) => o.ref), ["bsk_cli_orphan"]);
    const note = "Refunded in Bansky's dashboard";
    const marked = await actsAs("payment handle-orphan", [
      "payment",
      "handle-orphan",
      "default",
      "bsk_cli_orphan",
      "--note",
      note,
    ]);
    assert.deepEqual([marked.orphan.handled.by, marked.orphan.handled.note], ["ops@example.com (cli)", note]);
    const after = await cli(path, "payment", "orphans");
    assert.deepEqual([after.json.unhandled, after.json.handled.map((o: { ref: string }) => o.ref)], [[], [
      "bsk_cli_orphan",
    ]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
