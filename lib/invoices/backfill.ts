import type { Backfill } from "../backfills/run.ts";
import type { AppContext } from "../context.ts";
import type { BackfillState } from "../db/backfills.ts";
import { indexLateInvoicesBatch } from "../db/invoices.ts";
import { encodeTime } from "../ids.ts";

/**
 * The late-invoice index (invoices_late, invoices_late_by_shop: the console's count and list of invoices holding late
 * money) for invoices written before it existed, which it listed only from their next write: one closed for good is
 * never written again, and its late money stayed out of the overview's count.
 *
 * Only an invoice's record says whether it holds late money (a late deposit the chain still shows), so every invoice
 * created before the cut is read once, oldest first through the time listing, a batch of records at a time (later
 * ones were written by this version, which indexes them); only those holding late money are written. Once done, a
 * start-up costs one read. The index is what the record holds, so a run again, from scratch, writes nothing new.
 */
export const lateInvoiceIndexBackfill: Backfill = {
  name: "invoice_late_index",
  what: "the late-money index of invoices written before it existed (the overview's count of invoices with late money)",
  step: backfillLateInvoiceIndex,
};

async function backfillLateInvoiceIndex(ctx: AppContext, state: BackfillState, batchSize: number) {
  const batch = await indexLateInvoicesBatch(ctx.kv, {
    afterSeq: state.after,
    endSeq: encodeTime(state.cut + 1),
    limit: batchSize,
  });
  return { after: batch.last ?? state.after, done: batch.listed < batchSize, written: batch.indexed };
}
