/**
 * Crypto invoices over real HTTP with the chain simulator: every status path,
 * the address pool (concurrent picks, reuse once free), expiry and late money,
 * a lost notice recovered by polling, idempotency and bad input. Our clock is
 * moved by replacing `ctx.now`; the sweep is what the cron runs every minute.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import {
  type ReceivedPostback,
  recordDeliveryWrites,
  startShopReceiver,
  startTestApp,
  type TestApp,
  waitFor,
} from "../fixtures/app.ts";
import {
  advanceClock,
  callCreateInvoice,
  cancelInvoiceCall,
  chainApi,
  createTestInvoice,
  dropFromChain,
  invoiceBody,
  readInvoice,
  shiftClock,
  storedInvoice,
} from "../fixtures/invoices.ts";
import { getDepositClaims, getInvoiceEntry, listPoolAddresses } from "../lib/db/invoices.ts";
import { createInvoiceSchema } from "../lib/invoices/schema.ts";
import { parseOrThrow } from "../lib/validation.ts";
import { ValidationError } from "../lib/errors.ts";
import { sha256Hex } from "../lib/crypto.ts";
import { AddressState, signChainNotice } from "../lib/invoices/chain_wire.ts";
import {
  ADDRESS_RETIRES_AT,
  type Attribution,
  decideFromChain,
  DROP_GRACE_MS,
  DUST_LISTED_UP_TO,
  MAX_CLAIMS_PER_WRITE,
  MAX_DEPOSITS_PER_INVOICE,
  MAX_LISTED_WITH_DROPPED,
  MAX_OTHER_COIN_DEPOSITS,
  MAX_UNKNOWN_COIN_DEPOSITS,
  readClaims,
  syncInvoice,
} from "../lib/invoices/deposits.ts";
import { type InvoiceChange, updateInvoice } from "../lib/invoices/transition.ts";
import type { Invoice } from "../lib/invoices/types.ts";
import { InvoicePostbackBody, InvoiceResponse, InvoiceView } from "../lib/invoices/api_schemas.ts";
import { buyerStatusView, invoiceView } from "../lib/invoices/view.ts";
import { ChainSimulator } from "../sandbox/chain.ts";
import { requireChain } from "../lib/invoices/chain.ts";
import { ADDRESS_BATCH } from "../lib/invoices/pool.ts";
import { describePool } from "../lib/invoices/admin.ts";

/** An invoice that has held its address from the start, and no transaction claimed yet: its window decides. */
const ALL_TIME: Attribution = { window: { from: 0, until: null }, claimedBy: new Map() };

/** Waits until the invoice reaches `status` (notices are handled in the background). */
function waitStatus(app: TestApp, id: string, status: string) {
  return waitFor(`invoice ${id} to be ${status}`, async () => {
    const inv = await readInvoice(app, id);
    return inv.status === status ? inv : undefined;
  });
}

function postbacksOf(app: TestApp, received: ReceivedPostback[], invoiceId: string) {
  const wh = new Webhook(app.shop.webhookSecret);
  return received
    .map((r) => wh.verify(r.body, Object.fromEntries(r.headers)) as { type: string; data: Record<string, unknown> })
    .filter((b) => b.data.id === invoiceId);
}

/** A 3 USDT invoice whose whole payment the chain shows, unconfirmed. */
async function confirmingInvoice(app: TestApp, fields: Record<string, unknown> = {}) {
  const chain = chainApi(app);
  const created = await createTestInvoice(app, { coin: "USDT", network: "tron", amount: "3", ...fields });
  const sent = await chain.deposit(created.address, "3000000");
  await waitStatus(app, created.id, "payment_confirmation");
  return { chain, created, sent };
}

Deno.test("[invoices] a full deposit moves the invoice to payment_confirmation, payment_accepted and finished, with a signed postback for each", async () => {
  const app = await startTestApp();
  const shop = startShopReceiver();
  try {
    const chain = chainApi(app);
    const created = await createTestInvoice(app, { postbackUrl: shop.url, title: "Order 17" });
    // Each postback is born leased to the process whose commit made it, which sends it without a claim.
    const recorded = recordDeliveryWrites(app.kv);
    assert.equal(created.status, "waiting_for_deposit");
    assert.equal(created.amount, "12.5");
    assert.equal(created.paidAmount, "0");
    assert.match(created.checkoutUrl, new RegExp(`/invoices/${created.id}$`));
    assert.match(created.address, /^T[1-9A-HJ-NP-Za-km-z]{33}$/);

    await chain.deposit(created.address, "12500000");
    let inv = await waitStatus(app, created.id, "payment_confirmation");
    assert.equal(inv.paidAmount, "0", "an unconfirmed deposit is not paid yet");
    assert.equal(inv.pendingAmount, "12.5");

    await chain.mine(19, "tron");
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await readInvoice(app, created.id)).status, "payment_confirmation", "19 of 20 confirmations");
    await chain.mine(1, "tron");
    inv = await waitStatus(app, created.id, "payment_accepted");
    assert.equal(inv.paidAmount, "12.5");
    assert.equal(inv.overpaidAmount, "0");

    await chain.mine(20, "tron");
    inv = await waitStatus(app, created.id, "finished");
    assert.ok(inv.closedAt);
    assert.equal(inv.deposits.length, 1);
    assert.equal(inv.deposits[0].confirmed, true);

    const types = await waitFor("three postbacks", () => {
      const got = postbacksOf(app, shop.received, created.id).map((b) => b.type);
      return got.length >= 3 ? got : undefined;
    });
    assert.deepEqual(types, ["invoice.payment_confirmation", "invoice.payment_accepted", "invoice.finished"]);
    await waitFor("their outcomes", () => (recorded.writes.length >= 6 ? true : undefined));
    recorded.stop();
    assert.deepEqual(recorded.writes.toSorted(), [
      "delivered",
      "delivered",
      "delivered",
      "pending",
      "pending",
      "pending",
    ]);
    // The answers and postbacks are what the OpenAPI document says, with no field undocumented.
    for (const p of postbacksOf(app, shop.received, created.id)) InvoicePostbackBody.strict().parse(p);
    const res = await fetch(`${app.baseUrl}/api/v1/invoices/${created.id}`, {
      headers: { authorization: `Bearer ${app.shop.apiKey}` },
    });
    const answer = await res.json();
    InvoiceResponse.strict().parse(answer);
    assert.deepEqual(Object.keys(answer.invoice).sort(), Object.keys(InvoiceView.shape).sort());
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[invoices] a short deposit is partially_paid, a top-up completes it, and an overpayment is recorded", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    const created = await createTestInvoice(app, { coin: "BTC", network: "bitcoin", amount: "0.001" });
    await chain.deposit(created.address, "40000"); // 0.0004 BTC
    await chain.mine(3, "bitcoin");
    let inv = await waitStatus(app, created.id, "partially_paid");
    assert.equal(inv.paidAmount, "0.0004");

    await chain.deposit(created.address, "70000"); // 0.0007 BTC: 0.0001 more than asked
    inv = await waitStatus(app, created.id, "payment_confirmation");
    await chain.mine(3, "bitcoin");
    inv = await waitStatus(app, created.id, "payment_accepted");
    assert.equal(inv.paidAmount, "0.0011");
    assert.equal(inv.overpaidAmount, "0.0001");
    assert.equal(inv.deposits.length, 2);
    // The buyer is told what becomes of the extra: the shop sees it; nothing sends it back by itself.
    assert.match(
      await (await fetch(created.checkoutUrl)).text(),
      /That is 0\.0001 BTC more than asked\. It is not sent back by itself: contact the shop about the extra/,
    );
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] fifty concurrent invoices on one network get fifty different addresses", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_PER_MINUTE: "10000" } });
  try {
    // Three of the service's batches free beforehand (held, then cancelled): the concurrent picks compete for them.
    const size = 3 * ADDRESS_BATCH;
    assert.ok(size >= 50);
    const earlier = [];
    for (let i = 0; i < size; i++) earlier.push(await createTestInvoice(app));
    for (const inv of earlier) assert.equal((await cancelInvoiceCall(app, inv.id)).status, 200);
    const before = await listPoolAddresses(app.kv, app.shop.id);
    assert.equal(before.length, size, "one at a time, a batch is used up before the next is asked for");
    const results = await Promise.all(Array.from({ length: 50 }, () => callCreateInvoice(app, invoiceBody())));
    for (const r of results) assert.equal(r.status, 201, JSON.stringify(r.body));
    const addresses = new Set(results.map((r) => r.body.invoice.address));
    assert.equal(addresses.size, 50);
    const pool = await listPoolAddresses(app.kv, app.shop.id);
    assert.equal(pool.length, size, "free addresses were taken; none was made");
    assert.equal(pool.filter((a) => a.heldBy !== null).length, 50);
    const held = new Map(pool.filter((a) => a.heldBy).map((a) => [a.address, a.heldBy]));
    for (const r of results) assert.equal(held.get(r.body.invoice.address), r.body.invoice.id);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a finished or cancelled invoice frees its address in the same write, and the next invoice reuses it", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    const first = await createTestInvoice(app, { coin: "ETH", network: "ethereum", amount: "0.5" });
    const busy = await createTestInvoice(app, { coin: "ETH", network: "ethereum", amount: "1" });
    assert.notEqual(busy.address, first.address, "an address held is not given out");
    const pool = await listPoolAddresses(app.kv, app.shop.id);
    assert.deepEqual(pool.map((a) => a.heldBy).sort(), [first.id, busy.id].sort(), "a new address joins the pool held");
    await chain.deposit(first.address, "500000000000000000", undefined, "ETH");
    await chain.mine(24, "ethereum");
    await waitStatus(app, first.id, "finished");
    const next = await createTestInvoice(app, { coin: "ETH", network: "ethereum", amount: "2" });
    assert.equal(next.address, first.address);
    assert.equal((await readInvoice(app, next.id)).paidAmount, "0", "the earlier invoice's money is not counted");

    assert.equal((await cancelInvoiceCall(app, busy.id)).status, 200);
    const after = await createTestInvoice(app, { coin: "USDT", network: "ethereum", amount: "5" });
    assert.equal(after.address, busy.address, "addresses are per network, whatever the coin");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] an address showing too many transfers for the chain's answer leaves the pool when its invoice closes, so no later invoice holds an address it cannot read", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    await chain.knobs({ dropNotices: true });
    const worn = await createTestInvoice(app);
    // Transfers only pile up at a reused address (buyers' payments, strangers' dust); past MAX_DEPOSITS_SHOWN the
    // chain's answer about it is refused, and an invoice there could never be read, paid or expired.
    for (let i = 0; i < ADDRESS_RETIRES_AT; i++) await chain.deposit(worn.address, "1");
    assert.equal((await cancelInvoiceCall(app, worn.id)).status, 200);
    const next = await createTestInvoice(app);
    assert.notEqual(next.address, worn.address, "a new address, not the worn one");
    const [pool] = await describePool(app.server.ctx, app.shop.id);
    assert.deepEqual(pool.retired.map((a) => a.address), [worn.address]);
    assert.deepEqual([pool.free.length, pool.resting.length], [0, 0]);
    // Late money there is still its last invoice's.
    const late = await chain.deposit(worn.address, "5000000");
    await syncInvoice(app.server.ctx, worn.id);
    const closed = await readInvoice(app, worn.id);
    assert.ok(closed.deposits.some((d: { txid: string; late: boolean }) => d.txid === late.txid && d.late));
    // An address with fewer goes back to the pool as before.
    assert.equal((await cancelInvoiceCall(app, next.id)).status, 200);
    assert.equal((await createTestInvoice(app)).address, next.address);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] an address that gets too many transfers while it rests leaves the pool when its invoice's read finds them, before any invoice takes it", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off", INVOICE_ADDRESS_REST_S: "3600" } });
  try {
    const chain = chainApi(app);
    const other = await createTestInvoice(app);
    const first = await createTestInvoice(app);
    assert.equal((await cancelInvoiceCall(app, other.id)).status, 200);
    assert.equal((await cancelInvoiceCall(app, first.id)).status, 200);
    // Dust sent while it rests, its notices lost: the read as the rest ends is the first to see it.
    await chain.knobs({ dropNotices: true });
    for (let i = 0; i < ADDRESS_RETIRES_AT; i++) await chain.deposit(first.address, "1");
    advanceClock(app, 3_600_000);
    // An invoice made just before that read takes the address that rested longest; this process keeps the worn one's
    // free marker listed for its next pick.
    assert.equal((await createTestInvoice(app)).address, other.address);
    await app.server.runner.sweep();
    const [pool] = await describePool(app.server.ctx, app.shop.id);
    assert.deepEqual(pool.retired.map((a) => a.address), [first.address]);
    assert.deepEqual([pool.free.length, pool.resting.length], [0, 0]);
    assert.notEqual((await createTestInvoice(app)).address, first.address, "a new address, not the worn one");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] an invoice expires at expiresAt unless money arrived, and a late deposit is recorded and shown", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  const shop = startShopReceiver();
  try {
    const chain = chainApi(app);
    const idle = await createTestInvoice(app, { expiresIn: 60, postbackUrl: shop.url });
    const paying = await createTestInvoice(app, { expiresIn: 60 });
    await chain.deposit(paying.address, "1000000");
    await waitStatus(app, paying.id, "payment_confirmation");

    shiftClock(app, 61_000);
    await app.server.runner.sweep();
    const expired = await readInvoice(app, idle.id);
    assert.equal(expired.status, "expired");
    assert.equal((await readInvoice(app, paying.id)).status, "payment_confirmation", "money arrived: no expiry");
    const pool = await listPoolAddresses(app.kv, app.shop.id);
    assert.equal(pool.find((a) => a.address === idle.address)?.heldBy, null, "its address is free again");
    await waitFor("the expired postback", () => postbacksOf(app, shop.received, idle.id)[0]);
    assert.equal(postbacksOf(app, shop.received, idle.id)[0].type, "invoice.expired");

    await chain.deposit(idle.address, "12500000");
    const late = await waitFor("the late deposit", async () => {
      const inv = await readInvoice(app, idle.id);
      return inv.deposits.length ? inv : undefined;
    });
    assert.equal(late.status, "expired", "late money does not reopen the invoice");
    assert.equal(late.lateAmount, "12.5");
    assert.equal(late.paidAmount, "0");
    assert.equal(late.deposits[0].late, true);
    // The buyer's page shows it too.
    const page = await (await fetch(late.checkoutUrl)).text();
    assert.match(page, /12\.5 USDT came too late to count for this invoice, which expired/);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[invoices] a lost notice changes nothing: the polling job finds the deposit and its confirmations", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const chain = chainApi(app);
    await chain.knobs({ dropNotices: true });
    const created = await createTestInvoice(app);
    await chain.deposit(created.address, "12500000");
    await chain.mine(40, "tron");
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await readInvoice(app, created.id)).status, "waiting_for_deposit", "no notice came");
    shiftClock(app, app.config.chainPollMs + 1000);
    await app.server.runner.sweep();
    const inv = await readInvoice(app, created.id);
    assert.equal(inv.status, "finished");
    assert.equal(inv.paidAmount, "12.5");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] the shop's id or an Idempotency-Key names one invoice: a retry answers it, another body is refused, racing copies make one", async () => {
  const app = await startTestApp();
  try {
    const body = invoiceBody({ id: "order-1" });
    const first = await callCreateInvoice(app, body);
    assert.equal(first.status, 201);
    const again = await callCreateInvoice(app, body);
    assert.equal(again.status, 200);
    assert.equal(again.body.invoice.id, first.body.invoice.id);
    const other = await callCreateInvoice(app, { ...body, amount: "13" });
    assert.equal(other.status, 422);
    assert.equal(other.body.error.code, "idempotency_mismatch");
    assert.equal(other.body.error.message, "This id was already used for an invoice with different details.");

    const keyed = await Promise.all(
      Array.from({ length: 5 }, () => callCreateInvoice(app, invoiceBody(), { headers: { "idempotency-key": "k-1" } })),
    );
    assert.equal(new Set(keyed.map((r) => r.body.invoice.id)).size, 1);
    assert.deepEqual(keyed.map((r) => r.status).sort(), [200, 200, 200, 200, 201]);
    const keyReused = await callCreateInvoice(app, invoiceBody({ amount: "13" }), {
      headers: { "idempotency-key": "k-1" },
    });
    assert.equal(keyReused.status, 422);
    assert.equal(
      keyReused.body.error.message,
      "This Idempotency-Key was already used for an invoice with different details.",
    );
    const pool = await listPoolAddresses(app.kv, app.shop.id);
    assert.equal(pool.filter((a) => a.heldBy !== null).length, 2, "the losing copies hold no address");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] bad input gets a clear error and changes nothing", async () => {
  const app = await startTestApp();
  try {
    const cases: [unknown, string][] = [
      [invoiceBody({ network: "bitcoin" }), "network"],
      [invoiceBody({ amount: "12.1234567" }), "amount"],
      [invoiceBody({ amount: 12.5 }), "amount"],
      [invoiceBody({ amount: "0" }), "amount"],
      [invoiceBody({ amount: "1e3" }), "amount"],
      [invoiceBody({ coin: "DOGE" }), "coin"],
      [invoiceBody({ expiresIn: 10 }), "expiresIn"],
      [invoiceBody({ postbackUrl: "ftp://example.com/x" }), "postbackUrl"],
      [invoiceBody({ extra: 1 }), "extra"],
      [invoiceBody({ email: "not an email" }), "email"],
    ];
    for (const [body, field] of cases) {
      const res = await callCreateInvoice(app, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, "invalid_request");
      assert.ok(res.body.error.fields[field], `${JSON.stringify(body)}: ${JSON.stringify(res.body.error.fields)}`);
      // In the product's words, never zod's own ("Too small: expected number to be >=60").
      for (const message of Object.values<string>(res.body.error.fields)) {
        assert.doesNotMatch(message, /Too (small|big)|Invalid (input|option|email)|expected \w+,? (to|received)/);
      }
    }
    const says: [Record<string, unknown>, string, string][] = [
      [{ expiresIn: 30 }, "expiresIn", "must be at least 60 seconds"],
      [{ expiresIn: 2_592_001 }, "expiresIn", "must be at most 2592000 seconds (30 days)"],
      [{ expiresIn: 90.5 }, "expiresIn", "must be a whole number of seconds"],
      [{ coin: 5 }, "coin", "must be a string"],
      [{ network: undefined }, "network", "is required"],
      [{ title: "x".repeat(201) }, "title", "must be at most 200 characters long"],
      [{ id: "" }, "id", "must not be empty"],
      [{ email: "not an email" }, "email", "must be an email address, such as name@example.com"],
    ];
    for (const [change, field, message] of says) {
      const res = await callCreateInvoice(app, invoiceBody(change));
      assert.equal(res.body.error.fields[field], message, JSON.stringify(change));
    }
    // Each amount is told what is wrong with it.
    const amountSays: [unknown, RegExp][] = [
      ["-1", /more than zero/],
      ["00012", /not start with a 0/],
      ["1".repeat(31), /too large: at most 30 digits/],
      [12.5, /never a JSON number/],
      ["12.1234567", /at most 6 decimals/],
    ];
    for (const [amount, says] of amountSays) {
      const res = await callCreateInvoice(app, invoiceBody({ amount }));
      assert.match(res.body.error.fields.amount, says, String(amount));
    }
    const longKey = await callCreateInvoice(app, invoiceBody(), { headers: { "idempotency-key": "k".repeat(256) } });
    assert.equal(longKey.status, 400);
    assert.ok(longKey.body.error.fields["Idempotency-Key"], JSON.stringify(longKey.body.error.fields));
    assert.equal((await callCreateInvoice(app, null, { raw: "{not json" })).status, 400);
    assert.equal((await callCreateInvoice(app, invoiceBody(), { key: "sk_wrong" })).status, 401);
    const unknown = await fetch(`${app.baseUrl}/api/v1/invoices/inv_${"x".repeat(22)}`, {
      headers: { authorization: `Bearer ${app.shop.apiKey}` },
    });
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
    assert.equal((await listPoolAddresses(app.kv, app.shop.id)).length, 0, "no address was made");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a request with several bad fields names each of them at once, the coin's decimals too", async () => {
  const app = await startTestApp();
  try {
    const cases: [Record<string, unknown>, Record<string, RegExp>][] = [
      [{ coin: "DOGE", network: "tron", amount: "0" }, {
        coin: /must be one of USDT, BTC, ETH/,
        amount: /more than zero/,
      }],
      [
        { coin: "DOGE", network: "solana", amount: "-1", title: 5 },
        { coin: /one of/, network: /must be one of bitcoin, ethereum, tron/, amount: /more than zero/, title: /./ },
      ],
      [{ coin: 5, network: "tron", amount: "abc" }, { coin: /./, amount: /a decimal string such as "12.50"/ }],
      [{ coin: "BTC", network: "tron", amount: "0" }, {
        network: /one we take for the coin/,
        amount: /more than zero/,
      }],
      // Another field's failure does not keep the coin's decimals from being judged.
      [
        { coin: "btc", network: "bitcoin", amount: "0.123456789", email: "x", title: 5 },
        { amount: /at most 8 decimals/, email: /./, title: /./ },
      ],
    ];
    for (const [body, says] of cases) {
      const res = await callCreateInvoice(app, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      const fields = res.body.error.fields;
      assert.deepEqual(Object.keys(fields).sort(), Object.keys(says).sort(), JSON.stringify({ body, fields }));
      for (const [field, re] of Object.entries(says)) {
        assert.match(fields[field], re, `${JSON.stringify(body)} ${field}`);
      }
    }
    assert.equal((await listPoolAddresses(app.kv, app.shop.id)).length, 0, "no address was made");
    // The rules between fields run whatever else failed, also on a body that is no object (below the route's check).
    for (const body of [null, [], "x"]) assert.throws(() => parseOrThrow(createInvoiceSchema, body), ValidationError);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a request's bad URLs are named with the fields the schema refuses, and with each other, without asking DNS; a stored invoice's retry is still answered", async (t) => {
  const lookups: string[] = [];
  const app = await startTestApp({
    allowedHosts: ["127.0.0.1", "shop.example"],
    resolve: (host) => (lookups.push(host), Promise.resolve(["93.184.216.34"])),
  });
  try {
    const cases: [string, Record<string, unknown>, Record<string, string>][] = [
      [
        "a bad amount and an ftp returnUrl",
        { amount: "0", returnUrl: "ftp://x", postbackUrl: "https://shop.example/hooks" },
        { amount: "must be more than zero", returnUrl: "must be an absolute http or https URL" },
      ],
      [
        "an unknown coin and a postback URL off the allowed hosts",
        { coin: "DOGE", postbackUrl: "https://evil.example/hooks" },
        {
          coin: "must be one of USDT, BTC, ETH",
          postbackUrl: "host evil.example is not in the shop's allowed hosts",
        },
      ],
      [
        "a returnUrl off the allowed hosts and a postback URL with credentials",
        { returnUrl: "https://evil.example/back", postbackUrl: "https://u:p@shop.example/hooks" },
        {
          returnUrl: "host evil.example is not in the shop's allowed hosts",
          postbackUrl: "must not contain credentials",
        },
      ],
    ];
    for (const [name, extra, fields] of cases) {
      await t.step(name, async () => {
        const res = await callCreateInvoice(app, invoiceBody(extra));
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, "invalid_request");
        assert.deepEqual(res.body.error.fields, fields);
      });
    }
    assert.deepEqual(lookups, [], "no request refused anyway asked DNS for its postback host");
    assert.equal((await listPoolAddresses(app.kv, app.shop.id)).length, 0, "no address was made");

    await t.step("a stored invoice's retry is answered though the shop's hosts changed", async () => {
      const body = invoiceBody({
        id: "order-kept",
        returnUrl: "https://shop.example/back",
        postbackUrl: "https://shop.example/hooks",
      });
      const made = await callCreateInvoice(app, body);
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const { updateShopSettings } = await import("../lib/shops.ts");
      await updateShopSettings(app.kv, app.shop.id, {
        name: "Test shop",
        allowedHosts: ["127.0.0.1"],
        defaultPostbackUrl: null,
      }, { actor: "test", allowLocalUrls: true, now: Date.now(), resolve: () => Promise.resolve(["127.0.0.1"]) });
      const retry = await callCreateInvoice(app, body);
      assert.equal(retry.status, 200, JSON.stringify(retry.body));
      assert.equal(retry.body.invoice.id, made.body.invoice.id);
      const fresh = await callCreateInvoice(app, { ...body, id: "order-new" });
      assert.equal(fresh.status, 400, JSON.stringify(fresh.body));
      assert.deepEqual(Object.keys(fresh.body.error.fields).sort(), ["postbackUrl", "returnUrl"]);
    });
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] the merchant cancels an open invoice; a paid one cannot be cancelled; another shop's is not found", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    const open = await createTestInvoice(app);
    const cancelled = await cancelInvoiceCall(app, open.id);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.invoice.status, "cancelled");
    assert.equal((await cancelInvoiceCall(app, open.id)).status, 200, "cancelling twice answers the same");

    const paid = await createTestInvoice(app);
    await chain.deposit(paid.address, "12500000");
    await chain.mine(20, "tron");
    await waitStatus(app, paid.id, "payment_accepted");
    const refused = await cancelInvoiceCall(app, paid.id);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, "invoice_not_cancellable");

    // Paid in full at the chain with every notice lost: the cancel reads the chain first and refuses.
    await chain.knobs({ dropNotices: true });
    const quiet = await createTestInvoice(app);
    await chain.deposit(quiet.address, "12500000");
    await chain.mine(20, "tron");
    assert.equal((await readInvoice(app, quiet.id)).status, "waiting_for_deposit");
    assert.equal((await cancelInvoiceCall(app, quiet.id)).status, 409);
    assert.equal((await readInvoice(app, quiet.id)).status, "payment_accepted");

    const { createShop } = await import("../lib/shops.ts");
    const other = await createShop(app.kv, { name: "Other", allowedHosts: [] }, {
      allowLocalUrls: true,
      now: Date.now(),
    });
    assert.equal((await cancelInvoiceCall(app, paid.id, other.apiKey)).status, 404);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a chain notice with a bad signature is refused and changes nothing", async () => {
  const app = await startTestApp();
  try {
    const inv = await createTestInvoice(app);
    const body = JSON.stringify({
      eventId: "e1",
      network: "tron",
      address: inv.address,
      txid: "ab",
      confirmations: 50,
    });
    const res = await fetch(`${app.baseUrl}/api/chain-notify`, {
      method: "POST",
      headers: { "chain-signature": signChainNotice("wrong-secret", Math.floor(Date.now() / 1000), body) },
      body,
    });
    assert.equal(res.status, 401);
    await res.body?.cancel();
    assert.equal((await readInvoice(app, inv.id)).status, "waiting_for_deposit");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] GET /api/v1/options lists the coins and networks invoices take", async () => {
  const app = await startTestApp();
  try {
    const res = await fetch(`${app.baseUrl}/api/v1/options`, {
      headers: { authorization: `Bearer ${app.shop.apiKey}` },
    });
    const body = await res.json();
    const usdt = body.crypto.coins.find((c: { id: string }) => c.id === "USDT");
    assert.deepEqual(usdt.networks.map((n: { id: string; decimals: number }) => [n.id, n.decimals]), [
      ["tron", 6],
      ["ethereum", 6],
    ]);
    const btc = body.crypto.coins.find((c: { id: string }) => c.id === "BTC");
    assert.deepEqual(btc.networks, [{ id: "bitcoin", label: "Bitcoin", decimals: 8, confirmations: 3 }]);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] the built-in chain simulator takes deposits and blocks without a token, as sandbox.md shows; new addresses need it", async () => {
  const app = await startTestApp();
  try {
    const inv = await createTestInvoice(app);
    const chain = `${app.baseUrl}/sandbox/chain`;
    const post = (path: string, body: unknown) =>
      fetch(chain + path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const deposit = await post("/deposits", { address: inv.address, amount: "12500000" });
    assert.equal(deposit.status, 201);
    assert.equal((await deposit.json()).confirmations, 0);
    assert.equal((await post("/mine", { blocks: 40, network: "tron" })).status, 200);
    await waitStatus(app, inv.id, "finished");
    const state = await (await fetch(`${chain}/addresses/tron/${inv.address}`)).json();
    assert.equal(state.deposits[0].confirmations, 40);
    const refused = await post("/addresses", { network: "tron" });
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    const unknown = await post("/deposits", { address: "Tnope", amount: "1" });
    assert.equal(unknown.status, 404);
    await unknown.body?.cancel();
  } finally {
    await app.close();
  }
});

