import assert from "node:assert/strict";
import type { AppContext } from "../context.ts";
import { addDeliveryOps, claimDeliveryEntry, getDeliveryEntry, recordDeliveryAttempt } from "../db/deliveries.ts";
import { newDelivery } from "./delivery.ts";
import { DELIVERY_LEASE_MS, LeaseKeeper } from "./lease.ts";
import type { Delivery } from "./types.ts";
import { log } from "../log.ts";
import { waitFor } from "../../fixtures/app.ts";

/** How many of a store's next commits fail; a test can ask for more as it goes. */
interface FailurePlan {
  left: number;
}

/**
 * A store whose next commits (as many as `plan` says) fail: after the write landed (as a connection lost after the
 * write can), or before writing anything.
 */
function storeWhoseNextCommitFails(kv: Deno.Kv, when: "after" | "before", plan: FailurePlan = { left: 1 }): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = async () => {
            if (plan.left > 0 && when === "before") {
              plan.left--;
              throw new Error("store unavailable");
            }
            const res = await commit();
            if (plan.left > 0) {
              plan.left--;
              throw new Error("connection reset after the write");
            }
            return res;
          };
          return op;
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A delivery stored leased to us with a second left: low enough that holding it renews it at once. */
async function storeLowLease(kv: Deno.Kv, now: number): Promise<Deno.KvEntry<Delivery>> {
  const d = newDelivery({
    paymentId: "pay_lease_test",
    shopId: "shop_lease_test",
    url: "http://127.0.0.1:9/postback",
    eventType: "payment.succeeded",
    body: "{}",
    now,
    leaseUntil: now + 1_000,
  });
  const op = kv.atomic();
  addDeliveryOps(op, d, { queue: false, now });
  assert.ok((await op.commit()).ok);
  return (await getDeliveryEntry(kv, d.id)) as Deno.KvEntry<Delivery>;
}

/**
 * Holds a low lease with a keeper on a store whose next commit fails (`when`), waits `waitMs`, releases it, and
 * answers what the keeper ended with beside what the store holds.
 */
async function holdThroughFailedCommit(when: "after" | "before", waitMs = 0) {
  const real = await Deno.openKv(":memory:");
  try {
    const now = Date.now();
    const stored = await storeLowLease(real, now);
    const kv = storeWhoseNextCommitFails(real, when);
    const keeper = new LeaseKeeper({ kv, now: () => Date.now() } as unknown as AppContext);
    const held = keeper.hold(stored);
    await new Promise((r) => setTimeout(r, waitMs));
    const leased = await keeper.release(held);
    return { now, held, leased, after: await getDeliveryEntry(real, stored.value.id) };
  } finally {
    real.close();
  }
}

Deno.test("[lease] a renewal that landed but reported an error still counts: the outcome is checked against it", async () => {
  const { now, held, leased, after } = await holdThroughFailedCommit("after");
  assert.ok(after.value!.leaseUntil >= now + DELIVERY_LEASE_MS, "renewed in the store");
  assert.equal(leased.versionstamp, after.versionstamp, "the outcome would check the renewed version");
  assert.equal(held.lost, false);
});

Deno.test("[lease] a renewal the store failed to write is tried again at the next check, not given up", async () => {
  const { now, held, leased, after } = await holdThroughFailedCommit("before", 1_300);
  assert.equal(held.lost, false);
  assert.ok(after.value!.leaseUntil > now + DELIVERY_LEASE_MS, "renewed by the next check");
  assert.equal(leased.versionstamp, after.versionstamp);
});

Deno.test("[lease] while renewals keep failing the keeper says so once, and again only after one has worked", async () => {
  const said: string[] = [];
  const { warn, info } = log;
  log.warn = (msg: string) => void said.push(`warn: ${msg}`);
  log.info = (msg: string) => void said.push(`info: ${msg}`);
  const real = await Deno.openKv(":memory:");
  try {
    let now = Date.now();
    const stored = await storeLowLease(real, now);
    // The renewal at hold and the one at the first check fail; the second check's works.
    const plan = { left: 2 };
    const ctx = { kv: storeWhoseNextCommitFails(real, "before", plan), now: () => now } as unknown as AppContext;
    const keeper = new LeaseKeeper(ctx);
    const held = keeper.hold(stored);
    const renewedSince = (entry: Deno.KvEntry<Delivery>) =>
      waitFor("a renewal", () => (held.entry !== entry && !held.failing ? true : undefined));
    await renewedSince(stored);
    // Low again (the clock moves on): this renewal fails once, and the next check's works.
    const renewed = held.entry;
    plan.left = 1;
    now += DELIVERY_LEASE_MS / 2;
    await renewedSince(renewed);
    await keeper.release(held);
  } finally {
    log.warn = warn;
    log.info = info;
    real.close();
  }
  const failedLine = "warn: postback lease renewal failed; trying again each second";
  const againLine = "info: postback lease renewed again";
  assert.deepEqual(said, [failedLine, againLine, failedLine, againLine]);
});

