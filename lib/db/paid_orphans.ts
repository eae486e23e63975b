import type { PaidOrphan, PaidOrphanHandled } from "../payments/orphans.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import { addAuditOps, type NewAuditEntry } from "./audit.ts";

/**
 * One payment at a provider that took money for an id of ours that no stored payment names. A provider's reference
 * names one payment within one of its accounts, and every webhook arrives on the account it is about: the account and
 * the reference identify it, whichever of our ids it names.
 */
const orphanKey = (accountId: string, ref: string) => ["paid_orphans", accountId, ref] as const;
/**
 * The paid orphans nobody has handled yet, by provider and account: the gauge counts them by reading these keys
 * alone (no records), and the console lists them first. Written and removed in the same write as the record.
 */
const unhandledKey = (provider: string, accountId: string, ref: string) =>
  ["paid_orphans_unhandled", provider, accountId, ref] as const;
/** The handled ones, newest handling last: the console lists the recent ones below those still waiting. */
const handledKey = (at: number, accountId: string, ref: string) =>
  ["paid_orphans_handled", at, accountId, ref] as const;

/**
 * How often a write of a record (a sighting or a mark) is tried again when others (copies of its webhook, a mark)
 * write it at once.
 */
const WRITE_ATTEMPTS = 5;

/** A refused webhook's news of a paid orphan, as the record keeps it (the strings already capped). */
export type OrphanSighting = Omit<PaidOrphan, "firstSeenAt" | "lastSeenAt" | "timesSeen" | "handled" | "earlierMark">;

/**
 * Records one refused webhook about a paid orphan: a new record (and its unhandled index key), or one more sighting
 * of a known one, in one atomic write checked against the record read. One already handled is left as it is and
 * answered as it stands, so the caller acknowledges the news instead; unless it was marked while its money was on its
 * way and the news is that it arrived: the mark answered less than that, so it waits for an operator again (its mark
 * kept as earlierMark, out of the handled index).
 */
export async function recordPaidOrphanSighting(kv: Deno.Kv, seen: OrphanSighting, now: number): Promise<PaidOrphan> {
  const key = orphanKey(seen.accountId, seen.ref);
  for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
    const entry = await kv.get<PaidOrphan>(key);
    const before = entry.value;
    const arrived = before?.claimed === "pending" && seen.claimed === "succeeded";
    if (before?.handled && !arrived) return before;
    const earlierMark = before?.handled ?? before?.earlierMark;
    // Retries come out of order (Stripe's do): a late one of "on its way" does not take back "arrived".
    const stepBack = before?.claimed === "succeeded" && seen.claimed === "pending";
    const next: PaidOrphan = {
      ...seen,
      claimed: stepBack ? before.claimed : seen.claimed,
      firstSeenAt: before?.firstSeenAt ?? now,
      lastSeenAt: now,
      timesSeen: (before?.timesSeen ?? 0) + 1,
      handled: null,
      ...(earlierMark ? { earlierMark } : {}),
    };
    const op = kv.atomic().check(entry).set(key, next).set(unhandledKey(next.provider, next.accountId, next.ref), true);
    if (before?.handled) op.delete(handledKey(before.handled.at, before.accountId, before.ref));
    if ((await op.commit()).ok) return next;
  }
  throw new ConflictError("The paid orphan's record is being written by another copy of this webhook; retry.");
}

export async function getPaidOrphan(kv: Deno.Kv, accountId: string, ref: string): Promise<PaidOrphan | null> {
  return (await kv.get<PaidOrphan>(orphanKey(accountId, ref))).value;
}

/**
 * The unhandled index's keys, at most `perAccount` of each provider's account: a cap on all of them together would let a
 * flood on one account (its webhook secret out, a provider's bug) hide every later account's orphans from the gauge,
 * its alert and the console. Past an account's cap the list starts again after its last possible key (a boolean part
 * sorts after every string), so a scan reads at most one key more than it keeps per account.
 */