Deno.test("[docs] the Invoices page draws its coin and status tables from the lists the code runs on", async () => {
  const app = await startTestApp();
  try {
    const html = await (await fetch(`${app.baseUrl}/docs/invoices`)).text();
    for (const s of ["waiting_for_deposit", "invoice.payment_accepted", "payment_confirmation"]) {
      assert.ok(html.includes(`<code>${s}</code>`), s);
    }
    assert.match(
      html,
      /<td><code>USDT<\/code> <span>\(Tether USD \(TRC-20\)\)<\/span><\/td><td><code>tron<\/code><\/td><td>6<\/td><td>20<\/td><td>about a minute<\/td><td>40<\/td>/,
    );
    assert.match(html, /<td><code>bitcoin<\/code><\/td><td>8<\/td><td>3<\/td><td>about 30 minutes<\/td>/);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a restarted chain simulator still reads and takes deposits to the addresses it made before", () => {
  const before = new ChainSimulator({ apiToken: "t", webhookSecret: "s" });
  const after = new ChainSimulator({ apiToken: "t", webhookSecret: "s" });
  try {
    for (const network of ["bitcoin", "ethereum", "tron"] as const) {
      const address = before.createAddress(network);
      assert.deepEqual(after.addressState(address), { network, address, height: 0, deposits: [] }, network);
      assert.ok(after.deposit(address, 5n), network);
      after.mine(1, network);
      assert.equal(after.addressState(address)!.deposits[0].confirmations, 1);
    }
    assert.equal(after.addressState("Tnope"), null, "a string of no network's shape is no address");
  } finally {
    before.close();
    after.close();
  }
});

Deno.test("[invoices] next to a real provider without CHAIN_* settings, invoices are off and no chain simulator is served", async () => {
  const app = await startTestApp({ standaloneSandbox: true });
  try {
    assert.equal(app.server.ctx.chain, undefined);
    const res = await callCreateInvoice(app, invoiceBody());
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, "invoices_unavailable");
    const simulator = await fetch(`${app.baseUrl}/sandbox/chain/mine`, { method: "POST", body: '{"blocks":1}' });
    assert.equal(simulator.status, 404, "nobody can make up deposits next to real money");
    await simulator.body?.cancel();
    assert.match(app.server.integrations.chain, /^off/);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] invoices at once with one free address: one takes it, the others get new ones", async () => {
  // A KV file, as deployed: reads (the list of free addresses) do not wait for the commit taking the address.
  const dir = await Deno.makeTempDir({ prefix: "aimbrella-one-free-" });
  const app = await startTestApp({ kvPath: `${dir}/kv.sqlite3`, env: { RATE_LIMIT_PER_MINUTE: "10000" } });
  try {
    const first = await createTestInvoice(app);
    assert.equal((await cancelInvoiceCall(app, first.id)).status, 200);
    const results = await Promise.all(Array.from({ length: 8 }, () => callCreateInvoice(app, invoiceBody())));
    for (const r of results) assert.equal(r.status, 201, JSON.stringify(r.body));
    const addresses = results.map((r) => r.body.invoice.address);
    assert.equal(new Set(addresses).size, addresses.length);
    assert.ok(addresses.includes(first.address), "the free address is reused");
  } finally {
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[invoices] a retry of a stored invoice answers it even when its own try fails early", async () => {
  const app = await startTestApp({ resolve: () => Promise.resolve(["93.184.216.34"]) });
  try {
    const body = invoiceBody({ id: `retry-${crypto.randomUUID()}`, postbackUrl: "https://shop.example/hooks" });
    const created = await callCreateInvoice(app, body);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    // The shop's postback host no longer resolves: a new invoice is refused, the stored one is still answered.
    app.server.ctx.resolve = () => Promise.resolve([]);
    assert.equal((await callCreateInvoice(app, { ...body, id: `other-${crypto.randomUUID()}` })).status, 400);
    const retry = await callCreateInvoice(app, body);
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal(retry.body.invoice.id, created.body.invoice.id);
    assert.equal(retry.body.invoice.address, created.body.invoice.address);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a link to no invoice tells the buyer what happened and not to pay without their invoice's page", async () => {
  const app = await startTestApp();
  try {
    // Unknown, and cut short in an email (not even an invoice id's shape).
    for (const path of [`/invoices/inv_${"A".repeat(22)}`, "/invoices/inv_AAAAAAAA", "/invoices/inv_AAAAAAAA/more"]) {
      const res = await fetch(app.baseUrl + path);
      assert.equal(res.status, 404, path);
      const html = await res.text();
      assert.match(html, /<h1>Invoice not found<\/h1>/, path);
      assert.match(html, /Check that you opened the whole link the shop gave you/, path);
      assert.match(html, /Do not send any money without a page that shows your invoice/, path);
      assert.doesNotMatch(html, /Unknown invoice|<h1>Not found/, path);
    }
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] an address whose invoice lookups keep missing is refused for the minute; found ones never count", async () => {
  const app = await startTestApp({ env: { RATE_LIMIT_UNAUTHENTICATED_PER_MINUTE: "3" } });
  try {
    const inv = await createTestInvoice(app);
    // One minute's window for the whole test, wherever the clock stands.
    const pinned = Date.now() - (Date.now() % 60_000) + 1_000;
    app.server.ctx.now = () => pinned;
    const status = (id: string) =>
      fetch(`${app.baseUrl}/invoices/${id}/status`).then(async (r) => (await r.body?.cancel(), r.status));
    for (let i = 0; i < 5; i++) {
      assert.equal(await status(inv.id), 200, "a buyer polling their invoice is never held back");
    }
    const unknown = "inv_" + "A".repeat(22);
    for (let i = 0; i < 3; i++) assert.equal(await status(unknown), 404);
    assert.equal(await status(unknown), 429);
    assert.equal(await status(inv.id), 429, "refused whatever it asks for, until the minute is over");
    for (const path of [`/invoices/${unknown}`, `/forms/form_${"A".repeat(22)}`]) {
      const page = await fetch(app.baseUrl + path);
      await page.body?.cancel();
      assert.equal(page.status, 429, `${path}: one counter for the public pages`);
    }
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] dozens of dust deposits confirming at once neither freeze the invoice nor hide the real payment", async () => {
  const app = await startTestApp({ env: { LOG_LEVEL: "error" } });
  try {
    const chain = chainApi(app);
    const created = await createTestInvoice(app, { coin: "USDT", network: "tron", amount: "1" });
    // Anyone can send to the address the checkout page shows: 120 deposits of a millionth each, confirmed at once.
    for (let i = 0; i < 120; i++) await chain.deposit(created.address, "1");
    await chain.mine(20, "tron");
    const dusted = await waitFor("the dust confirmed", async () => {
      const inv = await readInvoice(app, created.id);
      return inv.deposits.length > 0 && inv.deposits.every((d: { confirmations: number }) => d.confirmations >= 19)
        ? inv
        : undefined;
    });
    // Listed up to the dust line; the rest of the list is kept for deposits worth hearing of.
    assert.equal(dusted.deposits.length, 80);
    assert.equal(dusted.status, "partially_paid");
    await chain.deposit(created.address, "1000000"); // the buyer's 1 USDT
    await chain.mine(20, "tron");
    const paid = await waitStatus(app, created.id, "payment_accepted");
    assert.equal(paid.deposits.length, 81);
    assert.equal(paid.paidAmount, "1.00008");
    assert.equal((await cancelInvoiceCall(app, created.id)).status, 409);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] money seen after expiresAt is late, even before the sweep has expired the invoice", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  const shop = startShopReceiver();
  try {
    const chain = chainApi(app);
    // Made two minutes ago (our clock) with a minute to live: expired a minute ago, and no sweep has run since.
    shiftClock(app, -120_000);
    const idle = await createTestInvoice(app, { expiresIn: 60, postbackUrl: shop.url });
    shiftClock(app, 0);
    assert.equal((await readInvoice(app, idle.id)).status, "waiting_for_deposit");

    await chain.deposit(idle.address, "12500000");
    await chain.mine(20, "tron");
    const late = await waitFor("the late deposit", async () => {
      const inv = await readInvoice(app, idle.id);
      return inv.deposits.length ? inv : undefined;
    });
    assert.equal(late.status, "expired");
    assert.equal(late.deposits[0].late, true);
    assert.equal(late.lateAmount, "12.5");
    assert.equal(late.paidAmount, "0");
    // Expired, and the late money (confirmed: 20 blocks) announced: in one write or two, each postback once.
    await waitFor("both postbacks", () => postbacksOf(app, shop.received, idle.id)[1]);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(postbacksOf(app, shop.received, idle.id).map((b) => b.type).sort(), [
      "invoice.expired",
      "invoice.late_payment",
    ]);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[invoices] an invoice whose full payment is still confirming cannot be cancelled; a partial one can", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    const full = await createTestInvoice(app, { coin: "USDT", network: "tron", amount: "3" });
    await chain.deposit(full.address, "3000000");
    await waitStatus(app, full.id, "payment_confirmation");
    const refused = await cancelInvoiceCall(app, full.id);
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, "invoice_not_cancellable");
    assert.match(refused.body.error.message, /waiting for their confirmations/);
    await chain.mine(20, "tron");
    await waitStatus(app, full.id, "payment_accepted");
    assert.match((await cancelInvoiceCall(app, full.id)).body.error.message, /^A payment_accepted invoice/);

    const partial = await createTestInvoice(app, { coin: "USDT", network: "tron", amount: "3" });
    await chain.deposit(partial.address, "1000000");
    await waitStatus(app, partial.id, "payment_confirmation");
    const cancelled = await cancelInvoiceCall(app, partial.id);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.invoice.status, "cancelled");
    // What was still confirming at the cancel is late money: what the cancelled invoice says was paid stays put.
    assert.equal(cancelled.body.invoice.pendingAmount, "0");
    assert.equal(cancelled.body.invoice.lateAmount, "1");
    await chain.mine(20, "tron");
    await waitFor("the late deposit's confirmations", async () => {
      const inv = await readInvoice(app, partial.id);
      return inv.deposits[0].confirmations >= 20 ? inv : undefined;
    });
    assert.equal((await readInvoice(app, partial.id)).paidAmount, "0");

    // A payment the chain no longer shows (dropped, double-spent) holds nothing open once it is gone for the grace
    // (one read without it is not enough): then the cancel goes through.
    const dropping = await createTestInvoice(app, { coin: "USDT", network: "tron", amount: "3" });
    await chain.deposit(dropping.address, "3000000");
    const seen = await waitStatus(app, dropping.id, "payment_confirmation");
    const client = app.server.ctx.chain!;
    const getAddress = client.getAddress.bind(client);
    client.getAddress = async (network, address) => {
      const state = await getAddress(network, address);
      return { ...state, deposits: state.deposits.filter((d) => d.txid !== seen.deposits[0].txid) };
    };
    assert.equal((await cancelInvoiceCall(app, dropping.id)).status, 409, "missing from one read");
    advanceClock(app, DROP_GRACE_MS);
    const gone = await cancelInvoiceCall(app, dropping.id);
    assert.equal(gone.status, 200, JSON.stringify(gone.body));
    assert.equal(gone.body.invoice.status, "cancelled");
    client.getAddress = getAddress;
    shiftClock(app, 0);

    const idle = await expiredInvoice(app);
    assert.match((await cancelInvoiceCall(app, idle.id)).body.error.message, /^An expired invoice/);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] the buyer's email, when the shop gives it, is kept on the invoice and in its postbacks", async () => {
  const app = await startTestApp();
  const shop = startShopReceiver();
  try {
    const created = await callCreateInvoice(app, invoiceBody({ email: "buyer@example.com", postbackUrl: shop.url }));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    InvoiceResponse.strict().parse(created.body);
    assert.equal(created.body.invoice.email, "buyer@example.com");
    const cancelled = await cancelInvoiceCall(app, created.body.invoice.id);
    assert.equal(cancelled.body.invoice.email, "buyer@example.com");
    const postback = await waitFor("the postback", () => postbacksOf(app, shop.received, created.body.invoice.id)[0]);
    InvoicePostbackBody.parse(postback);
    assert.equal(postback.data.email, "buyer@example.com");
    const without = await createTestInvoice(app);
    assert.equal(without.email, null);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[invoices] a retry that writes the same amount or coin otherwise is the same request", async () => {
  const app = await startTestApp();
  try {
    const first = await callCreateInvoice(app, invoiceBody({ amount: "12.50", id: "order-17" }));
    assert.equal(first.status, 201);
    for (const retry of [{ amount: "12.5" }, { amount: "12.500" }, { coin: "usdt", network: "Tron" }]) {
      const again = await callCreateInvoice(app, invoiceBody({ amount: "12.50", id: "order-17", ...retry }));
      assert.equal(again.status, 200, JSON.stringify([retry, again.body]));
      assert.equal(again.body.invoice.id, first.body.invoice.id);
    }
    // Another amount is another request, also one written in base units (the stored fingerprint's own form).
    for (const amount of ["12.51", "12500000"]) {
      const other = await callCreateInvoice(app, invoiceBody({ amount, id: "order-17" }));
      assert.equal(other.status, 422, amount);
      assert.equal(other.body.error.code, "idempotency_mismatch");
    }
    // An invoice stored before (its fingerprint the body as sent) still answers the same retry.
    const legacyBody = invoiceBody({ amount: "3.10", id: "order-18" });
    const legacy = await callCreateInvoice(app, legacyBody);
    const stored = (await getInvoiceEntry(app.kv, legacy.body.invoice.id)).value!;
    const sentHash = sha256Hex(JSON.stringify(createInvoiceSchema.parse(legacyBody)));
    await app.kv.set(["invoices", stored.id], { ...stored, requestHash: sentHash });
    assert.equal((await callCreateInvoice(app, legacyBody)).status, 200);
    const keyed = { "idempotency-key": "k-7" };
    assert.equal((await callCreateInvoice(app, invoiceBody({ amount: "7.5" }), { headers: keyed })).status, 201);
    assert.equal((await callCreateInvoice(app, invoiceBody({ amount: "7.50" }), { headers: keyed })).status, 200);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] money the chain saw past expiresAt by its own clock, while ours has not reached it, is on time", () => {
  const inv = {
    id: "inv_x",
    status: "waiting_for_deposit",
    coin: "USDT",
    network: "tron",
    amount: "1000000",
    deposits: [],
    expiresAt: 1_000,
    checkAt: 1_000,
    createdAt: 0,
  } as unknown as Invoice;
  const state = {
    network: "tron",
    address: "T1",
    height: 1,
    deposits: [{ txid: "t1", coin: "USDT", amount: "1000000", confirmations: 0, seenAt: 1_001 }],
  } as AddressState;
  const before = decideFromChain(inv, { state, at: 999 }, ALL_TIME, 999, 30_000)!;
  assert.equal(before.to, "payment_confirmation");
  assert.equal(before.patch!.deposits![0].late, false);
  // Once our clock has passed it too, the same deposit is late and the invoice expires.
  const after = decideFromChain(inv, { state, at: 1_001 }, ALL_TIME, 1_001, 30_000)!;
  assert.equal(after.to, "expired");
  assert.equal(after.patch!.deposits![0].late, true);
});

Deno.test("[invoices] a deposit dropped from the chain before its confirmations stops counting: the buyer is asked again, a rebroadcast counts again", async () => {
  const app = await startTestApp();
  const shop = startShopReceiver();
  try {
    const { chain, created, sent } = await confirmingInvoice(app, { postbackUrl: shop.url });

    // Missing from the chain's reads for DROP_GRACE_MS, it is dropped.
    await dropFromChain(app, created.id, sent.txid);
    let inv = await readInvoice(app, created.id);
    assert.equal(inv.status, "waiting_for_deposit");
    assert.equal(inv.pendingAmount, "0");
    assert.deepEqual(inv.deposits.map((d: { txid: string; dropped: boolean }) => [d.txid, d.dropped]), [[
      sent.txid,
      true,
    ]]);
    const types = await waitFor("two postbacks", () => {
      const got = postbacksOf(app, shop.received, created.id).map((b) => b.type);
      return got.length >= 2 ? got : undefined;
    });
    assert.deepEqual(types, ["invoice.payment_confirmation", "invoice.waiting_for_deposit"]);
    for (const p of postbacksOf(app, shop.received, created.id)) InvoicePostbackBody.strict().parse(p);
    // The buyer's page asks for the whole amount again and says why.
    const status = await (await fetch(`${app.baseUrl}/invoices/${created.id}/status`)).json();
    assert.equal(status.dueAmount, "3");
    assert.equal(status.droppedAmount, "3");
    const page = await (await fetch(created.checkoutUrl)).text();
    assert.match(page, /3 USDT sent here was dropped by the network before it was confirmed/);
    assert.match(page, /<title>Pay 3 USDT · AimbrellaPay<\/title>/);

    // The same transaction shown again (rebroadcast) counts again, and confirms.
    await chain.deposit(created.address, "3000000", sent.txid);
    inv = await waitStatus(app, created.id, "payment_confirmation");
    assert.equal(inv.deposits.length, 1);
    assert.equal(inv.deposits[0].dropped, false);
    await chain.mine(20, "tron");
    inv = await waitStatus(app, created.id, "payment_accepted");
    assert.equal(inv.paidAmount, "3");
    // The buyer's tab no longer asks to pay.
    assert.match(await (await fetch(created.checkoutUrl)).text(), /<title>Payment received · AimbrellaPay<\/title>/);

    // A mined deposit cannot be dropped; an unknown one is not found.
    const mined = await fetch(`${app.server.ctx.chain!.settings.apiUrl}/drop`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ txid: sent.txid }),
    });
    assert.equal(mined.status, 409, await mined.text());
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[invoices] a payment dropped and sent again under its txid with less money pays only what the chain shows now", async () => {
  const app = await startTestApp();
  try {
    const { chain, created, sent } = await confirmingInvoice(app);
    // The sandbox lets a sender name the txid: the whole payment is taken back and one base unit sent in its name.
    await chain.drop(sent.txid);
    await chain.deposit(created.address, "1", sent.txid);
    await chain.mine(40, "tron");
    const inv = await waitFor("the chain's amount", async () => {
      const read = await readInvoice(app, created.id);
      return read.deposits[0]?.amount === "0.000001" && read.deposits[0].confirmed ? read : undefined;
    });
    assert.equal(inv.status, "partially_paid");
    assert.equal(inv.paidAmount, "0.000001", "what the chain shows, never what an earlier read did");
    assert.equal(inv.deposits[0].late, false);
    // Other coins' transfers, listed for the shop to return, follow the chain the same way.
    const eth = await createTestInvoice(app, { coin: "USDT", network: "ethereum", amount: "3" });
    const big = await chain.deposit(eth.address, "5000000000000000000", undefined, "ETH");
    await waitFor("the ETH listed", async () => (await readInvoice(app, eth.id)).otherCoinDeposits.length || undefined);
    await chain.drop(big.txid);
    await chain.deposit(eth.address, "1", big.txid, "ETH");
    await waitFor("the ETH as the chain shows it", async () => {
      const read = await readInvoice(app, eth.id);
      return read.otherCoinDeposits[0].amount === "0.000000000000000001" ? read : undefined;
    });
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a deposit the chain shows again with another amount counts as the chain shows it, judged as money arriving now", () => {
  // A chain service whose first sighting of a pending transfer was short: the whole payment, shown in time, counts.
  const short = { txid: "t1", amount: "400000", confirmations: 0, seenAt: 100, late: false, inTime: true };
  const pending = invoiceOf({ status: "partially_paid", deposits: [short] });
  const grown = decideAt(pending, [{ ...short, amount: "1000000" }], 500)!;
  assert.equal(grown.to, "payment_confirmation");
  assert.deepEqual(
    grown.patch!.deposits!.map(({ amount, late }) => ({ amount, late })),
    [{ amount: "1000000", late: false }],
  );
  // Seen in full, then one base unit under its name: one base unit is what counts.
  const full = { ...short, amount: "1000000" };
  const shrunk = decideAt(
    invoiceOf({ status: "payment_confirmation", deposits: [full] }),
    [{ ...full, amount: "1" }],
    500,
  )!;
  assert.equal(shrunk.patch!.deposits![0].amount, "1");
  assert.equal(shrunk.to, "payment_confirmation", "one base unit still confirming");
  // A hundredth sent before expiresAt holds the invoice open; the whole amount in its name after expiresAt is late.
  const hold = { ...short, amount: "10000" };
  const afterExpiry = 1_000 + 300_000;
  const raised = decideAt(
    invoiceOf({ status: "payment_confirmation", deposits: [hold] }),
    [{ ...hold, amount: "1000000", seenAt: afterExpiry - 60_000 }],
    afterExpiry,
  )!;
  assert.equal(raised.to, "expired");
  assert.equal(raised.patch!.deposits![0].late, true, "never at the old price");
  // Closed, it is late money as shown.
  const closed = decideAt(invoiceOf({ status: "expired", deposits: [{ ...hold, late: true }] }), [full], 500)!;
  assert.deepEqual(
    closed.patch!.deposits!.map(({ amount, late }) => ({ amount, late })),
    [{ amount: "1000000", late: true }],
  );
});

