import type { AppContext } from "../context.ts";
import { type AddressPick, insertFreeAddresses, listFreeAddresses } from "../db/invoices.ts";
import type { Network } from "./coins.ts";
import { requireChain } from "./chain.ts";
import type { PoolAddress } from "./types.ts";

/**
 * Picking deposit addresses for new invoices. Exclusivity is the store's: an
 * invoice is stored only if the free marker it read is still there (see
 * lib/db/invoices.ts). This module only keeps requests from wasting tries:
 * each isolate lists free addresses in batches and hands each one to one
 * request at a time, so concurrent requests here do not all race for the
 * first free address, and a write of one address is never in flight twice.
 */

/** Free markers read per list: one list serves this many picks. */
const LIST_BATCH = 64;
/**
 * Addresses asked of the service when none is free: the first is used at
 * once, the rest wait free in the pool, so a growing shop makes one round
 * trip per this many invoices rather than one each.
 */
export const ADDRESS_BATCH = 10;

interface PoolCache {
  /** Free markers listed and not handed out yet, oldest first. */
  queue: Deno.KvEntry<PoolAddress>[];
  /** Addresses handed to a request whose write has not settled. */
  inFlight: Set<string>;
  /** One list at a time per pool: concurrent requests wait for it instead of listing again. */
  listing: Promise<void> | null;
}

const caches = new WeakMap<Deno.Kv, Map<string, PoolCache>>();

function cacheFor(kv: Deno.Kv, shopId: string, network: Network): PoolCache {
  let byPool = caches.get(kv);
  if (!byPool) caches.set(kv, byPool = new Map());
  const id = `${shopId}\0${network}`;
  let cache = byPool.get(id);
  if (!cache) byPool.set(id, cache = { queue: [], inFlight: new Set(), listing: null });
  return cache;
}

/** An address pick and what to do once its write settled (release it for this isolate's other requests). */
export interface Pick {
  pick: AddressPick;
  address: string;
  done(stored: boolean): Promise<void>;
}

/**
 * A free address of the shop's pool on the network, or new ones from the
 * address service when none is free. `fresh` skips the free ones (after
 * losing races for them, new addresses are the sure way forward).
 */
export async function pickAddress(
  ctx: AppContext,
  shopId: string,
  network: Network,
  opts: { now: number; notifyUrl: string; fresh?: boolean },
): Promise<Pick> {
  const cache = cacheFor(ctx.kv, shopId, network);
  if (!opts.fresh) {
    for (let lists = 0; lists < 2; lists++) {
      const entry = takeQueued(cache);
      if (entry) {
        cache.inFlight.add(entry.value.address);
        return {
          pick: { kind: "free", free: entry },
          address: entry.value.address,
          done: () => {
            cache.inFlight.delete(entry.value.address);
            return Promise.resolve();
          },
        };
      }
      cache.listing ??= listFreeAddresses(ctx.kv, shopId, network, LIST_BATCH)
        .then((entries) => {
          const queued = new Set(cache.queue.map((e) => e.value.address));
          for (const e of entries) if (!queued.has(e.value.address)) cache.queue.push(e);
        })
        .finally(() => (cache.listing = null));
      await cache.listing;
    }
  }
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
  return {
    pick: { kind: "new", records },
    address: addresses[0],
    // Addresses made for a request that stored nothing are not thrown away: they join the pool, free.
    done: (stored) => (stored ? Promise.resolve() : insertFreeAddresses(ctx.kv, records)),
  };
}

/** The next listed free address nobody in this isolate is writing, or null when the queue is empty. */
function takeQueued(cache: PoolCache): Deno.KvEntry<PoolAddress> | null {
  while (cache.queue.length) {
    const entry = cache.queue.shift()!;
    if (!cache.inFlight.has(entry.value.address)) return entry;
  }
  return null;
}
