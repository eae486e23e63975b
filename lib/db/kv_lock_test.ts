import assert from "node:assert/strict";
import { GroupCommitter } from "./group_commit.ts";
import { GroupReader } from "./group_read.ts";
import { isKvLockError, LOCK_ATTEMPTS, openKv, retryOnLock } from "./kv.ts";

/**
 * Two connections to one SQLite file behave like two processes: each has its
 * own SQLite connection, so a write whose checks read a snapshot the other
 * connection has since moved past is refused with `database is locked`.
 */
const WRITERS = 16;
const WRITES_EACH = 60;

/** Every connection runs WRITERS writers, each making WRITES_EACH checked writes of its own keys at once. */
async function contend(conns: Deno.Kv[], write: (kv: Deno.Kv, key: Deno.KvKey) => Promise<boolean>) {
  const errors: unknown[] = [];
  let stored = 0;
  await Promise.all(conns.flatMap((kv, c) =>
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = 0; i < WRITES_EACH; i++) {
        try {
          if (await write(kv, ["contended", c, w, i])) stored++;
        } catch (err) {
          errors.push(err);
        }
      }
    })
  ));
  return { stored, errors };
}

const checkedWrite = async (kv: Deno.Kv, key: Deno.KvKey) =>
  (await kv.atomic().check({ key, versionstamp: null }).set(key, 1).commit()).ok;

async function withFile(fn: (path: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "aimbrella-kv-lock-" });
  try {
    await fn(`${dir}/kv.sqlite3`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("[kv] a second connection to the file makes plain Deno KV refuse checked writes with `database is locked`", async () => {
  await withFile(async (path) => {
    const conns = [await Deno.openKv(path), await Deno.openKv(path)];
    try {
      // Whether two connections collide depends on the scheduler: on a busy machine one round can pass without a
      // collision, so a few rounds (each on fresh keys) are given the chance to show one.
      let errors: unknown[] = [];
      for (let round = 0; round < 5 && errors.length === 0; round++) {
        const result = await contend(conns, (kv, key) => checkedWrite(kv, [...key, round]));
        assert.equal(result.stored + result.errors.length, 2 * WRITERS * WRITES_EACH);
        errors = result.errors;
      }
      assert.ok(errors.length > 0, "no write was refused: the test no longer provokes the lock error");
      for (const err of errors) {
        assert.ok(err instanceof TypeError);
        assert.equal(err.message, "database is locked");
        assert.ok(isKvLockError(err));
      }
    } finally {
      conns.forEach((kv) => kv.close());
    }
  });
});

Deno.test("[kv] every checked write and set commits when two connections write to one file at once", async () => {
  await withFile(async (path) => {
    const conns = [await openKv(path), await openKv(path)];
    try {
      const checked = await contend(conns, checkedWrite);
      assert.deepEqual(checked.errors, []);
      assert.equal(checked.stored, 2 * WRITERS * WRITES_EACH);
      // A set has no checks, so it rarely meets the error; it goes through the same retry.
      const plain = await contend(conns, async (kv, key) => (await kv.set(["plain", ...key], 2)).ok);
      assert.deepEqual(plain.errors, []);
    } finally {
      conns.forEach((kv) => kv.close());
    }
  });
});

Deno.test("[group commit] no waiter of a group fails when another connection keeps locking the file", async () => {
  await withFile(async (path) => {
    const [mine, other] = [await openKv(path), await openKv(path)];
    try {
      const writer = new GroupCommitter<string>(mine, {
        addOps: (op, id) => op.check({ key: ["grouped", id], versionstamp: null }).set(["grouped", id], id),
        identity: (id) => id,
        maxGroup: 8,
      });
      let stop = false;
      const competitor = (async () => {
        // Only the group's waiters are judged; the competitor just keeps the file busy.
        for (let i = 0; !stop; i++) await checkedWrite(other, ["competitor", i]).catch(() => false);
      })();
      const ids = Array.from({ length: 400 }, (_, i) => `g${i}`);
      const results = await Promise.allSettled(ids.map((id) => writer.commit(id)));
      stop = true;
      await competitor;
      assert.deepEqual(results.filter((r) => r.status === "rejected"), []);
      assert.deepEqual(results.map((r) => r.status === "fulfilled" && r.value), ids.map(() => true));
    } finally {
      mine.close();
      other.close();
    }
  });
});

Deno.test("[group read] a lock error on a group's read is retried for all its waiters, a lone one too", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(["v", 1], "one");
    let refusals = 1;
    const store = Object.create(kv) as Deno.Kv;
    store.getMany = ((keys: Deno.KvKey[]) => {
      if (refusals-- > 0) return Promise.reject(new TypeError("database is locked"));
      return kv.getMany(keys);
    }) as Deno.Kv["getMany"];
    const reader = new GroupReader(store);
    const [entry] = await reader.getMany<[string]>([["v", 1]]);
    assert.equal(entry.value, "one");
  } finally {
    kv.close();
  }
});