/** An invoice of a minute made and expired by the sweep, our clock left a minute ahead (the chain's is not). */
async function expiredInvoice(app: TestApp, fields: Record<string, unknown> = {}) {
  const inv = await createTestInvoice(app, { ...fields, expiresIn: 60 });
  shiftClock(app, 61_000);
  await app.server.runner.sweep();
  return inv;
}

/** The next invoice at a freed address (a few ms on, so the chain's times tell the two invoices apart). */
async function nextHolder(app: TestApp, address: string, overrides: Record<string, unknown> = {}) {
  await new Promise((r) => setTimeout(r, 5));
  const next = await createTestInvoice(app, overrides);
  assert.equal(next.address, address, "the freed address is reused");
  return next;
}

/**
 * An invoice (expiring in a minute, notices lost so polling decides) whose deposit was seen on time and dropped by
 * the chain after expiresAt, with the sweeps that follow.
 */
async function droppedPastExpiry(app: TestApp) {
  const chain = chainApi(app);
  await chain.knobs({ dropNotices: true });
  const created = await createTestInvoice(app, { expiresIn: 60 });
  const sent = await chain.deposit(created.address, "12500000");
  shiftClock(app, app.config.chainPollMs + 1000);
  await app.server.runner.sweep();
  assert.equal((await readInvoice(app, created.id)).status, "payment_confirmation");
  await dropFromChain(app, created.id, sent.txid); // past expiresAt by then
  return { chain, created, sent };
}

