import { hasLateMoney, type Invoice, type InvoiceEvent, type PoolAddress } from "../invoices/types.ts";
import type { Network } from "../invoices/coins.ts";
import type { Delivery } from "../relay/types.ts";
import { sortableId } from "../ids.ts";
import { collectValues, getManyEntries } from "./kv.ts";
import { addActivityOps } from "./activity.ts";
import { addAuditOps, type NewAuditEntry } from "./audit.ts";
import { addDeliveryOps } from "./deliveries.ts";
import { scheduleJob, type ScheduleOptions, unscheduleJob } from "./jobs.ts";
import { addInvoiceStatsOps, type InvoiceStat } from "./stats.ts";
import { groupCommitterPerStore } from "./group_commit.ts";

/**
 * Invoices, their timelines and the shops' deposit-address pools. An address
 * is free when its `invoice_addresses_free` key exists (holding a copy of the
 * address's record, so a pick needs no second read): taking it deletes that
 * key with a check on it, in the same atomic operation that stores the
 * invoice, so two invoices can never take one address (no lock table); closing
 * an invoice writes the key back in the operation that closes it, keyed by
 * when the address may be taken again (it rests first: PoolAddress.readyAt;
 * `invoice_addresses_free_at`), so a pick lists only rested ones, those that
 * rested longest first.
 */
const invoiceKey = (id: string) => ["invoices", id] as const;
const byShopKey = (shopId: string, seq: string) => ["invoices_by_shop", shopId, seq] as const;
const byTimeKey = (seq: string) => ["invoices_by_time", seq] as const;
const eventKey = (invoiceId: string, seq: string) => ["invoice_events", invoiceId, seq] as const;
const addressKey = (shopId: string, network: Network, address: string) =>
  ["invoice_addresses", shopId, network, address] as const;
/**
 * Free markers keyed by when the address may be taken. A prefix of their own: a process still on the code before
 * addresses rested (a rolling upgrade) lists and deletes only the old markers, keyed by the address alone, so it can
 * never take an address whose marker it would leave behind.
 */
const freePrefix = (shopId: string, network: Network) => ["invoice_addresses_free_at", shopId, network] as const;
const freeKey = (shopId: string, network: Network, readyAt: number, address: string) =>
  [...freePrefix(shopId, network), readyAt, address] as const;
/** Free markers written before addresses rested: free at once. */
const oldFreePrefix = (shopId: string, network: Network) => ["invoice_addresses_free", shopId, network] as const;
/** Which shop an address belongs to: the chain's notices name only the network and the address. */
const ownerKey = (network: Network, address: string) => ["invoice_address_owner", network, address] as const;
/**
 * Which invoice a transaction to an address counts for: the first to list it, for good. An address is reused, and
 * the chain may show a transaction again with a time in a later invoice's (rebroadcast after a drop, re-mined after
 * a reorganisation): without this, the later invoice would count the earlier buyer's money, as paid by its buyer.
 */
const depositClaimKey = (network: Network, address: string, txid: string) =>
  ["invoice_deposit_claims", network, address, txid] as const;
/**
 * Invoices holding late money (hasLateMoney), everyone's and by shop, newest first: the console's count and list of
 * them. An index of what the record holds now: an invoice whose late money the chain then drops leaves it.
 */
const lateKey = (seq: string) => ["invoices_late", seq] as const;
const lateByShopKey = (shopId: string, seq: string) => ["invoices_late_by_shop", shopId, seq] as const;
const latePrefix = (shopId?: string) => shopId ? ["invoices_late_by_shop", shopId] : ["invoices_late"];
const checkJob = (id: string) => ({ kind: "invoice_check" as const, id });

export async function getInvoice(kv: Deno.Kv, id: string): Promise<Invoice | null> {
  return (await kv.get<Invoice>(invoiceKey(id))).value;
}

export function getInvoiceEntry(kv: Deno.Kv, id: string): Promise<Deno.KvEntryMaybe<Invoice>> {
  return kv.get<Invoice>(invoiceKey(id));
}

/**
 * Free addresses of a shop's pool on a network that may be taken at `now` (their free markers, with versions), at
 * most `limit`: markers from before addresses rested first (free at once, and freed longest ago), then rested ones,
 * those that rested longest first.
 */
export async function listFreeAddresses(
  kv: Deno.Kv,
  shopId: string,
  network: Network,
  limit: number,
  now: number,
): Promise<Deno.KvEntry<PoolAddress>[]> {
  const out: Deno.KvEntry<PoolAddress>[] = [];
  for await (const e of kv.list<PoolAddress>({ prefix: oldFreePrefix(shopId, network) }, { limit })) out.push(e);
  if (out.length < limit) {
    const prefix = freePrefix(shopId, network);
    const rested = kv.list<PoolAddress>({ start: [...prefix, 0], end: [...prefix, now + 1] }, {
      limit: limit - out.length,
    });
    for await (const e of rested) out.push(e);
  }
  return out;
}

