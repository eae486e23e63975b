import type { AppContext } from "../context.ts";
import { type AddressPick, insertFreeAddresses, listFreeAddresses } from "../db/invoices.ts";
import type { Network } from "./coins.ts";
import { requireChain } from "./chain.ts";
import { ConflictError } from "../errors.ts";
import type { PoolAddress } from "./types.ts";

/**
 * Picking deposit addresses for new invoices. Exclusivity is the store's: an
 * invoice is stored only if the free marker it read is still there (see
 * lib/db/invoices.ts). This module only keeps requests from wasting tries:
 * each process lists free addresses in batches and hands each one to one
 * request at a time, so concurrent requests here do not all race for the
 * first free address and a write of one address is never in flight twice;
 * and when none is free, one request asks the address service for a batch,
 * stores it free, and the waiting requests take from it at once.
 */

/** Free markers read per list: one list serves this many picks. */
const LIST_BATCH = 64;
/**
 * Addresses asked of the service when none is free: one round trip serves
 * this many invoices (addresses cost the service nothing; a pool stays as
 * large as its most invoices open at once, rounded up to this).
 */
export const ADDRESS_BATCH = 20;
const MAX_ROUNDS = 4;

interface PoolCache {
  /** Free markers listed and not handed out yet, oldest first. */
  queue: Deno.KvEntry<PoolAddress>[];
  /** Addresses handed to a request whose write has not settled. */
  inFlight: Set<string>;
  /** One list at a time per pool: concurrent requests wait for it instead of listing again. */
  listing: Promise<number> | null;
  /** One call to the address service at a time per pool, for the same reason. */
  refilling: Promise<void> | null;
}

const caches = new WeakMap<Deno.Kv, Map<string, PoolCache>>();

function cacheFor(kv: Deno.Kv, shopId: string, network: Network): PoolCache {
  let byPool = caches.get(kv);
  if (!byPool) caches.set(kv, byPool = new Map());
  const id = `${shopId}\0${network}`;
  let cache = byPool.get(id);
  if (!cache) byPool.set(id, cache = { queue: [], inFlight: new Set(), listing: null, refilling: null });
  return cache;
}

/** An address pick and what to call once its write settled (frees it for this process's other requests). */
export interface Pick {
  pick: AddressPick;
  address: string;
  done(): void;
}

/**
 * A free address of the shop's pool on the network; when none is free, new
 * ones from the address service, stored free and taken at once. `fresh`
 * skips what is listed already (after losing races for those, new addresses
 * are the sure way forward).
 */
export async function pickAddress(
  ctx: AppContext,
  shopId: string,
  network: Network,
  opts: { now: number; notifyUrl: string; fresh?: boolean },
): Promise<Pick> {
  const cache = cacheFor(ctx.kv, shopId, network);
  let refill = opts.fresh === true;
  let listed = false;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const entry = refill ? null : takeQueued(cache);
    if (entry) {
      cache.inFlight.add(entry.value.address);
      return {
        pick: { kind: "free", free: entry },
        address: entry.value.address,
        done: () => cache.inFlight.delete(entry.value.address),
      };
    }
    // Listed once and still nothing to take (all of it being written by other requests here): new ones, then.
    if (!refill && !listed) {
      listed = true;
      cache.listing ??= listFreeAddresses(ctx.kv, shopId, network, LIST_BATCH)
        .then((entries) => enqueue(cache, entries))
        .finally(() => (cache.listing = null));
      if (await cache.listing) continue;
    }
    refill = false;
    cache.refilling ??= refillPool(ctx, cache, shopId, network, opts).finally(() => (cache.refilling = null));
    await cache.refilling;
  }
  // Other requests took every address listed or made meanwhile: the shop's retry finds some.
  throw new ConflictError("Too many invoices are taking addresses at once; retry.");
}

/** Asks the address service for a batch of addresses and stores them all free, queued for this process's requests. */
async function refillPool(
  ctx: AppContext,
  cache: PoolCache,
  shopId: string,
  network: Network,
  opts: { now: number; notifyUrl: string },
): Promise<void> {
  const addresses = await requireChain(ctx).createAddresses(network, shopId, opts.notifyUrl, ADDRESS_BATCH);
  const records: PoolAddress[] = addresses.map((address) => ({
    address,
    network,
    shopId,
    createdAt: opts.now,
    heldBy: null,
    lastInvoiceId: null,
    lastTakenAt: null,
    previousInvoiceId: null,
    uses: 0,
  }));
  // New addresses go first: they are the ones no other process has listed yet.
  cache.queue.unshift(...await insertFreeAddresses(ctx.kv, records));
}

/** Adds listed free markers to the queue (those not queued already); answers how many were found. */
function enqueue(cache: PoolCache, entries: Deno.KvEntry<PoolAddress>[]): number {
  const queued = new Set(cache.queue.map((e) => e.value.address));
  for (const e of entries) if (!queued.has(e.value.address)) cache.queue.push(e);
  return entries.length;
}

/** The next listed free address nobody in this process is writing, or null when the queue is empty. */
function takeQueued(cache: PoolCache): Deno.KvEntry<PoolAddress> | null {
  while (cache.queue.length) {
    const entry = cache.queue.shift()!;
    if (!cache.inFlight.has(entry.value.address)) return entry;
  }
  return null;
}
