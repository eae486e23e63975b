/**
 * Invoices in the operator console and the shop portal: the list, the address
 * pool per network (free / in use), an invoice's deposits, postbacks and
 * timeline, the operator's audited cancel, and a portal that sees only its
 * own shop.
 */
import assert from "node:assert/strict";
import { searchAudit } from "../lib/db/audit.ts";
import { countLateInvoices, getInvoice, listPoolAddresses } from "../lib/db/invoices.ts";
import { deleteBackfillState } from "../lib/db/backfills.ts";
import { runBackfill } from "../lib/backfills/run.ts";
import { lateInvoiceIndexBackfill } from "../lib/invoices/backfill.ts";
import { ADDRESS_RETIRES_AT, syncInvoice } from "../lib/invoices/deposits.ts";
import { listDeliveriesByPayment } from "../lib/db/deliveries.ts";
import { createShop } from "../lib/shops.ts";
import { startShopReceiver, startTestApp, waitFor } from "../fixtures/app.ts";
import { operatorBrowser, portalBrowser } from "../fixtures/browser.ts";
import { cancelInvoiceCall, chainApi, createTestInvoice, dropFromChain, readInvoice } from "../fixtures/invoices.ts";

Deno.test("[console] operators see invoices, a shop's address pool and an invoice's timeline, cancel with an audit entry, and the stats count them", async () => {
  const app = await startTestApp();
  const shop = startShopReceiver();
  try {
    const chain = chainApi(app);
    const paid = await createTestInvoice(app, { id: "order-9", postbackUrl: shop.url });
    const open = await createTestInvoice(app, { title: "Still open" });
    await chain.deposit(paid.address, "12500000");
    await chain.mine(40, "tron");
    await waitFor("finished", async () => (await readInvoice(app, paid.id)).status === "finished" || undefined);
    await waitFor(
      "the finished postback",
      () => shop.received.some((r) => r.body.includes("invoice.finished")) || undefined,
    );
    // Its outcome recorded too: a resend while the attempt still holds the postback is refused.
    await waitFor(
      "the finished postback's outcome",
      async () => (await listDeliveriesByPayment(app.kv, paid.id)).every((d) => d.status === "delivered") || undefined,
    );

    const b = await operatorBrowser(app);
    const list = await b.get(`/admin/invoices?shopId=${app.shop.id}`);
    assert.equal(list.status, 200);
    assert.match(list.text, /order-9/);
    assert.match(list.text, /Still open/);
    const pool = await listPoolAddresses(app.kv, app.shop.id);
    assert.equal(pool.find((a) => a.address === paid.address)?.heldBy, null, "the finished invoice's address is free");
    const free = pool.filter((a) => a.heldBy === null).length;
    assert.match(list.text, new RegExp(`data-pool-free="tron">${free}<`));
    assert.match(list.text, /data-pool-in-use="tron">1</);

    // The failing-postbacks page links an invoice's postback to the invoice, and resends it like a payment's.
    const resent = await b.get("/admin/deliveries");
    assert.equal(resent.status, 200);
    const again = await b.post("/admin/deliveries/resend", { paymentId: paid.id });
    assert.equal(again.status, 303);
    assert.equal(again.location, "/admin/deliveries?done=resent-delivered");
    await waitFor(
      "the resent postback",
      () => shop.received.filter((r) => r.body.includes("invoice.finished")).length >= 2 || undefined,
    );

    const detail = await b.get(`/admin/invoices/${paid.id}`);
    assert.match(detail.text, /deposit seen/);
    assert.match(detail.text, /status changed/);
    assert.match(detail.text, /postback invoice\.finished attempt 1/);
    assert.match(detail.text, /Received<\/dt><dd>12\.5 USDT/);
    assert.match(detail.text, /<dt>Updated<\/dt><dd>\d{4}-\d\d-\d\d /);
    assert.match(
      detail.text,
      new RegExp(`<dt>Shop</dt><dd><a href="/admin/shops/${app.shop.id}">Test shop</a></dd>`),
      "the shop by name, linked",
    );

    await b.get(`/admin/invoices/${open.id}`);
    // Without the page's script the question comes as a page of its own; nothing is cancelled until it is answered.
    const ask = await b.post(`/admin/invoices/${open.id}/cancel`, {});
    assert.equal(ask.status, 200);
    assert.match(ask.text, /Cancel this invoice\?/);
    assert.match(ask.text, /<button type="submit" class="danger">Cancel invoice<\/button>/);
    assert.match(ask.text, new RegExp(`<a href="/admin/invoices/${open.id}">Keep the invoice</a>`));
    assert.equal((await readInvoice(app, open.id)).status, "waiting_for_deposit");
    const cancelled = await b.post(`/admin/invoices/${open.id}/cancel`, { confirm: "yes" });
    assert.equal(cancelled.status, 303);
    assert.equal((await readInvoice(app, open.id)).status, "cancelled");
    const audit = await searchAudit(app.kv, { query: open.id, limit: 5 });
    assert.equal(audit[0]?.action, "invoice.cancel");
    assert.equal(audit[0]?.actor, "ops@example.com");
    // The console's timeline names who cancelled; the shop's portal says it was us, never who.
    assert.match(
      (await b.get(`/admin/invoices/${open.id}`)).text,
      /cancel requested<\/strong> <span class="muted">by: ops@example\.com</,
    );
    const staff = await portalBrowser(app);
    const shopsView = await staff.get(`/portal/invoices/${open.id}`);
    assert.match(shopsView.text, /cancel requested<\/strong> <span class="muted">by: AimbrellaPay</);
    assert.doesNotMatch(shopsView.text, /ops@example\.com/);

    // The overview's counters are kept in the same writes: two created, one paid, one cancelled.
    const overview = await b.get("/admin");
    assert.match(overview.text, /data-invoice-stats="true">2 created, 1 paid, 0 expired, 1 cancelled/);
  } finally {
    await shop.close();
    await app.close();
  }
});