/** The shop an address of the pool belongs to, or null when it is not one of ours. */
export async function getAddressOwner(kv: Deno.Kv, network: Network, address: string): Promise<string | null> {
  return (await kv.get<string>(ownerKey(network, address))).value;
}

/** Which invoice claimed each of these transactions to an invoice's address (depositClaimKey); unclaimed: absent. */
export async function getDepositClaims(
  kv: Deno.Kv,
  at: Pick<Invoice, "network" | "address">,
  txids: string[],
): Promise<Map<string, string>> {
  const entries = await getManyEntries<string>(kv, txids.map((txid) => depositClaimKey(at.network, at.address, txid)));
  const claims = new Map<string, string>();
  entries.forEach((e, i) => e.value !== null && claims.set(txids[i], e.value));
  return claims;
}

/** Every address of a shop's pool on every network (the console lists them; pools stay small by design). */
export async function listPoolAddresses(kv: Deno.Kv, shopId: string, limit = 1000): Promise<PoolAddress[]> {
  return await collectValues(kv.list<PoolAddress>({ prefix: ["invoice_addresses", shopId] }, { limit }));
}

/**
 * How a new invoice gets its address: a free one of the pool, by its free
 * marker as listed, or a new one from the address service, which joins the
 * shop's pool with this invoice.
 */
export type AddressPick =
  | { kind: "free"; free: Deno.KvEntry<PoolAddress> }
  | { kind: "new"; address: PoolAddress };

export interface NewInvoice {
  invoice: Invoice;
  pick: AddressPick;
  jobs: ScheduleOptions;
}

/**
 * Stores a new invoice holding its address, with its indexes, first timeline
 * entry, analytics activity, counters and polling job, in one atomic
 * operation. False when a check failed: the invoice id exists (a retry or a
 * copy of the request won) or the address was taken meanwhile.
 *
 * Concurrent invoices share commits (group commit, see group_commit.ts). Two
 * writes that could collide never share one: the identity is the invoice id,
 * and the caller never has two writes of one free address in flight (see
 * lib/invoices/pool.ts), so every check in a group guards a different key.
 */
export function insertInvoice(kv: Deno.Kv, n: NewInvoice): Promise<boolean> {
  return invoiceWriter(kv).commit(n);
}

const invoiceWriter = groupCommitterPerStore<NewInvoice>({
  addOps: addInsertInvoiceOps,
  identity: (w) => w.invoice.id,
  maxGroup: 32,
});

function addInsertInvoiceOps(op: Deno.AtomicOperation, n: NewInvoice) {
  const inv = n.invoice;
  op.check({ key: invoiceKey(inv.id), versionstamp: null });
  if (n.pick.kind === "free") {
    op.check(n.pick.free)
      .delete(n.pick.free.key)
      .set(addressKey(inv.shopId, inv.network, inv.address), takenBy(n.pick.free.value, inv));
  } else {
    // No pool may have it yet (the owner key is written with every address): the service never hands one out twice.
    const owner = ownerKey(inv.network, inv.address);
    op.check({ key: owner, versionstamp: null })
      .set(owner, inv.shopId)
      .set(addressKey(inv.shopId, inv.network, inv.address), takenBy(n.pick.address, inv));
  }
  op.set(invoiceKey(inv.id), inv)
    .set(byShopKey(inv.shopId, inv.seq), inv.id)
    .set(byTimeKey(inv.seq), inv.id);
  if (inv.checkAt) scheduleJob(op, checkJob(inv.id), inv.checkAt, { ...n.jobs, queue: false });
  // The timeline's first entry is made from the record when read (listInvoiceEvents); only the export needs it now.
  addActivityOps(op, {
    kind: "invoice",
    invoiceId: inv.id,
    shopId: inv.shopId,
    event: createdEvent(inv),
    invoice: inv,
  });
  addInvoiceStatsOps(op, { at: inv.createdAt, shopId: inv.shopId, coin: inv.coin, stat: "invoice_created" });
}

function takenBy({ readyAt: _rested, ...a }: PoolAddress, inv: Invoice): PoolAddress {
  return {
    ...a,
    heldBy: inv.id,
    previousInvoiceId: a.lastInvoiceId,
    lastInvoiceId: inv.id,
    lastTakenAt: inv.createdAt,
    uses: a.uses + 1,
  };
}