Deno.test("[kv] a write keeps failing with the lock error only a bounded number of times; other errors are not retried", async () => {
  let attempts = 0;
  const locked = () => {
    attempts++;
    return Promise.reject(new TypeError("database is locked"));
  };
  await assert.rejects(locked().catch((err) => retryOnLock(err, locked)), {
    name: "TypeError",
    message: "database is locked",
  });
  assert.equal(attempts, LOCK_ATTEMPTS);

  attempts = 0;
  const tooLarge = () => {
    attempts++;
    return Promise.reject(new TypeError("Key too large for write (max 2048 bytes)"));
  };
  await assert.rejects(tooLarge().catch((err) => retryOnLock(err, tooLarge)), { message: /Key too large/ });
  assert.equal(attempts, 1);
});

Deno.test("[kv] opening a file another process holds locked while it sets the file up waits for the lock", async () => {
  await withFile(async (path) => {
    // Another process creates the file and holds SQLite's exclusive lock longer than one open waits (denokv: 5 s),
    // by more than the test's own delays could make up.
    const holder = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { DatabaseSync } from "node:sqlite";
         const db = new DatabaseSync(${JSON.stringify(path)});
         db.exec("BEGIN EXCLUSIVE; CREATE TABLE setting_up (x)");
         console.log("locked");
         await new Promise((r) => setTimeout(r, 8_000));
         db.exec("COMMIT");`,
      ],
      stdout: "piped",
    }).spawn();
    const lines = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assert.equal((await lines.read()).value?.trim(), "locked");
    const kv = await openKv(path);
    try {
      assert.ok((await kv.set(["opened"], true)).ok);
    } finally {
      kv.close();
      lines.releaseLock();
      await holder.status;
    }
  });
});

Deno.test("[kv] reads of a KV file go through a second connection and still see every commit that finished before them", async () => {
  await withFile(async (path) => {
    const kv = await openKv(path);
    try {
      // Writers flat out on the one connection, each reading its key back through the other right after its commit.
      const stale: string[] = [];
      await Promise.all(Array.from({ length: 8 }, async (_, w) => {
        for (let i = 1; i <= 100; i++) {
          const res = await kv.atomic().set(["counter", w], i).set(["log", w, i], true).commit();
          assert.ok(res.ok);
          const [got] = await kv.getMany<[number]>([["counter", w]]);
          if (got.value !== i || got.versionstamp! < res.versionstamp) stale.push(`${w}:${i} read ${got.value}`);
          if ((await kv.get(["counter", w])).value !== i) stale.push(`${w}:${i} get`);
        }
      }));
      assert.deepEqual(stale, []);
      let listed = 0;
      for await (const _ of kv.list({ prefix: ["log"] })) listed++;
      assert.equal(listed, 800);
    } finally {
      kv.close();
    }
    // Closing closed both connections: the file opens again and holds everything written.
    const again = await openKv(path);
    assert.equal((await again.get(["counter", 7])).value, 100);
    again.close();
  });
});