Deno.test("[invoices] an invoice whose only deposit was dropped after expiresAt expires, and its address is free again", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    // Past expiresAt the invoice stays open while its money confirms; once the chain drops it, polling expires it.
    const { created } = await droppedPastExpiry(app);
    const inv = await readInvoice(app, created.id);
    assert.equal(inv.status, "expired");
    assert.equal(inv.deposits[0].dropped, true);
    assert.equal(inv.lateAmount, "0", "dropped money is not late money");
    const pool = await listPoolAddresses(app.kv, app.shop.id);
    assert.equal(pool.find((a) => a.address === created.address)?.heldBy, null);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] an invoice finishes once every deposit it counts is final, so invoice.finished carries the whole overpayment", async () => {
  const app = await startTestApp();
  const shop = startShopReceiver();
  try {
    const chain = chainApi(app);
    const created = await createTestInvoice(app, {
      coin: "BTC",
      network: "bitcoin",
      amount: "0.001",
      postbackUrl: shop.url,
    });
    await chain.deposit(created.address, "100000");
    await chain.mine(3, "bitcoin");
    await waitStatus(app, created.id, "payment_accepted");
    await chain.deposit(created.address, "20000"); // 0.0002 BTC more than asked, still open: counted
    await chain.mine(3, "bitcoin"); // the first deposit is final (6), the second has 3
    await waitFor("the second deposit's confirmations", async () => {
      const inv = await readInvoice(app, created.id);
      return inv.deposits[1]?.confirmations === 3 ? inv : undefined;
    });
    assert.equal((await readInvoice(app, created.id)).status, "payment_accepted", "the overpayment is not final yet");
    await chain.mine(3, "bitcoin");
    const inv = await waitStatus(app, created.id, "finished");
    assert.equal(inv.overpaidAmount, "0.0002");
    const finished = await waitFor(
      "the finished postback",
      () => postbacksOf(app, shop.received, created.id).find((b) => b.type === "invoice.finished"),
    );
    assert.equal(finished.data.overpaidAmount, "0.0002");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[invoices] late money the chain then drops is no longer shown as arrived", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    const inv = await expiredInvoice(app, { coin: "USDT", network: "tron", amount: "3" });
    assert.equal((await readInvoice(app, inv.id)).status, "expired");
    const late = await chain.deposit(inv.address, "3000000");
    await waitFor("the late deposit", async () => (await readInvoice(app, inv.id)).lateAmount === "3" || undefined);
    // Closed, the invoice is still read while a deposit it lists is not final: the drop reaches it.
    await dropFromChain(app, inv.id, late.txid);
    const after = await readInvoice(app, inv.id);
    assert.equal(after.deposits[0].dropped, true);
    assert.equal(after.lateAmount, "0");
    assert.equal(after.status, "expired");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a dropped deposit shown again after the invoice closed is late money, and counts on one invoice only", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const { chain, created: first, sent } = await droppedPastExpiry(app);
    assert.equal((await readInvoice(app, first.id)).status, "expired");

    // Shown again while the address is free: the closed invoice's, and late. (Our clock back beside the chain's,
    // whose notices are signed with its time.)
    shiftClock(app, 0);
    await chain.knobs({ dropNotices: false });
    await chain.deposit(first.address, "12500000", sent.txid);
    const back = await waitFor("shown again", async () => {
      const i = await readInvoice(app, first.id);
      return i.deposits[0].dropped === false ? i : undefined;
    });
    assert.equal(back.status, "expired");
    assert.equal(back.paidAmount, "0");
    assert.equal(back.lateAmount, "12.5");
    assert.equal(back.deposits[0].late, true);

    // Dropped again, the address taken by the next invoice, then shown again with a time in the new invoice's
    // window: it is still the first buyer's money (the first invoice listed it), so the first invoice has it back
    // as late money, and the new invoice, whose buyer paid nothing, counts none of it.
    await dropFromChain(app, first.id, sent.txid);
    assert.equal((await readInvoice(app, first.id)).deposits[0].dropped, true, "dropped again");
    shiftClock(app, 0); // our clock back beside the chain's, which tells the two invoices' time apart
    const second = await nextHolder(app, first.address);
    await new Promise((r) => setTimeout(r, 5));
    await chain.deposit(first.address, "12500000", sent.txid);
    await chain.mine(20, "tron");
    const old = await waitFor("back on the first invoice", async () => {
      const i = await readInvoice(app, first.id);
      return i.deposits[0].dropped === false && i.deposits[0].confirmations >= 20 ? i : undefined;
    });
    assert.equal(old.status, "expired");
    assert.equal(old.lateAmount, "12.5");
    assert.equal(old.paidAmount, "0");
    // The new invoice reads the address too (its poll), and lists nothing.
    advanceClock(app, app.config.chainPollMs + 1000);
    await app.server.runner.sweep();
    const taken = await readInvoice(app, second.id);
    assert.equal(taken.status, "waiting_for_deposit");
    assert.deepEqual(taken.deposits, []);
    assert.equal(taken.paidAmount, "0");
  } finally {
    await app.close();
  }
});

/** A paid invoice as decideFromChain sees it, for the cases below. */
const invoiceOf = (over: Partial<Invoice>) =>
  storedInvoice(0, {
    id: "inv_x",
    status: "payment_accepted",
    amount: "1000000",
    expiresAt: 1_000,
    checkAt: 1_000,
    ...over,
  });

/** The chain's answer for a USDT invoice's address (the coin is what the invoices here are for, unless given). */
const chainShowing = (
  deposits: (Omit<AddressState["deposits"][number], "coin"> & { coin?: string })[],
): AddressState => ({
  network: "tron",
  address: "T1",
  height: 100,
  deposits: deposits.map((d) => ({ coin: "USDT", ...d })),
});

/** What the invoice's poll decides on a read of `shown` asked for and answered at `at`, with no claims yet. */
const decideAt = (inv: Invoice, shown: Parameters<typeof chainShowing>[0], at: number) =>
  decideFromChain(inv, { state: chainShowing(shown), at }, ALL_TIME, at, 30_000);

Deno.test("[invoices] finishing waits for no unconfirmed deposit, nor for a confirmed one gone from the chain, only for confirmed ones still shown", () => {
  const paid = { txid: "t1", amount: "1000000", confirmations: 40, seenAt: 1, late: false };
  const decide = (deposits: Invoice["deposits"], shown: Parameters<typeof chainShowing>[0]) =>
    decideAt(invoiceOf({ deposits }), shown, 10_000)!;
  // A stranger's dust with too low a fee (updateInvoice makes it late as the invoice closes).
  const dust = { txid: "dust", amount: "1", confirmations: 0, seenAt: 2, late: false };
  assert.equal(decide([paid, dust], [{ ...paid, confirmations: 400 }, dust]).to, "finished");

  // A confirmed extra deposit reorganised away before it was final: kept and counted; waited for no more once the
  // chain has not shown it for the grace (one read without it is not enough).
  const extra = { txid: "t2", amount: "5", confirmations: 25, seenAt: 2, late: false };
  const gone = decide([paid, extra], [{ ...paid, confirmations: 400 }]);
  assert.equal(gone.to, "payment_accepted", "one read");
  assert.equal(gone.patch!.deposits![1].dropped, undefined, "confirmed money is not dropped");
  assert.equal(gone.patch!.deposits![1].missingSince, 10_000);
  const later = 10_000 + DROP_GRACE_MS;
  const still = decideFromChain(
    invoiceOf({ deposits: gone.patch!.deposits! }),
    { state: chainShowing([{ ...paid, confirmations: 400 }]), at: later },
    ALL_TIME,
    later,
    30_000,
  )!;
  assert.equal(still.to, "finished");

  // One still shown on its way to final holds the finish: its amount is part of what invoice.finished says.
  assert.equal(
    decide([paid, extra], [{ ...paid, confirmations: 400 }, { ...extra, confirmations: 30 }]).to,
    "payment_accepted",
  );
});

Deno.test("[invoices] one read without a deposit is not a drop: only one missing for the grace is (a lagging node, a reorganisation undone)", () => {
  const pending = { txid: "t1", amount: "1000000", confirmations: 0, seenAt: 1, late: false };
  // Past expiresAt, confirming: one read lacks it.
  const inv = invoiceOf({ status: "payment_confirmation", deposits: [pending] });
  const first = decideAt(inv, [], 10_000)!;
  assert.equal(first.to, "payment_confirmation", "not expired on one read");
  const missing = { ...inv, deposits: first.patch!.deposits! };
  // Shown again: nothing happened.
  const back = decideAt(missing, [pending], 40_000)!;
  assert.equal(back.patch!.deposits![0].missingSince, undefined);
  assert.equal(back.to, "payment_confirmation");
  // Still missing past the grace: dropped, and the invoice, past expiresAt with nothing else, expires.
  const later = 10_000 + DROP_GRACE_MS;
  const gone = decideFromChain(
    missing,
    { state: chainShowing([]), at: later },
    ALL_TIME,
    later,
    30_000,
  )!;
  assert.equal(gone.patch!.deposits![0].dropped, true);
  assert.equal(gone.to, "expired");
});

Deno.test("[invoices] past expiresAt a stranger's dust does not hold the invoice open, and expiry is judged on a read made after expiresAt", () => {
  const dust = { txid: "dust", amount: "9999", confirmations: 0, seenAt: 500, late: false };
  const confirming = invoiceOf({ status: "payment_confirmation", deposits: [dust] });
  const expired = decideAt(confirming, [dust], 2_000)!;
  assert.equal(expired.to, "expired", "under a hundredth of the amount");
  // Nothing seen, but the read was asked for before expiresAt: a payment made just before may not show yet.
  const idle = invoiceOf({ status: "waiting_for_deposit", deposits: [] });
  const early = decideFromChain(idle, { state: chainShowing([]), at: 990 }, ALL_TIME, 1_005, 30_000)!;
  assert.equal(early.to, "waiting_for_deposit");
});