async function* unhandledIndex(kv: Deno.Kv, perAccount: number): AsyncGenerator<[string, string, string]> {
  const prefix = ["paid_orphans_unhandled"];
  let start: Deno.KvKey | null = null;
  while (true) {
    let group: Deno.KvKey = [];
    let kept = 0;
    const from: Deno.KvKey | null = start;
    start = null;
    for await (const e of kv.list<true>(from ? { prefix, start: from } : { prefix })) {
      const [, provider, account, ref] = e.key as unknown as [string, string, string, string];
      if (group[0] !== provider || group[1] !== account) [group, kept] = [[provider, account], 0];
      if (kept === perAccount) {
        start = [...prefix, provider, account, true];
        break;
      }
      kept++;
      yield [provider, account, ref];
    }
    if (!start) return;
  }
}

/**
 * The unhandled paid orphans by provider and account, from the index keys alone; counting stops at `max` keys of an
 * account so a flood of them cannot slow a scrape (then its count says at least that many).
 */
export async function countUnhandledPaidOrphans(
  kv: Deno.Kv,
  max: number,
): Promise<{ provider: string; account: string; count: number }[]> {
  const counts = new Map<string, { provider: string; account: string; count: number }>();
  for await (const [provider, account] of unhandledIndex(kv, max)) {
    const k = JSON.stringify([provider, account]);
    const c = counts.get(k) ?? { provider, account, count: 0 };
    c.count++;
    counts.set(k, c);
  }
  return [...counts.values()];
}

/** The unhandled paid orphans (up to `unhandled` of each provider's account) and the most recently handled ones. */
export async function listPaidOrphans(
  kv: Deno.Kv,
  limits: { unhandled: number; handled: number },
): Promise<{ unhandled: PaidOrphan[]; handled: PaidOrphan[] }> {
  const records = async (ids: AsyncIterable<string[]>) => {
    const keys: Deno.KvKey[] = [];
    for await (const [accountId, ref] of ids) keys.push(orphanKey(accountId, ref));
    const out: PaidOrphan[] = [];
    for (let i = 0; i < keys.length; i += 10) {
      for (const e of await kv.getMany<PaidOrphan[]>(keys.slice(i, i + 10))) if (e.value) out.push(e.value);
    }
    return out;
  };
  async function* unhandledIds() {
    for await (const [, accountId, ref] of unhandledIndex(kv, limits.unhandled)) yield [accountId, ref];
  }
  async function* handledIds() {
    const latest = kv.list<true>({ prefix: ["paid_orphans_handled"] }, { limit: limits.handled, reverse: true });
    for await (const e of latest) yield e.key.slice(-2) as string[];
  }
  const [unhandled, handled] = await Promise.all([records(unhandledIds()), records(handledIds())]);
  return { unhandled: unhandled.toSorted((a, b) => b.lastSeenAt - a.lastSeenAt), handled };
}

/**
 * Marks a paid orphan handled: the record's mark, its removal from the unhandled index, its place among the handled
 * and the operator's audit entry, in one atomic write checked against the record read. A sighting written meanwhile
 * (its provider's retry) is read again and marked with it: the operator's word does not depend on how often it was
 * seen. NotFoundError for none; ConflictError when it was handled already (the refusal says by whom).
 */
export async function markPaidOrphanHandled(
  kv: Deno.Kv,
  which: { accountId: string; ref: string },
  handled: PaidOrphanHandled,
  audit: (before: PaidOrphan, after: PaidOrphan) => NewAuditEntry,
): Promise<PaidOrphan> {
  const key = orphanKey(which.accountId, which.ref);
  for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
    const entry = await kv.get<PaidOrphan>(key);
    const before = entry.value;
    if (!before) throw new NotFoundError("Unknown paid orphan.");
    if (before.handled) throw alreadyHandled(before.handled);
    const after: PaidOrphan = { ...before, handled };
    const op = kv.atomic().check(entry).set(key, after)
      .delete(unhandledKey(before.provider, before.accountId, before.ref))
      .set(handledKey(handled.at, before.accountId, before.ref), true);
    if ((await addAuditOps(op, audit(before, after)).commit()).ok) return after;
  }
  throw new ConflictError("The paid orphan kept changing while it was being marked (its provider sends it); retry.");
}

function alreadyHandled(h: PaidOrphanHandled): ConflictError {
  const when = new Date(h.at).toISOString().replace("T", " ").slice(0, 19);
  return new ConflictError(
    `This paid orphan was marked handled already, by ${h.by} at ${when} UTC ("${h.note}"). Nothing was changed.`,
    "orphan_already_handled",
  );
}