Deno.test("[portal] a shop sees its own invoices and pool, never another shop's", async () => {
  const app = await startTestApp();
  try {
    const mine = await createTestInvoice(app, { title: "Mine" });
    const other = await createShop(app.kv, { name: "Other", allowedHosts: [] }, {
      allowLocalUrls: true,
      now: Date.now(),
    });
    const theirs = await createTestInvoice({ ...app, shop: { ...app.shop, apiKey: other.apiKey } }, {
      title: "Theirs",
    });

    const b = await portalBrowser(app);

    const list = await b.get(`/portal/invoices?shopId=${other.shop.id}`);
    assert.equal(list.status, 200);
    assert.match(list.text, /Mine/);
    assert.doesNotMatch(list.text, /Theirs/, "a query cannot widen the portal's scope");
    assert.match(list.text, /data-pool-in-use="tron">1</);
    assert.equal((await b.get(`/portal/invoices/${mine.id}`)).status, 200);
    assert.equal((await b.get(`/portal/invoices/${theirs.id}`)).status, 404);
  } finally {
    await app.close();
  }
});

Deno.test("[console] a deposit the chain dropped is shown as not counted, with its amount and the timeline entry", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    const created = await createTestInvoice(app, { coin: "USDT", network: "tron", amount: "3" });
    const sent = await chain.deposit(created.address, "3000000");
    await waitFor(
      "confirming",
      async () => (await readInvoice(app, created.id)).status === "payment_confirmation" || undefined,
    );
    await dropFromChain(app, created.id, sent.txid);
    assert.equal((await readInvoice(app, created.id)).status, "waiting_for_deposit");
    const detail = await (await operatorBrowser(app)).get(`/admin/invoices/${created.id}`);
    assert.match(detail.text, /no: dropped from the chain before its confirmations/);
    assert.match(detail.text, /Dropped by the chain<\/dt><dd>3 USDT/);
    assert.match(detail.text, /deposit dropped/);
  } finally {
    await app.close();
  }
});