Deno.test("[invoices] a chain read crossed by another write to the invoice is read again, not applied", async () => {
  const app = await startTestApp();
  try {
    const { created, sent } = await confirmingInvoice(app);
    const client = app.server.ctx.chain!;
    const getAddress = client.getAddress.bind(client);
    let reads = 0;
    client.getAddress = async (network, address) => {
      const state = await getAddress(network, address);
      // The first read is overtaken: another write lands on the invoice while it is on its way.
      if (++reads === 1) await updateInvoice(app.server.ctx, created.id, () => ({ events: [], patch: {} }));
      return state;
    };
    await syncInvoice(app.server.ctx, created.id);
    assert.equal(reads, 2, "asked again beside the newer version");
    client.getAddress = getAddress;
    assert.equal((await readInvoice(app, created.id)).deposits[0].txid, sent.txid);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] once a replacement for a dropped transfer is on its way, the buyer's page no longer asks again", async () => {
  const app = await startTestApp();
  try {
    const { chain, created, sent } = await confirmingInvoice(app);
    await dropFromChain(app, created.id, sent.txid);
    assert.equal((await readInvoice(app, created.id)).status, "waiting_for_deposit");
    assert.match(await (await fetch(created.checkoutUrl)).text(), /was dropped by the network/);
    await chain.deposit(created.address, "3000000"); // the buyer's wallet sends it again, with a higher fee
    await waitStatus(app, created.id, "payment_confirmation");
    assert.doesNotMatch(await (await fetch(created.checkoutUrl)).text(), /was dropped by the network/);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a closed invoice is read while its late money confirms, also once its address has moved on twice, and no more once it is final", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const chain = chainApi(app);
    const first = await expiredInvoice(app);
    shiftClock(app, 0);
    await chain.deposit(first.address, "12500000");
    await waitFor(
      "the late deposit",
      async () => (await readInvoice(app, first.id)).lateAmount === "12.5" || undefined,
    );
    const watched = (await getInvoiceEntry(app.kv, first.id)).value!;
    assert.notEqual(watched.checkAt, null, "read for its late money's news");
    // The address moves on twice: the invoice is no longer its holder nor the one before.
    for (let i = 0; i < 2; i++) {
      const next = await nextHolder(app, first.address);
      assert.equal((await cancelInvoiceCall(app, next.id)).status, 200);
    }
    // The chain's notices of the blocks (sent in their own time) read the address too, and a sweep whose write such a
    // read overtakes leaves the invoice to the next read: sweep until a read shows the blocks.
    const readAfterBlocks = (confirmations: number) =>
      waitFor(`a read showing ${confirmations} confirmations`, async () => {
        await app.server.runner.sweep();
        const inv = (await getInvoiceEntry(app.kv, first.id)).value!;
        return inv.deposits[0].confirmations === confirmations ? inv : undefined;
      });
    // Its late money is still its own (its claim), and still confirming: read on.
    await chain.mine(5, "tron");
    advanceClock(app, app.config.chainPollMs + 1000);
    const still = await readAfterBlocks(5);
    assert.notEqual(still.checkAt, null);
    // Final (twice the network's confirmations): nothing left to watch.
    await chain.mine(40, "tron");
    advanceClock(app, app.config.chainPollMs + 1000);
    const done = await readAfterBlocks(45);
    assert.equal(done.checkAt, null);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a late deposit rebroadcast in the next invoice's time, within the drop grace, stays the first invoice's", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const chain = chainApi(app);
    const first = await createTestInvoice(app, { coin: "USDT", network: "tron", amount: "10" });
    const sent = await chain.deposit(first.address, "5000000");
    await waitStatus(app, first.id, "payment_confirmation");
    assert.equal((await cancelInvoiceCall(app, first.id)).status, 200); // still confirming: late money on it now
    await chain.drop(sent.txid);
    await waitFor("missing", async () => {
      const d = (await getInvoiceEntry(app.kv, first.id)).value!.deposits[0];
      return d.missingSince !== undefined || undefined;
    });
    const second = await nextHolder(app, first.address, { coin: "USDT", network: "tron", amount: "10" });
    await new Promise((r) => setTimeout(r, 5));
    await chain.deposit(first.address, "5000000", sent.txid); // rebroadcast, seen in the second invoice's time
    await waitFor("shown again on the first invoice", async () => {
      const d = (await getInvoiceEntry(app.kv, first.id)).value!.deposits[0];
      return d.missingSince === undefined || undefined;
    });
    advanceClock(app, DROP_GRACE_MS + app.config.chainPollMs + 1000);
    await app.server.runner.sweep();
    const old = await readInvoice(app, first.id);
    assert.equal(old.deposits[0].dropped, false, "still on the chain, and the first invoice's");
    assert.equal(old.lateAmount, "5");
    const second2 = await readInvoice(app, second.id);
    assert.equal(second2.status, "waiting_for_deposit");
    assert.equal(second2.pendingAmount, "0");
    assert.deepEqual(second2.deposits, []);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a node a block behind does not move a deposit's confirmations back, nor the status", () => {
  const half = { txid: "t1", amount: "500000", confirmations: 21, seenAt: 1, late: false };
  const inv = invoiceOf({ status: "partially_paid", expiresAt: 1_000_000, deposits: [half] });
  const behind = decideAt({ ...inv, checkAt: 0 }, [{ ...half, confirmations: 19 }], 10_000)!;
  assert.equal(behind.to, "partially_paid");
  assert.equal(behind.patch!.deposits![0].confirmations, 21);
});

Deno.test("[invoices] an invoice whose whole payment was reorganised away after it was confirmed finishes past the grace, instead of staying open for good", () => {
  const paid = { txid: "t1", amount: "1000000", confirmations: 25, seenAt: 1, late: false };
  const first = decideAt(invoiceOf({ deposits: [paid] }), [], 10_000)!;
  assert.equal(first.to, "payment_accepted");
  const later = 10_000 + DROP_GRACE_MS;
  const settled = decideFromChain(
    invoiceOf({ deposits: first.patch!.deposits! }),
    { state: chainShowing([]), at: later },
    ALL_TIME,
    later,
    30_000,
  )!;
  assert.equal(settled.to, "finished");
  assert.equal(settled.patch!.deposits![0].dropped, undefined, "still counted: confirmed money is taken as settled");
});

Deno.test("[invoices] a stranger's dust before expiresAt does not let a payment made after it count at the old price; the buyer still sees the deadline", () => {
  const dust = { txid: "dust", amount: "10", confirmations: 0, seenAt: 500, late: false };
  const payment = { txid: "pay", amount: "1000000", confirmations: 0, seenAt: 1_000 + 240_000 };
  const inv = invoiceOf({ status: "waiting_for_deposit", deposits: [] });
  const decided = decideFromChain(
    inv,
    { state: chainShowing([dust, payment]), at: 1_000 + 300_000 },
    ALL_TIME,
    1_000 + 300_000,
    30_000,
  )!;
  assert.equal(decided.to, "expired");
  assert.equal(decided.patch!.deposits!.find((d) => d.txid === "pay")!.late, true);
  // Before expiresAt, with only dust arrived, the page still counts down.
  const confirming = invoiceOf({ status: "payment_confirmation", expiresAt: 10_000, deposits: [dust] });
  assert.equal(buyerStatusView(confirming, 5_000).expires, true);
  const paying = invoiceOf({
    status: "payment_confirmation",
    expiresAt: 10_000,
    deposits: [{ ...payment, seenAt: 500, late: false }],
  });
  assert.equal(buyerStatusView(paying, 5_000).expires, false, "a real payment on its way keeps it open");
});

Deno.test("[invoices] a payment listed before our expiresAt stays on time, whatever time the chain's clock gave it", () => {
  // The chain's clock runs ahead: a payment our read saw before our expiresAt carries a later time.
  const payment = { txid: "pay", amount: "1000000", confirmations: 0, seenAt: 1_000 + 30_000 };
  const before = decideAt(invoiceOf({ status: "waiting_for_deposit", deposits: [] }), [payment], 900)!;
  assert.equal(before.to, "payment_confirmation");
  const after = decideAt(invoiceOf({ status: "payment_confirmation", deposits: before.patch!.deposits!, checkAt: 0 }), [
    { ...payment, confirmations: 1 },
  ], 100_000)!;
  assert.equal(after.to, "payment_confirmation");
  assert.equal(after.patch!.deposits![0].late, false);
  // Paid in full, it can no longer expire: polled at the usual pace, and the buyer sees no countdown.
  const paid = invoiceOf({ status: "payment_accepted", deposits: [{ ...payment, confirmations: 20, late: false }] });
  const polled = decideAt({ ...paid, checkAt: 0 }, [{ ...payment, confirmations: 21 }], 400_000)!;
  assert.equal(polled.patch!.checkAt, 430_000);
  assert.equal(buyerStatusView(paid, 400_000).expires, false);
});

Deno.test("[invoices] money listed after expiresAt while other money held the invoice open is late once that money is dropped", () => {
  const holder = { txid: "a", amount: "10000", confirmations: 0, seenAt: 500, late: false, inTime: true };
  const after = { txid: "b", amount: "1000000", confirmations: 0, seenAt: 5_000, late: false, inTime: false };
  const missing = { ...holder, missingSince: 10_000 };
  const later = 10_000 + DROP_GRACE_MS;
  const decided = decideFromChain(
    invoiceOf({ status: "payment_confirmation", deposits: [missing, after], checkAt: 0 }),
    { state: chainShowing([{ ...after }]), at: later },
    ALL_TIME,
    later,
    30_000,
  )!;
  assert.equal(decided.to, "expired");
  assert.equal(decided.patch!.deposits!.find((d) => d.txid === "b")!.late, true);
});

Deno.test("[invoices] a read asked before expiresAt but answered after it does not make later money on time", () => {
  const payment = { txid: "pay", amount: "1000000", confirmations: 0, seenAt: 5_000 };
  const first = decideFromChain(
    invoiceOf({ status: "waiting_for_deposit", deposits: [] }),
    { state: chainShowing([payment]), at: 999, answeredAt: 6_000 },
    ALL_TIME,
    6_000,
    30_000,
  )!;
  assert.equal(first.patch!.deposits![0].inTime, false);
  const next = decideAt(
    invoiceOf({ status: first.to!, deposits: first.patch!.deposits!, checkAt: 0 }),
    [payment],
    40_000,
  )!;
  assert.equal(next.to, "expired");
  assert.equal(next.patch!.deposits![0].late, true);
});

Deno.test("[invoices] a deposit stored before arrival times were recorded keeps counting as in time", () => {
  // Listed by a read before our expiresAt, with the chain's clock ahead (seenAt past expiresAt), and no inTime.
  const stored = { txid: "pay", amount: "1000000", confirmations: 0, seenAt: 1_030, late: false };
  const decided = decideAt(invoiceOf({ status: "payment_confirmation", deposits: [stored], checkAt: 0 }), [{
    ...stored,
    confirmations: 1,
  }], 100_000)!;
  assert.equal(decided.to, "payment_confirmation");
  assert.equal(decided.patch!.deposits![0].late, false);
});

Deno.test("[invoices] a confirmed deposit the chain shows again with a time in the next invoice's window counts on the invoice that listed it only", () => {
  // Re-mined after a reorganisation: the chain's first-seen time moved into the next invoice's window.
  const paid = { txid: "t1", amount: "1000000", confirmations: 25, seenAt: 1, late: false };
  const remined = { ...paid, confirmations: 3, seenAt: 50_000 };
  const first = invoiceOf({ id: "inv_first", status: "payment_accepted", deposits: [paid] });
  const next = invoiceOf({ id: "inv_next", status: "waiting_for_deposit", deposits: [], createdAt: 40_000 });
  const claimedBy = new Map([["t1", "inv_first"]]);
  // The first invoice keeps it, as shown (no missing mark: it is still the first's money, and on the chain).
  const kept = decideFromChain(
    first,
    { state: chainShowing([remined]), at: 60_000 },
    { window: { from: 0, until: 40_000 }, claimedBy },
    60_000,
    30_000,
  );
  assert.equal(kept?.patch?.deposits?.[0].missingSince, undefined);
  assert.equal(kept?.to ?? first.status, "payment_accepted");
  // The next invoice, whose window the chain's time falls in, does not list it.
  const other = decideFromChain(
    { ...next, expiresAt: 100_000, checkAt: 60_000 },
    { state: chainShowing([remined]), at: 60_000 },
    { window: { from: 40_000, until: null }, claimedBy },
    60_000,
    30_000,
  );
  assert.deepEqual(other?.patch?.deposits ?? [], []);
  assert.equal(other?.to ?? "waiting_for_deposit", "waiting_for_deposit");
  // Unclaimed (listed before claims existed), the window decides, as it did.
  const legacy = decideFromChain(
    { ...next, expiresAt: 100_000, checkAt: 60_000 },
    { state: chainShowing([remined]), at: 60_000 },
    { window: { from: 40_000, until: null }, claimedBy: new Map() },
    60_000,
    30_000,
  )!;
  assert.equal(legacy.patch!.deposits!.length, 1);
  assert.deepEqual(legacy.claims, ["t1"], "claimed as it is listed");
});

Deno.test("[invoices] one write claims at most MAX_CLAIMS_PER_WRITE new deposits; the rest are listed by the next poll, at once, and nothing expires meanwhile", () => {
  const inv = invoiceOf({ status: "waiting_for_deposit", deposits: [], expiresAt: 1_000, checkAt: 1_000 });
  // Seen after expiresAt, so none holds the invoice open: whether it expires waits for all of them to be listed.
  const shown = Array.from({ length: MAX_CLAIMS_PER_WRITE + 5 }, (_, i) => ({
    txid: `t${i}`,
    amount: "10000",
    confirmations: 0,
    seenAt: 1_500 + i,
  }));
  const first = decideAt(inv, shown, 2_000)!;
  assert.equal(first.patch!.deposits!.length, MAX_CLAIMS_PER_WRITE);
  assert.equal(first.claims!.length, MAX_CLAIMS_PER_WRITE);
  assert.equal(first.to, "waiting_for_deposit", "some of the read's deposits are not listed yet: nothing decided");
  assert.ok(first.patch!.checkAt! <= 2_000, "polled again at once");
  const listed = { ...inv, deposits: first.patch!.deposits! };
  const claimedBy = new Map(first.claims!.map((txid) => [txid, inv.id]));
  const second = decideFromChain(
    listed,
    { state: chainShowing(shown), at: 2_100 },
    { ...ALL_TIME, claimedBy },
    2_100,
    30_000,
  )!;
  assert.equal(second.patch!.deposits!.length, MAX_CLAIMS_PER_WRITE + 5);
  assert.deepEqual(second.claims, shown.slice(MAX_CLAIMS_PER_WRITE).map((d) => d.txid));
  assert.equal(second.to, "expired");
  assert.ok(second.patch!.deposits!.every((d) => d.late));
});

Deno.test("[invoices] a stranger's dust cannot push a payment past the claim cap: money over the dust line is listed first", () => {
  // The chain's clock runs ahead of ours: the payment is seen at 1_005 by its clock, before 1_000 by ours.
  const inv = invoiceOf({ status: "waiting_for_deposit", deposits: [], expiresAt: 1_000, checkAt: 990 });
  const dust = Array.from({ length: MAX_CLAIMS_PER_WRITE + 10 }, (_, i) => ({
    txid: `d${i}`,
    amount: "1",
    confirmations: 0,
    seenAt: 100 + i,
  }));
  const payment = { txid: "pay", amount: "1000000", confirmations: 0, seenAt: 1_005 };
  const read = { state: chainShowing([...dust, payment]), at: 990, answeredAt: 995 };
  const decided = decideFromChain(inv, read, ALL_TIME, 995, 30_000)!;
  const pay = decided.patch!.deposits!.find((d) => d.txid === "pay");
  assert.equal(pay?.inTime, true, "listed by the read answered before expiresAt");
  assert.equal(decided.to, "payment_confirmation");
  const seen = decided.patch!.deposits!.map((d) => d.seenAt);
  assert.deepEqual(seen, [...seen].sort((a, b) => a - b), "listed oldest first");
});

Deno.test("[invoices] a transaction the chain lists twice at an address is listed once", () => {
  const inv = invoiceOf({ status: "waiting_for_deposit", deposits: [], expiresAt: 100_000, checkAt: 1_000 });
  const shown = { txid: "t1", amount: "600000", confirmations: 0, seenAt: 500 };
  const decided = decideAt(inv, [shown, { ...shown }], 1_000)!;
  assert.equal(decided.patch!.deposits!.length, 1);
  assert.deepEqual(decided.claims, ["t1"]);
  assert.equal(decided.to, "payment_confirmation");
});

Deno.test("[invoices] a dropped payment rebroadcast when its address has moved on twice comes back to the invoice that listed it", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const { chain, created: first, sent } = await droppedPastExpiry(app);
    assert.equal((await readInvoice(app, first.id)).status, "expired");
    shiftClock(app, 0);
    await chain.knobs({ dropNotices: false });
    const second = await nextHolder(app, first.address);
    assert.equal((await cancelInvoiceCall(app, second.id)).status, 200);
    const third = await nextHolder(app, first.address);
    await new Promise((r) => setTimeout(r, 5));
    await chain.deposit(first.address, "12500000", sent.txid); // rebroadcast: its notice names the first's claim
    await chain.mine(20, "tron");
    const back = await waitFor("back on the first invoice", async () => {
      const i = await readInvoice(app, first.id);
      return i.deposits[0].dropped === false ? i : undefined;
    });
    assert.equal(back.lateAmount, "12.5");
    advanceClock(app, app.config.chainPollMs + 1000);
    await app.server.runner.sweep();
    assert.deepEqual((await readInvoice(app, third.id)).deposits, [], "not the third buyer's");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a rebroadcast whose notice is lost comes back to the invoice that listed it by that invoice's poll", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const { chain, created: first, sent } = await droppedPastExpiry(app); // notices lost from here on
    shiftClock(app, 0);
    const second = await nextHolder(app, first.address);
    await new Promise((r) => setTimeout(r, 5));
    await chain.deposit(first.address, "12500000", sent.txid); // rebroadcast, its notice lost
    await chain.mine(20, "tron");
    // Past the first invoice's next poll (set while our clock ran ahead, for the drop).
    advanceClock(app, 3 * (DROP_GRACE_MS + app.config.chainPollMs + 1000));
    await app.server.runner.sweep();
    assert.deepEqual((await readInvoice(app, second.id)).deposits, []);
    const back = await readInvoice(app, first.id);
    assert.equal(back.deposits[0].dropped, false);
    assert.equal(back.lateAmount, "12.5");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] two invoices of one address cannot both claim a transaction: the later write is stale and changes nothing", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const first = await createTestInvoice(app);
    assert.equal((await cancelInvoiceCall(app, first.id)).status, 200);
    const second = await nextHolder(app, first.address);
    const claim = (): InvoiceChange => ({ events: [], patch: { checkAt: null }, claims: ["t1"] });
    assert.equal((await updateInvoice(app.server.ctx, first.id, claim)).outcome, "applied");
    const entry = await getInvoiceEntry(app.kv, second.id);
    const lost = await updateInvoice(app.server.ctx, second.id, claim, { basedOn: entry.versionstamp! });
    assert.equal(lost.outcome, "stale");
    assert.equal((await getInvoiceEntry(app.kv, second.id)).versionstamp, entry.versionstamp, "nothing written");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a read asked before expiresAt and answered after it moves nothing on money that may be late: the next read, at once, decides", () => {
  const inv = invoiceOf({ status: "waiting_for_deposit", deposits: [], expiresAt: 1_000, checkAt: 1_000 });
  // The chain saw the payment after expiresAt; our read was asked just before and answered just after.
  const payment = { txid: "pay", amount: "1000000", confirmations: 0, seenAt: 1_005 };
  const straddling = decideFromChain(
    inv,
    { state: chainShowing([payment]), at: 995, answeredAt: 1_010 },
    ALL_TIME,
    1_010,
    30_000,
  )!;
  assert.equal(straddling.to, "waiting_for_deposit", "no payment_confirmation postback to take back");
  assert.equal(straddling.patch!.deposits![0].inTime, false);
  assert.ok(straddling.patch!.checkAt! <= 1_010, "read again at once");
  const next = decideAt({ ...inv, deposits: straddling.patch!.deposits! }, [payment], 1_020)!;
  assert.equal(next.to, "expired");
  assert.equal(next.patch!.deposits![0].late, true);
});