export interface InvoiceWrite {
  events: InvoiceEvent[];
  /** Postbacks the change sends (a status move's, late money's), each written with it. */
  deliveries: Delivery[];
  audit?: NewAuditEntry;
  /** The counter the change adds (paid, expired, cancelled), when it is one the stats keep. */
  stat?: InvoiceStat;
  /**
   * The invoice's pool address as read, when this write frees it (the invoice closes), and when it may be taken;
   * `retire`: never again (too many transfers there for the chain's answer, Invoice.addressWorn).
   */
  release?: { entry: Deno.KvEntry<PoolAddress>; readyAt: number; retire?: boolean };
  /**
   * The invoice's pool address as read, when this write of the closed invoice that freed it finds it worn (a read
   * while it rests, or as its rest ends): it leaves the pool if nobody took it since.
   */
  retireFreed?: Deno.KvEntry<PoolAddress>;
  /** Transactions to its address this write claims for the invoice: the write fails if another claimed one first. */
  claims?: string[];
  jobs: ScheduleOptions;
}

/**
 * Writes a new version of an invoice read as `entry`, with everything the
 * change causes (timeline, postback, audit, analytics activity, the polling
 * job's due time, and the address back in the pool when it closes), in one
 * atomic operation. Answers the commit's versionstamp, or null when someone
 * else wrote first: read again.
 */
export async function commitInvoiceWrite(
  kv: Deno.Kv,
  entry: Deno.KvEntry<Invoice>,
  next: Invoice,
  w: InvoiceWrite,
): Promise<string | null> {
  const before = entry.value;
  const op = kv.atomic().check(entry).set(invoiceKey(next.id), next);
  if (before.checkAt !== next.checkAt) {
    if (before.checkAt) unscheduleJob(op, checkJob(next.id), before.checkAt);
    if (next.checkAt) scheduleJob(op, checkJob(next.id), next.checkAt, { ...w.jobs, queue: false });
  }
  if (w.release) {
    // Only the holder frees its address; a record that moved on (never expected) is left alone.
    const { entry, readyAt, retire } = w.release;
    if (entry.value.heldBy === next.id && retire) {
      // Held by nobody and no free marker: no pick finds it again.
      const retired: PoolAddress = { ...entry.value, heldBy: null, retiredAt: next.updatedAt };
      op.check(entry).set(addressKey(next.shopId, next.network, next.address), retired);
    } else if (entry.value.heldBy === next.id) {
      const free: PoolAddress = { ...entry.value, heldBy: null, readyAt };
      op.check(entry)
        .set(addressKey(next.shopId, next.network, next.address), free)
        .set(freeKey(next.shopId, next.network, readyAt, next.address), free);
    }
  }
  if (w.retireFreed) {
    // Freed by this invoice and not taken since (a taker would have made itself the last invoice): its free marker
    // goes, checked with the record, so no pick can take it from here on, a list cached by a process included.
    const { value } = w.retireFreed;
    if (value.heldBy === null && value.lastInvoiceId === next.id && value.retiredAt === undefined) {
      const marker = value.readyAt === undefined
        ? [...oldFreePrefix(next.shopId, next.network), next.address]
        : freeKey(next.shopId, next.network, value.readyAt, next.address);
      op.check(w.retireFreed)
        .set(addressKey(next.shopId, next.network, next.address), { ...value, retiredAt: next.updatedAt })
        .delete(marker);
    }
  }
  // Written whenever it holds late money, not only when that starts: an invoice that got it before the index existed
  // is listed by its next write, or by the backfill (indexLateInvoicesBatch) if it is never written again.
  if (hasLateMoney(next)) {
    op.set(lateKey(next.seq), next.id).set(lateByShopKey(next.shopId, next.seq), next.id);
  } else if (hasLateMoney(before)) {
    op.delete(lateKey(next.seq)).delete(lateByShopKey(next.shopId, next.seq));
  }
  for (const txid of w.claims ?? []) {
    const key = depositClaimKey(next.network, next.address, txid);
    op.check({ key, versionstamp: null }).set(key, next.id);
  }
  for (const e of w.events) op.set(eventKey(next.id, sortableId(e.at)), e);
  // One activity entry per write, however many events: the invoice as it stands after them, which is what the
  // export's rows are made of. One per event carried a copy of the invoice each, and dozens of deposits confirming
  // at once (dust anyone can send to the address) made a write larger than KV takes: the invoice froze.
  const last = w.events.at(-1);
  if (last) {
    addActivityOps(op, { kind: "invoice", invoiceId: next.id, shopId: next.shopId, event: last, invoice: next });
  }
  if (w.stat) addInvoiceStatsOps(op, { at: next.updatedAt, shopId: next.shopId, coin: next.coin, stat: w.stat });
  for (const delivery of w.deliveries) addDeliveryOps(op, delivery, w.jobs);
  if (w.audit) addAuditOps(op, w.audit);
  const res = await op.commit();
  return res.ok ? res.versionstamp : null;
}