Deno.test("[console] another coin sent to an invoice's address is shown to operators and to the shop's portal, apart from what it counts", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    const created = await createTestInvoice(app, { coin: "USDT", network: "ethereum", amount: "10" });
    const eth = await chain.deposit(created.address, "1000000000000000", undefined, "ETH");
    await waitFor(
      "listed",
      async () => (await readInvoice(app, created.id)).otherCoinDeposits.length === 1 || undefined,
    );
    const pages = [
      [await operatorBrowser(app), "/admin/invoices"],
      [await portalBrowser(app), "/portal/invoices"],
    ] as const;
    for (const [b, base] of pages) {
      const list = await b.get(base);
      assert.match(list.text, /waiting_for_deposit · <strong class="bad">other coin<\/strong>/, base);
      const detail = await b.get(`${base}/${created.id}`);
      assert.equal(detail.status, 200);
      assert.match(detail.text, /<h2>Other coins<\/h2>/, base);
      assert.ok(detail.text.includes(eth.txid), base);
      assert.match(detail.text, /data-other-coin="ETH">.*0\.001 ETH.*not yet: confirming/s, base);
      assert.match(detail.text, /Received<\/dt><dd>0 USDT/, `${base}: counted nowhere`);
      assert.match(detail.text, /<dt>Updated<\/dt><dd>\d{4}-/, base);
    }
    const timeline = await pages[0][0].get(`/admin/invoices/${created.id}`);
    assert.match(timeline.text, /other coin deposit/);
  } finally {
    await app.close();
  }
});

Deno.test("[console] the overview counts invoices holding late money and links to them; the list filters to them, for the portal too", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    const b = await operatorBrowser(app);
    const card = async () =>
      (await b.get("/admin")).text.match(/<a href="\/admin\/invoices\?late=1" data-late-invoices="true">(.*?)<\/a>/s)
        ?.[1].replace(/<[^>]+>/g, "").replace(/\s+/g, " ").trim();
    assert.equal(await card(), "0 invoices with late money");

    // Cancelled, then paid: the money is the closed invoice's late money. (The tests' addresses rest for no time: the
    // open one is made first, so it holds another address.)
    const open = await createTestInvoice(app, { title: "Still open" });
    const closed = await createTestInvoice(app, { title: "Paid too late", amount: "3" });
    assert.equal((await cancelInvoiceCall(app, closed.id)).status, 200);
    const late = await chain.deposit(closed.address, "3000000");
    await waitFor("the late money", async () => (await readInvoice(app, closed.id)).lateAmount === "3" || undefined);

    assert.equal(await card(), "1 invoice with late money");
    const list = (await b.get("/admin/invoices?late=1")).text;
    assert.match(list, /<h2>Invoices with late money<\/h2>/);
    assert.match(list, /Paid too late/);
    assert.doesNotMatch(list, /Still open/);
    assert.match(list, /<input type="checkbox" name="late" value="1" checked\/> Only those with late money/);
    assert.match((await b.get(`/admin/invoices?late=1&shopId=${app.shop.id}`)).text, /Paid too late/);
    assert.match((await b.get("/admin/invoices")).text, new RegExp(`${open.id}`), "unfiltered, every invoice");
    const portal = (await (await portalBrowser(app)).get("/portal/invoices?late=1")).text;
    assert.match(portal, /Paid too late/);
    assert.doesNotMatch(portal, /Still open/);

    // Late money the chain drops was never there: the invoice leaves the count and the list.
    await dropFromChain(app, closed.id, late.txid);
    assert.equal(await card(), "0 invoices with late money");
    assert.match(
      (await b.get("/admin/invoices?late=1")).text,
      /<h2>Invoices with late money<\/h2>\s*<p class="muted">[^]*?<p class="muted">None\.<\/p>/,
    );
  } finally {
    await app.close();
  }
});