Deno.test("[invoices] rebroadcasts of money earlier invoices listed cannot keep the next one from expiring: their claims do not use up what one sync reads", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const chain = chainApi(app);
    await chain.knobs({ dropNotices: true });
    let address = "";
    // Two invoices in a row each list (and claim) 80 dust transactions, which are then dropped.
    for (const tag of ["a", "b"]) {
      const inv = address ? await nextHolder(app, address) : await createTestInvoice(app);
      address = inv.address;
      for (let i = 0; i < 80; i++) await chain.deposit(address, "1", `${tag}${i}`);
      await syncInvoice(app.server.ctx, inv.id);
      assert.equal((await getInvoiceEntry(app.kv, inv.id)).value!.deposits.length, 80, "listed and claimed");
      for (let i = 0; i < 80; i++) await chain.drop(`${tag}${i}`);
      assert.equal((await cancelInvoiceCall(app, inv.id)).status, 200);
    }
    const next = await nextHolder(app, address, { expiresIn: 60 });
    await new Promise((r) => setTimeout(r, 5));
    // All 160 sent again (same transactions, new times: the next invoice's window).
    for (const tag of ["a", "b"]) for (let i = 0; i < 80; i++) await chain.deposit(address, "1", `${tag}${i}`);
    shiftClock(app, 2 * 60_000);
    await app.server.runner.sweep();
    const stored = (await getInvoiceEntry(app.kv, next.id)).value!;
    assert.equal(stored.status, "expired");
    assert.deepEqual(stored.deposits, [], "none of it is the next buyer's");
    const pool = await listPoolAddresses(app.kv, app.shop.id);
    assert.equal(pool.find((a) => a.address === address)?.heldBy, null, "its address is free again");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] dropped deposits take none of the list's places: deposits taken back cannot crowd out a payment", () => {
  // 80 dust listed, then 20 over the dust line the sender double-spent back (dropped): 100 listed, nothing counted.
  const filler = Array.from({ length: MAX_DEPOSITS_PER_INVOICE }, (_, i) => ({
    txid: `f${i}`,
    amount: i < DUST_LISTED_UP_TO ? "1" : "10000",
    confirmations: 0,
    seenAt: 100 + i,
    late: false,
    inTime: true,
    ...(i < DUST_LISTED_UP_TO ? {} : { dropped: true }),
  }));
  const inv = invoiceOf({ status: "waiting_for_deposit", deposits: filler, expiresAt: 100_000, checkAt: 100_000 });
  const shown = filler.filter((d) => !d.dropped).map(({ txid, amount, confirmations, seenAt }) => ({
    txid,
    amount,
    confirmations,
    seenAt,
  }));
  const payment = { txid: "pay", amount: "1000000", confirmations: 3, seenAt: 50_000 }; // in time, confirming
  const claimedBy = new Map(filler.map((d) => [d.txid, inv.id]));
  const decide = (deposits: Invoice["deposits"]) =>
    decideFromChain(
      { ...inv, deposits },
      { state: chainShowing([...shown, payment]), at: 100_500 },
      { ...ALL_TIME, claimedBy },
      100_500,
      30_000,
    )!;
  const decided = decide(filler);
  const listed = decided.patch!.deposits!;
  assert.equal(listed.length, MAX_DEPOSITS_PER_INVOICE + 1, "the dropped ones stay listed");
  assert.ok(listed.some((d) => d.txid === "pay" && d.inTime && !d.late));
  assert.equal(decided.to, "payment_confirmation");
  // The record's size stays bounded: with MAX_LISTED_WITH_DROPPED listed, the oldest dropped one gives its place up to
  // the payment (its claim stays: shown again, it is listed again), so dropped ones cannot keep a payment off it.
  const more = Array.from({ length: MAX_LISTED_WITH_DROPPED - MAX_DEPOSITS_PER_INVOICE }, (_, i) => ({
    ...filler[MAX_DEPOSITS_PER_INVOICE - 1],
    txid: `g${i}`,
  }));
  const full = decide([...filler, ...more]);
  const kept = full.patch!.deposits!;
  assert.equal(kept.length, MAX_LISTED_WITH_DROPPED);
  assert.ok(kept.some((d) => d.txid === "pay" && d.inTime && !d.late));
  assert.equal(kept.some((d) => d.txid === filler[DUST_LISTED_UP_TO].txid), false, "the oldest dropped one gave way");
  assert.equal(full.to, "payment_confirmation");
  // Dropped ones give way; live ones do not: with MAX_DEPOSITS_PER_INVOICE of them listed, nothing more is.
  const live = Array.from({ length: MAX_LISTED_WITH_DROPPED }, (_, i) => ({ ...filler[0], txid: `h${i}` }));
  assert.equal(
    decide(live).patch?.deposits?.some((d) => d.txid === "pay") ?? false,
    false,
  );
});

Deno.test("[invoices] a dropped deposit whose place was given up, shown again once the next invoice holds the address, comes back to its invoice as late money", async () => {
  // A full record of dropped deposits: the oldest gives its place up to a new one, and the record says it gave one up.
  const dropped = Array.from({ length: MAX_LISTED_WITH_DROPPED }, (_, i) => ({
    txid: `d${i}`,
    amount: "1000000",
    confirmations: 0,
    seenAt: 100 + i,
    late: false,
    inTime: true,
    dropped: true,
  }));
  const open = invoiceOf({ status: "waiting_for_deposit", deposits: dropped, expiresAt: 100_000, checkAt: 100_000 });
  const gaveUp = decideFromChain(
    open,
    { state: chainShowing([{ txid: "new", amount: "1000000", confirmations: 0, seenAt: 1_000 }]), at: 1_500 },
    { ...ALL_TIME, claimedBy: new Map(dropped.map((d) => [d.txid, open.id])) },
    1_500,
    30_000,
  )!;
  assert.equal(gaveUp.patch!.deposits!.some((d) => d.txid === "d0"), false, "d0 gave its place up");
  assert.equal(gaveUp.patch!.depositsGivenUp, true);
  // Closed since, and the next invoice took the address at 5,000; d0 is rebroadcast then, its claim still this one's.
  const closed: Invoice = {
    ...open,
    ...gaveUp.patch!,
    status: "expired",
    deposits: gaveUp.patch!.deposits!.map((d) => ({ ...d, late: true })),
  };
  const read = { state: chainShowing([{ txid: "d0", amount: "1000000", confirmations: 1, seenAt: 6_000 }]), at: 7_000 };
  const window = { from: 0, until: 5_000 };
  const kv = await Deno.openKv(":memory:");
  try {
    // The claims listing made (depositClaimKey), d0's kept when it gave its place up.
    for (const txid of ["d0", ...closed.deposits.map((d) => d.txid)]) {
      await kv.set(["invoice_deposit_claims", closed.network, closed.address, txid], closed.id);
    }
    const { claimedBy, unread } = await readClaims(kv, closed, read, window);
    assert.equal(claimedBy.get("d0"), closed.id);
    const back = decideFromChain(closed, read, { window, claimedBy, unread }, 7_000, 30_000)!;
    const d0 = back.patch!.deposits!.find((d) => d.txid === "d0");
    assert.deepEqual(d0 && { amount: d0.amount, late: d0.late }, { amount: "1000000", late: true });
    assert.equal(back.to, undefined, "a closed invoice moves nowhere");
    // Two holders back (no window), it still comes back by its claim.
    const farBack = decideFromChain(closed, read, { window: null, claimedBy, unread }, 7_000, 30_000)!;
    assert.ok(farBack.patch!.deposits!.some((d) => d.txid === "d0" && d.late));
    // Another coin's transfer it gave up (a record with room by now) comes back alike, to be returned.
    const roomy = { ...closed, deposits: [] };
    await kv.set(["invoice_deposit_claims", closed.network, closed.address, "o0"], closed.id);
    const trx = {
      state: chainShowing([{ txid: "o0", coin: "TRX", amount: "7", confirmations: 1, seenAt: 6_000 }]),
      at: 7_000,
    };
    const other = await readClaims(kv, roomy, trx, window);
    const returned = decideFromChain(roomy, trx, { window, ...other }, 7_000, 30_000)!;
    assert.deepEqual(returned.patch!.otherCoinDeposits!.map(({ coin, txid }) => ({ coin, txid })), [{
      coin: "TRX",
      txid: "o0",
    }]);
  } finally {
    kv.close();
  }
});

Deno.test("[invoices] a dropped deposit listed before claims existed gives its place up only once its claim is stored, so shown again it is never another invoice's", () => {
  // A full record of deposits taken back, listed before claims existed (none stored), and a read with many new ones.
  const dropped = Array.from({ length: MAX_LISTED_WITH_DROPPED }, (_, i) => ({
    txid: `d${i}`,
    amount: "20000",
    confirmations: 0,
    seenAt: 100 + i,
    late: false,
    inTime: true,
    dropped: true,
  }));
  const inv = invoiceOf({ status: "waiting_for_deposit", deposits: dropped, expiresAt: 100_000, checkAt: 1_000 });
  const fresh = Array.from({ length: MAX_CLAIMS_PER_WRITE }, (_, i) => ({
    txid: `n${i}`,
    amount: "20000",
    confirmations: 0,
    seenAt: 1_000 + i,
  }));
  const state = chainShowing(fresh);
  /** Every transaction the write leaves off the record is claimed for it: stored before, or by the write. */
  const unlistedAreClaimed = (before: Invoice, change: InvoiceChange, claimedBy: ReadonlyMap<string, string>) => {
    const listed = new Set(change.patch!.deposits!.map((d) => d.txid));
    const claimed = new Set([...claimedBy.keys(), ...change.claims ?? []]);
    const lost = before.deposits.filter((d) => !listed.has(d.txid) && !claimed.has(d.txid)).map((d) => d.txid);
    assert.deepEqual(lost, []);
  };
  const first = decideFromChain(inv, { state, at: 2_000 }, ALL_TIME, 2_000, 30_000)!;
  unlistedAreClaimed(inv, first, new Map());
  assert.equal(first.patch!.checkAt, 2_000, "what waits for the claims is read again at once");
  // Once the claims are stored, those dropped deposits give their places up to the new ones.
  const claimedBy = new Map(first.claims!.map((txid) => [txid, inv.id]));
  const next = { ...inv, ...first.patch } as Invoice;
  const second = decideFromChain(next, { state, at: 3_000 }, { ...ALL_TIME, claimedBy }, 3_000, 30_000)!;
  unlistedAreClaimed(next, second, claimedBy);
  assert.ok(fresh.every((d) => second.patch!.deposits!.some((l) => l.txid === d.txid)), "the new ones are listed");
});

Deno.test("[invoices] deposits sent to an invoice's address and taken back cannot keep the buyer's payment off it, however many", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    // Polls decide, each after the chain has settled (notices would race the drops).
    await chain.knobs({ dropNotices: true });
    const created = await createTestInvoice(app, { coin: "USDT", network: "tron", amount: "3" });
    const stored = async () => (await getInvoiceEntry(app.kv, created.id)).value!;
    const poll = async () => {
      advanceClock(app, DROP_GRACE_MS + app.config.chainPollMs);
      await app.server.runner.sweep();
    };
    // A stranger sends the list's worth of deposits just over the dust line, and takes each back before it confirms.
    for (const batch of [MAX_DEPOSITS_PER_INVOICE, MAX_LISTED_WITH_DROPPED - MAX_DEPOSITS_PER_INVOICE]) {
      const sent = [];
      for (let i = 0; i < batch; i++) sent.push(await chain.deposit(created.address, "30000"));
      await poll();
      await poll();
      for (const s of sent) await chain.drop(s.txid);
      await poll();
      await poll();
    }
    const filled = await stored();
    assert.equal(filled.deposits.length, MAX_LISTED_WITH_DROPPED);
    assert.ok(filled.deposits.every((d) => d.dropped));
    // The buyer pays: listed, and it counts.
    const paid = await chain.deposit(created.address, "3000000");
    await poll();
    const inv = await stored();
    assert.equal(inv.deposits.length, MAX_LISTED_WITH_DROPPED);
    assert.ok(inv.deposits.some((d) => d.txid === paid.txid && !d.late && !d.dropped));
    assert.equal(inv.status, "payment_confirmation");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a closed invoice's polls thin out as time passes (a tenth of the time since it closed, at most hourly); notices still come at once", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const chain = chainApi(app);
    const inv = await expiredInvoice(app);
    shiftClock(app, 0);
    await chain.deposit(inv.address, "1"); // a stranger's dust, left unconfirmed
    await waitFor("the late dust", async () => (await readInvoice(app, inv.id)).deposits.length === 1 || undefined);
    const stored = async () => (await getInvoiceEntry(app.kv, inv.id)).value!;
    const closedAt = (await stored()).closedAt!;
    for (const [after, interval] of [[20 * 60_000, 2 * 60_000], [2 * 86_400_000, 3_600_000]]) {
      shiftClock(app, closedAt + after - Date.now());
      await app.server.runner.sweep();
      const next = (await stored()).checkAt!;
      const wait = next - app.server.ctx.now();
      assert.ok(wait > interval - 5_000 && wait <= interval, `${after} ms after closing: next read in ${wait} ms`);
    }
    // A notice still brings news at once (our clock back beside the chain's, which signs its notices).
    shiftClock(app, 0);
    await chain.mine(3, "tron");
    await waitFor("confirmations by notice", async () => {
      return (await readInvoice(app, inv.id)).deposits[0].confirmations === 3 || undefined;
    });
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a deposit listed before claims existed is claimed by its invoice's next write, also when dropped and not shown", () => {
  const dropped = { txid: "old", amount: "1000000", confirmations: 0, seenAt: 500, late: true, dropped: true };
  const inv = invoiceOf({ status: "expired", deposits: [dropped], closedAt: 1_000, checkAt: 2_000 });
  const polled = decideAt(inv, [], 2_000)!;
  assert.deepEqual(polled.claims, ["old"]);
  // Another invoice's by its window (the chain saw it before this one held the address): not claimed here.
  const after = decideFromChain(
    inv,
    { state: chainShowing([]), at: 2_000 },
    { window: { from: 600, until: null }, claimedBy: new Map() },
    2_000,
    30_000,
  )!;
  assert.deepEqual(after.claims, []);
});