Deno.test("[lease] another worker's claim that ends on the very millisecond of our renewal is not taken for ours", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const now = Date.now();
    // Our lease ran out just now (a stall): another worker claims it at this very millisecond.
    const ours = await storeLowLease(kv, now - DELIVERY_LEASE_MS);
    const expired = { ...ours, value: { ...ours.value, leaseUntil: now } };
    assert.ok((await kv.atomic().check(ours).set(ours.key, expired.value).commit()).ok);
    const stale = (await getDeliveryEntry(kv, ours.value.id)) as Deno.KvEntry<Delivery>;
    assert.ok(await claimDeliveryEntry(kv, stale, now, DELIVERY_LEASE_MS), "the other worker's claim");
    // Our keeper, on the same clock, renews what it last stored: refused, and the stored lease ends where ours would.
    const keeper = new LeaseKeeper({ kv, now: () => now } as unknown as AppContext);
    const held = keeper.hold(stale);
    await keeper.release(held);
    assert.equal(held.lost, true, "the lease is the other worker's");
  } finally {
    kv.close();
  }
});

/** Runs `fn` on a fresh store holding four postbacks due now (their birth leases ran out a second ago). */
async function withFourDue(fn: (kv: Deno.Kv, due: Deno.KvEntry<Delivery>[], now: number) => Promise<void>) {
  const kv = await Deno.openKv(":memory:");
  try {
    const now = Date.now();
    await fn(kv, await Promise.all([0, 1, 2, 3].map(() => storeLowLease(kv, now - 2_000))), now);
  } finally {
    kv.close();
  }
}

Deno.test("[lease] claims from a stale read fail alone in their group; the other claims share one commit", async () => {
  await withFourDue(async (kv, due, now) => {
    // Another worker claims postback 2 first: the entry read above is stale.
    const theirs = await claimDeliveryEntry(kv, due[2], now, DELIVERY_LEASE_MS);
    assert.ok(theirs);
    // Queued in the same tick, the four claims go to the store as one group, which the stale one fails.
    const first = claimDeliveryEntry(kv, due[0], now, DELIVERY_LEASE_MS);
    const rest = await Promise.all([1, 2, 3].map((i) => claimDeliveryEntry(kv, due[i], now, DELIVERY_LEASE_MS)));
    assert.ok(await first);
    assert.equal(rest[1], null, "the claim from the stale read is refused");
    assert.ok(rest[0] && rest[2] && rest[0].versionstamp === rest[2].versionstamp, "the other two shared one commit");
    const stored = await getDeliveryEntry(kv, due[2].value.id);
    assert.equal(stored.value?.leaseToken, theirs.value.leaseToken, "the lease stays the other worker's");
  });
});

Deno.test("[lease] an outcome recorded on a lost lease fails alone in its group; the other outcomes share one commit", async () => {
  await withFourDue(async (kv, due, now) => {
    const ours = (await Promise.all(due.map((d) => claimDeliveryEntry(kv, d, now, DELIVERY_LEASE_MS))))
      .map((claimed) => claimed!);
    // Our lease on postback 2 is lost: another worker wrote it meanwhile (as after our lease ran out).
    assert.ok(
      (await kv.atomic().check(ours[2]).set(ours[2].key, { ...ours[2].value, leaseToken: "theirs" }).commit()).ok,
    );
    const delivered = (claimed: Deno.KvEntry<Delivery>) => {
      const attempt = { n: 1, at: now, latencyMs: 5, statusCode: 200, error: null, responseStart: "ok" };
      const next: Delivery = { ...claimed.value, status: "delivered", attempts: 1, leaseUntil: 0, updatedAt: now };
      return recordDeliveryAttempt(kv, claimed, attempt, next, { queue: false, now });
    };
    // The first outcome goes alone and holds the store; the next three queue up behind it and go as one group.
    const first = delivered(ours[0]);
    const results = await Promise.all([1, 2, 3].map((i) => delivered(ours[i])));
    assert.equal(await first, true);
    assert.deepEqual(results, [true, false, true]);
    const stored = await Promise.all(due.map((d) => getDeliveryEntry(kv, d.value.id)));
    assert.equal(stored[1].versionstamp, stored[3].versionstamp, "the other two shared one commit");
    assert.equal(stored[2].value?.leaseToken, "theirs", "the other worker's write stays");
    assert.equal(stored[2].value?.status, "pending");
  });
});