Deno.test("[backfill] invoices holding late money written before the late-invoice index get into it: the overview counts them and the list shows them", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    const b = await operatorBrowser(app);
    const card = async () =>
      (await b.get("/admin")).text.match(/<a href="\/admin\/invoices\?late=1" data-late-invoices="true">(.*?)<\/a>/s)
        ?.[1].replace(/<[^>]+>/g, "").replace(/\s+/g, " ").trim();
    // Two closed invoices paid late, one whose late money the chain then dropped, and one still open.
    const open = await createTestInvoice(app, { title: "Still open" });
    const late = [];
    for (const title of ["Paid too late", "Paid too late as well", "Dropped"]) {
      const inv = await createTestInvoice(app, { title, amount: "3" });
      assert.equal((await cancelInvoiceCall(app, inv.id)).status, 200);
      const tx = await chain.deposit(inv.address, "3000000");
      await waitFor("the late money", async () => (await readInvoice(app, inv.id)).lateAmount === "3" || undefined);
      late.push({ ...inv, txid: tx.txid });
    }
    const dropped = late.pop()!;
    await dropFromChain(app, dropped.id, dropped.txid);
    assert.equal(await card(), "2 invoices with late money");
    // As the version before the index stored them: the invoices as they are, the index's keys absent.
    for (const inv of late) {
      const { seq, shopId } = (await getInvoice(app.kv, inv.id))!;
      await app.kv.delete(["invoices_late", seq]);
      await app.kv.delete(["invoices_late_by_shop", shopId, seq]);
    }
    assert.equal(await card(), "0 invoices with late money");

    // The store as the earlier version left it; two processes run the backfill at once.
    await deleteBackfillState(app.kv, "invoice_late_index");
    const runs = await Promise.all([
      runBackfill(app.server.ctx, lateInvoiceIndexBackfill, { batchSize: 2 }),
      runBackfill(app.server.ctx, lateInvoiceIndexBackfill, { batchSize: 2 }),
    ]);
    assert.equal(runs[0].written + runs[1].written, 2, "each invoice holding late money indexed once");
    assert.equal(await card(), "2 invoices with late money");
    const list = (await b.get("/admin/invoices?late=1")).text;
    for (const inv of late) assert.match(list, new RegExp(inv.id));
    assert.doesNotMatch(list, new RegExp(`${open.id}|${dropped.id}`), "neither the open one nor the dropped one");
    assert.deepEqual(await countLateInvoices(app.kv, { shopId: app.shop.id, max: 10 }), { count: 2, more: false });

    // Idempotent: once done, a run reads its progress; forgotten, a run from scratch finds nothing to add.
    assert.equal((await runBackfill(app.server.ctx, lateInvoiceIndexBackfill)).written, 0);
    await deleteBackfillState(app.kv, "invoice_late_index");
    assert.equal((await runBackfill(app.server.ctx, lateInvoiceIndexBackfill)).written, 0);
    assert.equal(await card(), "2 invoices with late money");
  } finally {
    await app.close();
  }
});

Deno.test("[console] cancelling an invoice whose address showed too many transfers says the address leaves the pool, not that it rests and comes back", async () => {
  const app = await startTestApp();
  try {
    const chain = chainApi(app);
    await chain.knobs({ dropNotices: true });
    const worn = await createTestInvoice(app, { title: "Worn address" });
    for (let i = 0; i < ADDRESS_RETIRES_AT; i++) await chain.deposit(worn.address, "1");
    await syncInvoice(app.server.ctx, worn.id);
    const words = /leaves the pool for good/;
    const b = await operatorBrowser(app);
    const page = await b.get(`/admin/invoices/${worn.id}`);
    assert.match(page.text.replaceAll("&#39;", "'"), words, "the question the page's script asks");
    assert.doesNotMatch(page.text, /goes back to the pool/);
    assert.match((await b.post(`/admin/invoices/${worn.id}/cancel`, {})).text, words, "the question's page");
    const done = await b.post(`/admin/invoices/${worn.id}/cancel`, { confirm: "yes" });
    assert.match((await b.get(done.location!)).text, words, "the note after");
  } finally {
    await app.close();
  }
});

Deno.test("[console] cancelling an invoice says how long its address rests, as INVOICE_ADDRESS_REST_S sets it", async () => {
  for (
    const [rest, words] of [["7200", /rests about 2 hours, then goes back to the pool/], [
      "0",
      /goes back to the pool at once/,
    ]] as const
  ) {
    const app = await startTestApp({ env: { INVOICE_ADDRESS_REST_S: rest } });
    try {
      const open = await createTestInvoice(app, { title: "Still open" });
      const b = await operatorBrowser(app);
      const page = await b.get(`/admin/invoices/${open.id}`);
      assert.match(page.text.replaceAll("&#39;", "'"), words, "the question the page's script asks");
      const ask = await b.post(`/admin/invoices/${open.id}/cancel`, {});
      assert.match(ask.text, words, "the question's page");
      const done = await b.post(`/admin/invoices/${open.id}/cancel`, { confirm: "yes" });
      assert.match((await b.get(done.location!)).text, words, "the note after");
    } finally {
      await app.close();
    }
  }
});