Deno.test("[invoices] a closed invoice's address rests before another invoice takes it: its buyer's late money stays its own", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off", INVOICE_ADDRESS_REST_S: "3600" } });
  try {
    const chain = chainApi(app);
    const first = await expiredInvoice(app);
    assert.equal((await readInvoice(app, first.id)).status, "expired");
    const [pool] = await describePool(app.server.ctx, app.shop.id);
    assert.deepEqual([pool.free.length, pool.resting.length, pool.inUse.length], [0, 1, 0], "resting, not free");
    // A process still on the code before the rest (a rolling upgrade) lists only the old markers: it cannot take
    // the address early and leave its new marker behind for a second invoice.
    const before = app.kv.list({ prefix: ["invoice_addresses_free", app.shop.id] });
    assert.equal((await Array.fromAsync(before)).length, 0);
    // The next invoice gets another address, so the first buyer's late payment is still the first invoice's.
    const next = await createTestInvoice(app);
    assert.notEqual(next.address, first.address);
    shiftClock(app, 0);
    await chain.deposit(first.address, "12500000");
    await waitFor("late money", async () => (await readInvoice(app, first.id)).lateAmount === "12.5" || undefined);
    assert.deepEqual((await readInvoice(app, next.id)).deposits, []);
    // Rested, it is taken again (those that rested longest first).
    shiftClock(app, 61_000 + 3_600_000);
    const later = await createTestInvoice(app);
    assert.equal(later.address, first.address);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] late money sent while a closed invoice's address rests is found by a read as the rest ends, though its notice was lost", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off", INVOICE_ADDRESS_REST_S: "3600" } });
  try {
    const chain = chainApi(app);
    const first = await expiredInvoice(app);
    await chain.knobs({ dropNotices: true });
    const late = await chain.deposit(first.address, "12500000");
    // Nothing of its own left to watch, the invoice is still read once, as its address's rest ends: whatever the chain
    // saw there meanwhile is its late money, and a later invoice there would not count it.
    advanceClock(app, 3_600_000);
    await app.server.runner.sweep();
    const inv = await readInvoice(app, first.id);
    assert.deepEqual(inv.deposits.map((d: { txid: string; late: boolean }) => [d.txid, d.late]), [[late.txid, true]]);
    assert.equal(inv.lateAmount, "12.5");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] late money is announced once it is confirmed (invoice.late_payment), once for each change that confirms some, never while it may drop", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  const shop = startShopReceiver();
  try {
    const chain = chainApi(app);
    const inv = await expiredInvoice(app, { postbackUrl: shop.url });
    shiftClock(app, 0);
    await waitFor("expired", () => postbacksOf(app, shop.received, inv.id)[0]);
    const types = () => postbacksOf(app, shop.received, inv.id).map((b) => b.type);

    await chain.deposit(inv.address, "2000000");
    await waitFor("listed late", async () => (await readInvoice(app, inv.id)).lateAmount === "2" || undefined);
    await chain.mine(5, "tron");
    await waitFor(
      "confirming",
      async () => (await readInvoice(app, inv.id)).deposits[0].confirmations === 5 || undefined,
    );
    assert.deepEqual(types(), ["invoice.expired"], "not while it may still drop");

    await chain.mine(15, "tron"); // 20: the network's confirmations
    const announced = await waitFor("announced", () => postbacksOf(app, shop.received, inv.id)[1]);
    assert.equal(announced.type, "invoice.late_payment");
    assert.equal(announced.data.status, "expired");
    assert.equal(announced.data.lateAmount, "2");

    await chain.mine(5, "tron");
    await chain.deposit(inv.address, "1000000");
    await chain.mine(20, "tron");
    const second = await waitFor("the second one", () => postbacksOf(app, shop.received, inv.id)[2]);
    assert.equal(second.type, "invoice.late_payment");
    assert.equal(second.data.lateAmount, "3");
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(types(), ["invoice.expired", "invoice.late_payment", "invoice.late_payment"]);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[invoices] another coin sent to an invoice's address counts for nothing: a little ETH is not a fortune in USDT base units", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const chain = chainApi(app);
    const inv = await createTestInvoice(app, { coin: "USDT", network: "ethereum", amount: "1000" });
    // 0.001 ETH is 10^15 wei: read as USDT base units (6 decimals) it would be a billion USDT.
    await chain.deposit(inv.address, "1000000000000000", undefined, "ETH");
    await chain.mine(24, "ethereum");
    advanceClock(app, app.config.chainPollMs + 1000);
    await app.server.runner.sweep();
    const read = await readInvoice(app, inv.id);
    assert.equal(read.status, "waiting_for_deposit");
    assert.deepEqual(read.deposits, []);
    assert.equal(read.paidAmount, "0");
    // The invoice's own coin still counts.
    await chain.deposit(inv.address, "1000000000", undefined, "USDT");
    await chain.mine(12, "ethereum");
    assert.equal((await waitStatus(app, inv.id, "payment_accepted")).paidAmount, "1000");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] the chain's coin is read whatever its case; the simulator takes only a coin the network has, and asks which on ethereum", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const chain = chainApi(app);
    const inv = await createTestInvoice(app, { coin: "ETH", network: "ethereum", amount: "1" });
    const post = (body: Record<string, string>) =>
      fetch(`${app.baseUrl}/sandbox/chain/deposits`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ address: inv.address, amount: "1", ...body }),
      }).then(async (r) => ({ status: r.status, body: await r.json() }));
    const none = await post({});
    assert.equal(none.status, 400);
    assert.match(none.body.error, /coin must be one of USDT, ETH on ethereum/);
    assert.equal((await post({ coin: "BTC" })).status, 400);
    assert.equal((await readInvoice(app, inv.id)).deposits.length, 0, "nothing sent");
    // A chain service that writes the coin in small letters is read as ours.
    const inCapitals = AddressState.parse({
      network: "ethereum",
      address: inv.address,
      height: 1,
      deposits: [{ txid: "t", coin: "eth", amount: "1", confirmations: 0, seenAt: 1 }],
    });
    assert.equal(inCapitals.deposits[0].coin, "ETH");
    await chain.deposit(inv.address, "1000000000000000000", undefined, "ETH");
    await waitStatus(app, inv.id, "payment_confirmation");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] another coin sent to an invoice's address is listed in otherCoinDeposits, in that coin's units, for the shop to return: in the answer and the postbacks, never in an amount", async () => {
  const app = await startTestApp();
  const shop = startShopReceiver();
  try {
    const chain = chainApi(app);
    const inv = await createTestInvoice(app, {
      coin: "USDT",
      network: "ethereum",
      amount: "10",
      postbackUrl: shop.url,
    });
    assert.deepEqual(inv.otherCoinDeposits, []);
    // 0.001 ETH: 10^15 wei, in ETH's 18 decimals (read as USDT's 6 it would be a billion).
    const eth = await chain.deposit(inv.address, "1000000000000000", undefined, "ETH");
    const listed = await waitFor("the ETH listed", async () => {
      const read = await readInvoice(app, inv.id);
      return read.otherCoinDeposits.length ? read : undefined;
    });
    const { seenAt, ...entry } = listed.otherCoinDeposits[0];
    assert.deepEqual(entry, {
      coin: "ETH",
      txid: eth.txid,
      amount: "0.001",
      baseUnits: "1000000000000000",
      confirmations: 0,
      confirmed: false,
      dropped: false,
    });
    assert.ok(Date.parse(seenAt) > 0);
    assert.equal(listed.status, "waiting_for_deposit");
    assert.deepEqual(listed.deposits, []);
    assert.equal(listed.pendingAmount, "0");

    await chain.mine(12, "ethereum");
    await waitFor(
      "the ETH confirmed",
      async () => (await readInvoice(app, inv.id)).otherCoinDeposits[0].confirmed || undefined,
    );
    assert.equal((await readInvoice(app, inv.id)).paidAmount, "0", "confirmed, still counted nowhere");

    // The invoice's own coin pays it; the ETH stays listed beside, and takes nothing from the overpayment.
    await chain.deposit(inv.address, "10000000", undefined, "USDT");
    await chain.mine(12, "ethereum");
    const paid = await waitStatus(app, inv.id, "payment_accepted");
    assert.equal(paid.paidAmount, "10");
    assert.equal(paid.overpaidAmount, "0");
    assert.deepEqual(paid.otherCoinDeposits.map((d: { txid: string }) => d.txid), [eth.txid]);
    const accepted = await waitFor(
      "the payment_accepted postback",
      () => postbacksOf(app, shop.received, inv.id).find((b) => b.type === "invoice.payment_accepted"),
    );
    const shown = accepted.data.otherCoinDeposits as { coin: string; amount: string; confirmed: boolean }[];
    assert.deepEqual(shown.map((d) => [d.coin, d.amount, d.confirmed]), [["ETH", "0.001", true]]);
    // The answers and postbacks are what the OpenAPI document says.
    for (const p of postbacksOf(app, shop.received, inv.id)) InvoicePostbackBody.strict().parse(p);
    InvoiceView.strict().parse(paid);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[invoices] a coin we do not know is listed in its base units with no amount, a transfer of nothing is not listed, and the list is bounded: dropped transfers give their places up", () => {
  const inv = invoiceOf({ status: "waiting_for_deposit", deposits: [], expiresAt: 100_000, checkAt: 1_000 });
  const decided = decideAt(inv, [
    // TRX, Tron's own coin (which we do not take), in its own units: 5 TRX.
    { txid: "trx", coin: "TRX", amount: "0005000000", confirmations: 0, seenAt: 500 },
    // A token we know nothing of: its decimals are not ours to guess.
    { txid: "tok", coin: "ABC", amount: "77", confirmations: 0, seenAt: 550 },
    // A token contract's transfer of zero (address poisoning): nothing to return.
    { txid: "zero", coin: "SPAM", amount: "0", confirmations: 0, seenAt: 600 },
  ], 1_000)!;
  assert.equal(decided.to, "waiting_for_deposit");
  assert.deepEqual(decided.patch!.deposits, []);
  assert.deepEqual(decided.patch!.otherCoinDeposits, [
    { coin: "TRX", txid: "trx", amount: "5000000", confirmations: 0, seenAt: 500 },
    { coin: "ABC", txid: "tok", amount: "77", confirmations: 0, seenAt: 550 },
  ]);
  assert.deepEqual(decided.claims, ["trx", "tok"]);
  assert.deepEqual(decided.events.map((e) => e.type), ["other_coin_deposit", "other_coin_deposit"]);
  const view = invoiceView({ ...inv, ...decided.patch }, "https://pay.example.com");
  assert.equal(view.otherCoinDeposits[0].amount, "5");
  assert.equal(view.otherCoinDeposits[0].baseUnits, "5000000");
  assert.equal(view.otherCoinDeposits[1].amount, null);
  assert.equal(view.otherCoinDeposits[1].baseUnits, "77");
  assert.equal(view.paidAmount, "0");
  assert.equal(view.pendingAmount, "0");
  InvoiceView.strict().parse(view);

  // A stranger's airdrops of tokens we know nothing of take at most MAX_UNKNOWN_COIN_DEPOSITS places: a buyer's real
  // mistake after them (the network's own coin, a coin we take) is still listed. Then nothing more, read after read.
  const transfers = (coin: string, n: number, from: number) =>
    Array.from({ length: n }, (_, i) => ({
      txid: `${coin}${i}`,
      coin,
      amount: "1",
      confirmations: 0,
      seenAt: from + i,
    }));
  const spam = transfers("SPAM", MAX_OTHER_COIN_DEPOSITS + 5, 700);
  const mistakes = transfers("TRX", MAX_OTHER_COIN_DEPOSITS, 800);
  const full = decideAt(inv, [...spam, ...mistakes], 1_000)!;
  const listed = full.patch!.otherCoinDeposits!;
  assert.equal(listed.length, MAX_OTHER_COIN_DEPOSITS);
  // Half the places at most, so the other half is there for mistakes.
  assert.ok(MAX_UNKNOWN_COIN_DEPOSITS <= MAX_OTHER_COIN_DEPOSITS / 2);
  assert.equal(listed.filter((d) => d.coin === "SPAM").length, MAX_UNKNOWN_COIN_DEPOSITS);
  assert.equal(listed.filter((d) => d.coin === "TRX").length, MAX_OTHER_COIN_DEPOSITS - MAX_UNKNOWN_COIN_DEPOSITS);
  assert.ok(full.patch!.checkAt! > 1_000, "full is not 'more to list': the next poll comes at its time");
  const again = decideAt({ ...inv, ...full.patch, checkAt: 2_000 }, [...spam, ...mistakes], 2_000)!;
  assert.deepEqual(again.patch!.otherCoinDeposits, listed);
  assert.deepEqual(again.claims, []);

  // Transfers taken back (dropped: nothing to return) give their places up, oldest first, to a buyer's later mistake.
  const takenBack = mistakes.map(({ coin, txid, amount, confirmations, seenAt }) => ({
    coin,
    txid,
    amount,
    confirmations,
    seenAt,
    dropped: true,
  }));
  const late = { txid: "late-trx", coin: "TRX", amount: "9", confirmations: 0, seenAt: 900 };
  const gaveWay = decideAt({ ...inv, otherCoinDeposits: takenBack, checkAt: 2_000 }, [late], 2_000)!;
  const kept = gaveWay.patch!.otherCoinDeposits!;
  assert.equal(kept.length, MAX_OTHER_COIN_DEPOSITS);
  assert.deepEqual(kept.map((d) => d.txid), [...takenBack.slice(1).map((d) => d.txid), "late-trx"]);
});

Deno.test("[invoices] another coin's transfer is dropped as a deposit is (unconfirmed and missing for the grace), back when shown again, and kept once confirmed", () => {
  const inv = invoiceOf({ status: "waiting_for_deposit", deposits: [], expiresAt: 1_000_000, checkAt: 0 });
  const sent = { txid: "e1", coin: "ETH", amount: "7", confirmations: 1, seenAt: 500 };
  const listed = { ...inv, ...decideAt(inv, [sent], 1_000)!.patch, checkAt: 0 };
  const first = decideAt(listed, [], 10_000)!;
  assert.equal(first.patch!.otherCoinDeposits![0].missingSince, 10_000, "one read without it is not a drop");
  assert.equal(first.patch!.otherCoinDeposits![0].dropped, undefined);
  const missing = { ...listed, ...first.patch, checkAt: 0 };
  const gone = decideAt(missing, [], 10_000 + DROP_GRACE_MS)!;
  assert.equal(gone.patch!.otherCoinDeposits![0].dropped, true);
  const dropped = { ...missing, ...gone.patch, checkAt: 0 };
  assert.equal(invoiceView(dropped, "https://x").otherCoinDeposits[0].dropped, true);
  const back = decideAt(dropped, [{ ...sent, confirmations: 3 }], 500_000)!;
  assert.deepEqual(back.patch!.otherCoinDeposits, [{
    coin: "ETH",
    txid: "e1",
    amount: "7",
    confirmations: 3,
    seenAt: 500,
  }]);
  // Confirmed (tron takes 20), then gone: a reorganisation deeper than the confirmations; it stays as it was.
  const confirmed = {
    ...dropped,
    ...back.patch,
    otherCoinDeposits: [{ ...back.patch!.otherCoinDeposits![0], confirmations: 20 }],
  };
  const reorganised = decideAt({ ...confirmed, checkAt: 0 }, [], 600_000 + DROP_GRACE_MS)!;
  assert.deepEqual(reorganised.patch!.otherCoinDeposits, confirmed.otherCoinDeposits);
});

Deno.test("[invoices] other coins' transfers are claimed as deposits are: one another invoice claimed is not listed, a transaction of two coins is claimed once, and the write's claim budget is shared", () => {
  const inv = invoiceOf({ status: "waiting_for_deposit", deposits: [], expiresAt: 100_000, checkAt: 1_000 });
  const theirs = { txid: "t-theirs", coin: "TRX", amount: "5", confirmations: 0, seenAt: 500 };
  const decide = (shown: Parameters<typeof chainShowing>[0], claimedBy = new Map<string, string>()) =>
    decideFromChain(inv, { state: chainShowing(shown), at: 1_000 }, { ...ALL_TIME, claimedBy }, 1_000, 30_000)!;
  const skipped = decide([theirs], new Map([["t-theirs", "inv_earlier"]]));
  assert.deepEqual(skipped.patch?.otherCoinDeposits ?? [], [], "the earlier invoice's, shown again in this one's time");

  // One transaction moving the invoice's coin and another: both listed, one claim (the key is the transaction's).
  const both = decide([
    { txid: "t2", amount: "1000000", confirmations: 0, seenAt: 600 },
    { txid: "t2", coin: "TRX", amount: "9", confirmations: 0, seenAt: 600 },
  ]);
  assert.equal(both.patch!.deposits!.length, 1);
  assert.equal(both.patch!.otherCoinDeposits!.length, 1);
  assert.deepEqual(both.claims, ["t2"]);

  // Deposits take the whole budget: the other coin waits for the next read, which comes at once.
  const payments = Array.from({ length: MAX_CLAIMS_PER_WRITE }, (_, i) => ({
    txid: `p${i}`,
    amount: "100000",
    confirmations: 0,
    seenAt: 100 + i,
  }));
  const other = { txid: "o1", coin: "TRX", amount: "9", confirmations: 0, seenAt: 50 };
  const crowded = decide([...payments, other]);
  assert.equal(crowded.claims!.length, MAX_CLAIMS_PER_WRITE);
  assert.deepEqual(crowded.patch!.otherCoinDeposits ?? [], []);
  assert.equal(crowded.patch!.checkAt, 1_000, "read again at once");
  const claimedBy = new Map(crowded.claims!.map((txid) => [txid, inv.id]));
  const next = decideFromChain(
    { ...inv, ...crowded.patch },
    { state: chainShowing([...payments, other]), at: 1_001 },
    { ...ALL_TIME, claimedBy },
    1_001,
    30_000,
  )!;
  assert.deepEqual(next.patch!.otherCoinDeposits!.map((d) => d.txid), ["o1"]);
  assert.deepEqual(next.claims, ["o1"]);
});

