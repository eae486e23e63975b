import type { AppContext } from "../context.ts";
import { type AddressPick, listFreeAddresses } from "../db/invoices.ts";
import type { Network } from "./coins.ts";
import { requireChain } from "./chain.ts";
import { ConflictError, UpstreamError } from "../errors.ts";
import { warnRepeatable } from "../log.ts";
import type { PoolAddress } from "./types.ts";

/**
 * Picking deposit addresses for new invoices. Exclusivity is the store's: an
 * invoice is stored only if the free marker it read is still there, or, for an
 * address nobody stored yet, only if no pool has it (see lib/db/invoices.ts).
 * This module only keeps requests from wasting tries and round trips:
 *
 * - Free addresses of the pool (released by closed invoices) go first, so a
 *   pool stays as large as its most invoices open at once. Each process lists
 *   them in batches and hands each one to one request at a time, so
 *   concurrent requests here do not all race for the first free address and a
 *   write of one address is never in flight twice. A list that found none is
 *   not repeated for LIST_PAUSE_MS, unless this process freed one meanwhile.
 * - When none is free, a new address from the address service, asked for in
 *   batches ahead of need (one round trip serves ADDRESS_BATCH invoices) and
 *   kept in memory: it is stored by the invoice that takes it, in that
 *   invoice's own commit. A process that stops drops the ones it never used;
 *   nobody was ever shown them, so nothing can arrive there.
 */

/** Free markers read per list: one list serves this many picks. */
const LIST_BATCH = 64;
/** After a list found nothing free, new addresses are used for this long before listing again. */
const LIST_PAUSE_MS = 1_000;
/** Addresses asked of the service per round trip. */
export const ADDRESS_BATCH = 20;
/** The next batch is asked for when fewer new addresses than this are left, so requests rarely wait for one. */
const REFILL_BELOW = ADDRESS_BATCH / 2;
const MAX_ROUNDS = 4;

interface PoolCache {
  /** Free markers listed and not handed out yet, oldest first. */
  queue: Deno.KvEntry<PoolAddress>[];
  /** Addresses handed to a request whose write has not settled. */
  inFlight: Set<string>;
  /** One list at a time per pool: concurrent requests wait for it instead of listing again. */
  listing: Promise<number> | null;
  /** When a list last found nothing free (0: list before the next new address is used). */
  listedEmptyAt: number;
  /** New addresses from the service, not in any pool yet (this process's, in memory only). */
  fresh: string[];
  /** One call to the address service at a time per pool; it settles with what went wrong, or null. */
  refilling: Promise<unknown> | null;
}

const caches = new WeakMap<Deno.Kv, Map<string, PoolCache>>();

function cacheFor(kv: Deno.Kv, shopId: string, network: Network): PoolCache {
  let byPool = caches.get(kv);
  if (!byPool) caches.set(kv, byPool = new Map());
  const id = `${shopId}\0${network}`;
  let cache = byPool.get(id);
  if (!cache) {
    byPool.set(
      id,
      cache = { queue: [], inFlight: new Set(), listing: null, listedEmptyAt: 0, fresh: [], refilling: null },
    );
  }
  return cache;
}

/** An address pick and what to call once its write settled. */
export interface Pick {
  pick: AddressPick;
  address: string;
  /**
   * Frees the address for this process's other requests; `unused`: the write failed for a reason of its own (a
   * copy of the request won), so the address goes back to be picked again.
   */
  done(unused?: boolean): void;
}

/**
 * A free address of the shop's pool on the network, or else a new one from
 * the address service. `fresh` skips the free ones (after losing races for
 * those, a new address is the sure way forward).
 */
export async function pickAddress(
  ctx: AppContext,
  shopId: string,
  network: Network,
  opts: { now: number; notifyUrl: string; fresh?: boolean },
): Promise<Pick> {
  const cache = cacheFor(ctx.kv, shopId, network);
  // Free ones are listed at most once per pick: what a list finds may all be in this process's writes already.
  let listed = false;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const entry = opts.fresh ? null : takeQueued(cache);
    if (entry) {
      cache.inFlight.add(entry.value.address);
      return {
        pick: { kind: "free", free: entry },
        address: entry.value.address,
        done: (unused) => {
          cache.inFlight.delete(entry.value.address);
          if (unused) cache.queue.unshift(entry);
        },
      };
    }
    if (!opts.fresh && !listed && ctx.now() - cache.listedEmptyAt >= LIST_PAUSE_MS) {
      listed = true;
      cache.listing ??= listFreeAddresses(ctx.kv, shopId, network, LIST_BATCH, ctx.now())
        .then((entries) => enqueue(cache, entries, ctx.now()))
        .finally(() => (cache.listing = null));
      if (await cache.listing) continue;
    }
    if (cache.fresh.length < REFILL_BELOW) {
      // Ahead of need: a failure is reported to the request that has to wait for this batch (below).
      cache.refilling ??= refill(ctx, cache, shopId, network, opts.notifyUrl)
        .then(() => null, (err) => {
          // The requests waiting for this batch are refused (502/504) with nothing more said: the log says why, the
          // first of a minute per network (a burst of invoices would otherwise write a line each).
          if (err instanceof UpstreamError) {
            warnRepeatable(`chain address batch ${network}`, "chain address batch failed; new invoices wait for it", {
              network,
              shopId,
              detail: err.detail,
            });
          }
          return err;
        })
        .finally(() => (cache.refilling = null));
    }
    const address = cache.fresh.shift();
    if (address) {
      const record: PoolAddress = {
        address,
        network,
        shopId,
        createdAt: opts.now,
        heldBy: null,
        lastInvoiceId: null,
        lastTakenAt: null,
        previousInvoiceId: null,
        uses: 0,
      };
      return {
        pick: { kind: "new", address: record },
        address,
        done: (unused) => unused && cache.fresh.unshift(address),
      };
    }
    const failed = await cache.refilling;
    if (failed) throw failed;
  }
  // Other requests took every address listed or made meanwhile: the shop's retry finds some.
  throw new ConflictError("Too many invoices are taking addresses at once; retry.");
}

/**
 * Tells this process's picks that an address of the pool was freed, so the
 * next pick lists free addresses again instead of using a new one.
 */
export function noteAddressFreed(kv: Deno.Kv, shopId: string, network: Network) {
  cacheFor(kv, shopId, network).listedEmptyAt = 0;
}

/** Asks the address service for a batch of new addresses for this process's picks. */
async function refill(ctx: AppContext, cache: PoolCache, shopId: string, network: Network, notifyUrl: string) {
  const addresses = await requireChain(ctx).createAddresses(network, shopId, notifyUrl, ADDRESS_BATCH);
  cache.fresh.push(...addresses);
}

/** Adds listed free markers to the queue (those not queued already); answers how many were found. */
function enqueue(cache: PoolCache, entries: Deno.KvEntry<PoolAddress>[], now: number): number {
  const queued = new Set(cache.queue.map((e) => e.value.address));
  for (const e of entries) if (!queued.has(e.value.address)) cache.queue.push(e);
  if (!entries.length) cache.listedEmptyAt = now;
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