/** An invoice's pool address record with its version (the entry a release checks). */
export function getPoolAddressEntry(kv: Deno.Kv, inv: Pick<Invoice, "shopId" | "network" | "address">) {
  return kv.get<PoolAddress>(addressKey(inv.shopId, inv.network, inv.address));
}

/** The first entry of every invoice's timeline, made from the record (not stored apart). */
export function createdEvent(inv: Invoice): InvoiceEvent {
  return {
    type: "created",
    at: inv.createdAt,
    data: { amount: inv.amount, coin: inv.coin, network: inv.network, address: inv.address },
  };
}

/** An invoice's timeline, oldest first (bounded: a few entries per deposit and status). */
export async function listInvoiceEvents(kv: Deno.Kv, inv: Invoice, limit = 500): Promise<InvoiceEvent[]> {
  const stored = await collectValues(kv.list<InvoiceEvent>({ prefix: ["invoice_events", inv.id] }, { limit }));
  // Invoices made before the first entry stopped being stored have it twice otherwise.
  return [createdEvent(inv), ...stored.filter((e) => e.type !== "created")];
}

/** Invoices newest first: one shop's or everyone's, at most `limit`; `lateMoney`: only those holding late money. */
export async function listInvoices(
  kv: Deno.Kv,
  opts: { shopId?: string; limit: number; lateMoney?: boolean },
): Promise<Invoice[]> {
  const prefix = opts.lateMoney
    ? latePrefix(opts.shopId)
    : opts.shopId
    ? ["invoices_by_shop", opts.shopId]
    : ["invoices_by_time"];
  const ids = await collectValues(kv.list<string>({ prefix }, { reverse: true, limit: opts.limit }));
  return await getInvoices(kv, ids);
}

/**
 * How many invoices hold late money, one shop's or everyone's, counted up to `max` (keys only): `more` when there may
 * be others, so the number is shown as a lower bound.
 */
export async function countLateInvoices(
  kv: Deno.Kv,
  opts: { shopId?: string; max: number },
): Promise<{ count: number; more: boolean }> {
  let count = 0;
  for await (const _ of kv.list({ prefix: latePrefix(opts.shopId) }, { limit: opts.max })) count++;
  return { count, more: count >= opts.max };
}

/** Reads invoices by id (those that exist), in the order of `ids`. */
export async function getInvoices(kv: Deno.Kv, ids: string[]): Promise<Invoice[]> {
  return (await getManyEntries<Invoice>(kv, ids.map(invoiceKey))).flatMap((e) => (e.value ? [e.value] : []));
}

/**
 * One batch of the late-invoice index's backfill: invoices listed after `afterSeq` (oldest first) and before `endSeq`,
 * at most `limit`; those holding late money whose index keys are missing get them, each in one atomic operation
 * checked against the invoice and the keys as read (an invoice written meanwhile was indexed by that write). The seq of the last invoice
 * listed, how many were listed, and how many were indexed.
 */
export async function indexLateInvoicesBatch(
  kv: Deno.Kv,
  opts: { afterSeq: string | null; endSeq: string; limit: number },
): Promise<{ last: string | null; listed: number; indexed: number }> {
  const start = opts.afterSeq ? [...byTimeKey(opts.afterSeq), ""] : ["invoices_by_time"];
  const ids: string[] = [];
  let last: string | null = null;
  const list = kv.list<string>({ start, end: byTimeKey(opts.endSeq) }, { limit: opts.limit, batchSize: opts.limit });
  for await (const e of list) {
    ids.push(e.value);
    last = e.key[1] as string;
  }
  const holding = (await getManyEntries<Invoice>(kv, ids.map(invoiceKey)))
    .filter((e): e is Deno.KvEntry<Invoice> => e.value !== null && hasLateMoney(e.value));
  const indexed = await Promise.all(holding.map(async (entry) => {
    const inv = entry.value;
    const [all, byShop] = await kv.getMany([lateKey(inv.seq), lateByShopKey(inv.shopId, inv.seq)]);
    if (all.versionstamp && byShop.versionstamp) return false;
    // The keys as read too: two runners that read them missing at once write them once.
    const op = kv.atomic().check(entry, all, byShop)
      .set(lateKey(inv.seq), inv.id)
      .set(lateByShopKey(inv.shopId, inv.seq), inv.id);
    return (await op.commit()).ok;
  }));
  return { last, listed: ids.length, indexed: indexed.filter(Boolean).length };
}