Deno.test("[invoices] another coin's transfer rebroadcast in the next invoice's time stays on the invoice that listed it: the shop is never shown it twice to return", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const chain = chainApi(app);
    const eth = { coin: "USDT", network: "ethereum", amount: "10" };
    const first = await createTestInvoice(app, eth);
    const sent = await chain.deposit(first.address, "2000000000000000", undefined, "ETH");
    await waitFor("listed", async () => (await readInvoice(app, first.id)).otherCoinDeposits.length === 1 || undefined);
    assert.equal((await getDepositClaims(app.kv, first, [sent.txid])).get(sent.txid), first.id, "claimed as listed");
    assert.equal((await cancelInvoiceCall(app, first.id)).status, 200);
    await chain.drop(sent.txid);
    const second = await nextHolder(app, first.address, eth);
    await new Promise((r) => setTimeout(r, 5));
    await chain.deposit(first.address, "2000000000000000", sent.txid, "ETH"); // rebroadcast, in the second's time
    await waitFor("shown again on the first invoice", async () => {
      const d = (await getInvoiceEntry(app.kv, first.id)).value!.otherCoinDeposits![0];
      return d.missingSince === undefined || undefined;
    });
    // The next invoice's decision reads the transfer's claim (one write would fail on it, and fail again).
    const next = (await getInvoiceEntry(app.kv, second.id)).value!;
    const state = await requireChain(app.server.ctx).getAddress("ethereum", first.address);
    const { claimedBy } = await readClaims(app.kv, next, { state, at: app.server.ctx.now() }, {
      from: next.createdAt,
      until: null,
    });
    assert.equal(claimedBy.get(sent.txid), first.id);
    advanceClock(app, app.config.chainPollMs + 1000);
    await app.server.runner.sweep();
    const polled = (await getInvoiceEntry(app.kv, second.id)).value!;
    assert.ok(polled.checkAt! > app.server.ctx.now(), "its poll was applied, not refused by the claim");
    assert.deepEqual((await readInvoice(app, second.id)).otherCoinDeposits, []);
    const old = await readInvoice(app, first.id);
    assert.deepEqual(old.otherCoinDeposits.map((d: { txid: string }) => d.txid), [sent.txid]);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a closed invoice is read until the other coins it lists are final, so the shop sees them confirmed", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const chain = chainApi(app);
    // Notices lost: only the invoice's own polls bring news.
    await chain.knobs({ dropNotices: true });
    const inv = await createTestInvoice(app, { coin: "USDT", network: "ethereum", amount: "10" });
    await chain.deposit(inv.address, "10000000", undefined, "USDT");
    await chain.mine(24, "ethereum");
    await chain.deposit(inv.address, "3000000000000000", undefined, "ETH");
    advanceClock(app, app.config.chainPollMs + 1000);
    await app.server.runner.sweep();
    const finished = await readInvoice(app, inv.id);
    assert.equal(finished.status, "finished");
    assert.equal(finished.otherCoinDeposits[0].confirmations, 0);
    assert.notEqual((await getInvoiceEntry(app.kv, inv.id)).value!.checkAt, null, "read on for the ETH");
    await chain.mine(24, "ethereum");
    advanceClock(app, 3_600_000);
    await app.server.runner.sweep();
    const later = await readInvoice(app, inv.id);
    assert.equal(later.otherCoinDeposits[0].confirmations, 24);
    assert.equal(later.otherCoinDeposits[0].confirmed, true);
    assert.equal((await getInvoiceEntry(app.kv, inv.id)).value!.checkAt, null, "final: nothing left to watch");
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] updatedAt is when what the shop sees last changed: not moved by a poll that changes nothing, and a postback's data.updatedAt is its timestamp", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  const shop = startShopReceiver();
  try {
    const chain = chainApi(app);
    await chain.knobs({ dropNotices: true });
    const created = await createTestInvoice(app, { postbackUrl: shop.url });
    assert.equal(created.updatedAt, created.createdAt);
    const before = (await getInvoiceEntry(app.kv, created.id)).value!;
    advanceClock(app, app.config.chainPollMs + 1000);
    await app.server.runner.sweep();
    const polled = (await getInvoiceEntry(app.kv, created.id)).value!;
    assert.ok(polled.checkAt! > before.checkAt!, "the poll wrote the invoice (its next poll)");
    assert.equal((await readInvoice(app, created.id)).updatedAt, created.createdAt, "nothing shown changed");

    await chain.deposit(created.address, "12500000");
    advanceClock(app, app.config.chainPollMs + 1000);
    await app.server.runner.sweep();
    const seen = await readInvoice(app, created.id);
    assert.equal(seen.status, "payment_confirmation");
    assert.ok(Date.parse(seen.updatedAt) > Date.parse(created.createdAt));
    const postback = InvoicePostbackBody.parse(
      await waitFor(
        "the payment_confirmation postback",
        () => postbacksOf(app, shop.received, created.id).find((b) => b.type === "invoice.payment_confirmation"),
      ),
    );
    assert.equal(postback.data.updatedAt, postback.timestamp);
    assert.equal(seen.updatedAt, postback.timestamp);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[invoices] other coins' transfers share the record's bound with the deposits: deposits and transfers together list at most MAX_LISTED_WITH_DROPPED", () => {
  // Dropped deposits fill the record to two places short of the bound (they take none of the buyer's 100).
  const dropped = Array.from({ length: MAX_LISTED_WITH_DROPPED - 2 }, (_, i) => ({
    txid: `d${i}`,
    amount: "1000",
    confirmations: 0,
    seenAt: 10 + i,
    late: false,
    dropped: true,
  }));
  const inv = invoiceOf({ status: "waiting_for_deposit", deposits: dropped, expiresAt: 100_000, checkAt: 1_000 });
  const spam = Array.from({ length: 5 }, (_, i) => ({
    txid: `s${i}`,
    coin: "TRX",
    amount: "1",
    confirmations: 0,
    seenAt: 500 + i,
  }));
  const decided = decideAt(inv, spam, 1_000)!;
  assert.equal(decided.patch!.otherCoinDeposits!.length, 2);
  // Full, the invoice's own coin is not listed either: the record would outgrow what KV takes.
  const full = { ...inv, ...decided.patch, checkAt: 1_000 };
  const payment = { txid: "pay", amount: "1000000", confirmations: 0, seenAt: 900 };
  assert.equal(decideAt(full, [...spam, payment], 1_000)!.patch!.deposits!.length, MAX_LISTED_WITH_DROPPED - 2);
});

Deno.test("[invoices] an open invoice nobody has paid is read less often as it ages, never past its expiry, and at the usual pace once money is seen", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  try {
    const poll = app.config.chainPollMs;
    const created = await createTestInvoice(app, { expiresIn: 3_600 });
    const checkAfterSweep = async () => {
      await app.server.runner.sweep();
      const inv = (await getInvoiceEntry(app.kv, created.id)).value!;
      return { inv, in: inv.checkAt! - app.server.ctx.now() };
    };
    // The sweep read the clock a few ms before this test does.
    const near = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) < 200, `${actual} ms`);
    // Two minutes old: a tenth of its age is less than the usual interval.
    shiftClock(app, 2 * 60_000);
    near((await checkAfterSweep()).in, poll);
    // Twenty minutes old: a tenth of that.
    shiftClock(app, 20 * 60_000);
    near((await checkAfterSweep()).in, 2 * 60_000);
    // Fifty minutes old: at most five minutes.
    shiftClock(app, 50 * 60_000);
    near((await checkAfterSweep()).in, 5 * 60_000);
    // Two minutes before its expiry: read at the expiry, not after.
    shiftClock(app, 58 * 60_000);
    const late = await checkAfterSweep();
    assert.equal(late.inv.checkAt, late.inv.expiresAt);
    // Money seen: read at the usual pace, however old.
    shiftClock(app, 0);
    const paid = await createTestInvoice(app, { expiresIn: 3_600 });
    await chainApi(app).deposit(paid.address, "1000000");
    await waitStatus(app, paid.id, "payment_confirmation");
    shiftClock(app, 20 * 60_000);
    await app.server.runner.sweep();
    const paying = (await getInvoiceEntry(app.kv, paid.id)).value!;
    near(paying.checkAt! - app.server.ctx.now(), poll);
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] a full invoice of a shop that writes in Chinese still moves: its postback stays under KV's 64 KiB, other coins' transfers listed", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  const shop = startShopReceiver();
  try {
    // V8 keeps a string with any character past U+00FF at two bytes a character: a title and description in Chinese
    // made the whole postback body twice its length in KV.
    const title = "订单".repeat(100);
    const description = "商品".repeat(500);
    const created = await createTestInvoice(app, {
      coin: "USDT",
      network: "ethereum",
      amount: "10000",
      id: crypto.randomUUID(),
      title,
      description,
      postbackUrl: shop.url,
    });
    // What a stranger can list at little cost: dust up to the dust line, transfers at a hundredth of the amount taken
    // back (dropped), and other coins' transfers of a token of their own, any amount; then the buyer pays.
    const txid = (tag: string, i: number) => `0x${tag}${String(i).padStart(63, "0")}`;
    const at = Date.parse(created.createdAt);
    const dust = Array.from({ length: DUST_LISTED_UP_TO }, (_, i) => ({
      txid: txid("a", i),
      amount: "1",
      confirmations: 12,
      seenAt: at + i,
      late: false,
      inTime: true,
    }));
    const dropped = Array.from({ length: MAX_LISTED_WITH_DROPPED - DUST_LISTED_UP_TO - MAX_OTHER_COIN_DEPOSITS - 1 }, (
      _,
      i,
    ) => ({ txid: txid("c", i), amount: "100000000", confirmations: 0, seenAt: at + i, late: false, dropped: true }));
    const payment = { txid: txid("f", 1), amount: "10000000000", confirmations: 12, seenAt: at, late: false };
    const junk = Array.from({ length: MAX_OTHER_COIN_DEPOSITS }, (_, i) => ({
      coin: "ABCDEFGHIJKLMNOPQRST",
      txid: txid("b", i),
      amount: "9".repeat(40),
      confirmations: 12,
      seenAt: at + i,
    }));
    const full: InvoiceChange = { events: [], patch: { deposits: [...dust, ...dropped], otherCoinDeposits: junk } };
    assert.equal((await updateInvoice(app.server.ctx, created.id, () => full)).outcome, "applied");
    const paid = await updateInvoice(app.server.ctx, created.id, (inv) => ({
      to: "payment_accepted",
      events: [],
      patch: { deposits: [...inv.deposits, payment] },
    }));
    assert.equal(paid.outcome, "applied");
    const postback = await waitFor(
      "the payment_accepted postback",
      () => postbacksOf(app, shop.received, created.id).find((b) => b.type === "invoice.payment_accepted"),
    );
    const data = InvoicePostbackBody.parse(postback).data;
    assert.equal(data.title, title, "the same JSON to the shop's parser");
    assert.equal(data.description, description);
    assert.equal(data.otherCoinDeposits.length, MAX_OTHER_COIN_DEPOSITS);
    assert.equal(data.paidAmount, "10000.00008");
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[invoices] another coin's transfer back from dropped shows the chain's confirmations, as a deposit does, not those it had before the drop", () => {
  // Tron takes 20: dropped at 15 (a reorganisation took its block), sent again and shown with 1.
  const inv = invoiceOf({
    status: "waiting_for_deposit",
    deposits: [{ txid: "d1", amount: "5", confirmations: 15, seenAt: 400, late: false, dropped: true }],
    otherCoinDeposits: [{ coin: "TRX", txid: "e1", amount: "7", confirmations: 15, seenAt: 500, dropped: true }],
    expiresAt: 1_000_000,
    checkAt: 0,
  });
  const back = decideAt(inv, [
    { txid: "d1", amount: "5", confirmations: 1, seenAt: 400 },
    { txid: "e1", coin: "TRX", amount: "7", confirmations: 1, seenAt: 500 },
  ], 500_000)!;
  assert.equal(back.patch!.deposits![0].confirmations, 1);
  assert.equal(back.patch!.otherCoinDeposits![0].confirmations, 1, "the shop would read 15 of 20 for a transfer at 1");
  assert.equal(back.patch!.otherCoinDeposits![0].dropped, undefined);
});

Deno.test("[invoices] a transaction is claimed once by a write, also when its deposit was listed before claims existed and its other coin is new", () => {
  const inv = invoiceOf({
    status: "payment_confirmation",
    deposits: [{ txid: "t1", amount: "1000000", confirmations: 1, seenAt: 500, late: false }],
    expiresAt: 100_000,
    checkAt: 1_000,
  });
  const decided = decideAt(inv, [
    { txid: "t1", amount: "1000000", confirmations: 2, seenAt: 500 },
    { txid: "t1", coin: "TRX", amount: "9", confirmations: 2, seenAt: 500 },
  ], 1_000)!;
  assert.equal(decided.patch!.otherCoinDeposits!.length, 1);
  assert.deepEqual(decided.claims, ["t1"]);
});

Deno.test("[invoices] a returnUrl gives the buyer's page a way back to the shop, judged as a payment's URLs are", async () => {
  const app = await startTestApp({ allowedHosts: ["127.0.0.1", "shop.example"] });
  try {
    const made = await createTestInvoice(app, { returnUrl: "https://shop.example/orders/17" });
    assert.equal(made.returnUrl, "https://shop.example/orders/17");
    const page = await (await fetch(made.checkoutUrl)).text();
    assert.match(page, /<a href="https:\/\/shop\.example\/orders\/17">Back to /);
    // Without one, no link (older invoices read the same).
    const plain = await createTestInvoice(app);
    assert.equal(plain.returnUrl, null);
    assert.doesNotMatch(await (await fetch(plain.checkoutUrl)).text(), />Back to /);
    // Refused like a success URL: a script, another site, credentials.
    for (
      const [returnUrl, problem] of [
        ["javascript:alert(1)", /absolute http or https URL/],
        ["https://evil.example/", /not in the shop's allowed hosts/],
        ["https://user:pw@shop.example/", /credentials/],
      ] as const
    ) {
      const res = await callCreateInvoice(app, invoiceBody({ returnUrl }));
      assert.equal(res.status, 400, returnUrl);
      assert.match(res.body.error.fields.returnUrl, problem);
    }
  } finally {
    await app.close();
  }
});

Deno.test("[invoices] when the chain service cannot make addresses, the invoice is refused as a provider error and the log says why, once a minute", async () => {
  const app = await startTestApp({
    env: { CHAIN_API_URL: "http://127.0.0.1:9", CHAIN_API_TOKEN: "chain-token", CHAIN_WEBHOOK_SECRET: "chain-secret" },
  });
  const lines: string[] = [];
  const saved = console.error;
  console.error = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  try {
    for (let i = 0; i < 3; i++) {
      const res = await callCreateInvoice(app, invoiceBody());
      assert.equal(res.status, 502, JSON.stringify(res.body));
      assert.equal(res.body.error.code, "provider_error");
    }
  } finally {
    console.error = saved;
    await app.close();
  }
  const failures = lines.filter((l) => l.includes("chain address batch failed"));
  assert.equal(failures.length, 1, lines.join("\n"));
  assert.match(failures[0], /"network":"tron"/);
  assert.match(failures[0], /"detail":"chain POST \/addresses/);
  assert.doesNotMatch(lines.join("\n"), /chain-token|chain-secret/, "no secret in the log");
});

Deno.test("[invoices] a status change made on a server whose clock is behind the one that made the last carries the later timestamp, so a shop keeping an invoice's newest postback ends on it", async () => {
  const app = await startTestApp({ env: { JOBS_QUEUE: "off" } });
  const shop = startShopReceiver();
  try {
    await chainApi(app).knobs({ dropNotices: true });
    const created = await createTestInvoice(app, { postbackUrl: shop.url });
    // A chain notice handled on a server whose clock runs 5 s ahead sees the deposit; the poll on another server,
    // a moment later, sees it confirmed.
    shiftClock(app, 5_000);
    await updateInvoice(app.server.ctx, created.id, () => ({ to: "payment_confirmation", events: [] }));
    shiftClock(app, 0);
    await updateInvoice(app.server.ctx, created.id, () => ({ to: "payment_accepted", events: [] }));
    const postbacks = await waitFor("both postbacks", () => {
      const got = postbacksOf(app, shop.received, created.id) as unknown as { type: string; timestamp: string }[];
      return got.length === 2 ? got : undefined;
    });
    // The shop keeps the postback with the latest timestamp, whatever order they came in (invoices.md).
    const current = postbacks.reduce((a, b) => (Date.parse(b.timestamp) > Date.parse(a.timestamp) ? b : a));
    assert.equal(current.type, "invoice.payment_accepted", "the shop ends on the invoice paid");
    assert.equal((await readInvoice(app, created.id)).updatedAt, current.timestamp, "the invoice read says the same");
  } finally {
    await shop.close();
    await app.close();
  }
});
