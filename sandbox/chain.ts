import { type Context, Hono } from "hono";
import { z } from "zod";
import { randomBytes, randomId } from "../lib/ids.ts";
import { log } from "../lib/log.ts";
import { constantTimeEqual } from "../lib/crypto.ts";
import { COIN_OPTIONS, type Network } from "../lib/invoices/coins.ts";
import {
  type AddressState,
  CHAIN_SIGNATURE_HEADER,
  type ChainNotice,
  MAX_DEPOSITS_SHOWN,
  NetworkSchema,
  signChainNotice,
} from "../lib/invoices/chain_wire.ts";

/**
 * A real HTTP imitation of a blockchain and its address service, beside the
 * Bansky sandbox: it issues deposit addresses, takes simulated deposits, mines
 * blocks (confirmations), answers what an address holds, and sends a signed
 * notice to the address's notify URL when a deposit is seen or confirmed
 * (retried until answered 2xx). `dropNotices` loses them all, so only polling
 * finds out; `addressDelayMs` makes the address service slow to answer. A
 * deposit still in the mempool can be dropped (`POST /drop`), as a double
 * spend or an eviction would. The API is described in docs/public/sandbox.md.
 */
export interface ChainKnobs {
  /** Send no notices at all (lost in transit). */
  dropNotices: boolean;
  /** How long a request for new addresses waits before it is answered (a busy address service). */
  addressDelayMs: number;
}

export interface ChainSimulatorOptions {
  apiToken: string;
  webhookSecret: string;
  knobs?: Partial<ChainKnobs>;
}

interface SimDeposit {
  txid: string;
  coin: string;
  amount: bigint;
  seenAt: number;
  /** The block height it was mined in; null while in the mempool. */
  block: number | null;
}

interface SimAddress {
  network: Network;
  address: string;
  label: string;
  notifyUrl: string | null;
  deposits: SimDeposit[];
}

/** Notices about a deposit stop once it is this deep; nobody waits for more. */
const NOTIFY_UP_TO_CONFIRMATIONS = 100;
const RETRY_MS = [200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000];
const MAX_DEPOSITS_PER_ADDRESS = MAX_DEPOSITS_SHOWN;

const NewAddress = z.strictObject({
  network: NetworkSchema,
  label: z.string().max(200).optional(),
  notifyUrl: z.url({ protocol: /^https?$/ }).max(2048).optional(),
  /** How many to make at once (an address service hands out batches, so pools fill with one round trip). */
  count: z.int().min(1).max(100).optional(),
});
const NewDeposit = z.strictObject({
  address: z.string().min(1).max(200),
  amount: z.string().regex(/^[1-9][0-9]{0,39}$/, "a positive integer string of base units"),
  txid: z.string().min(1).max(200).optional(),
  /** What is sent: one of the network's coins, needed where it has more than one (ethereum: USDT or ETH). */
  coin: z.string().min(1).max(20).optional(),
});
const Drop = z.strictObject({ txid: z.string().min(1).max(200) });
const Mine = z.strictObject({
  blocks: z.int().min(1).max(1000),
  network: NetworkSchema.optional(),
});

export class ChainSimulator {
  readonly app = new Hono();
  readonly knobs: ChainKnobs;
  private readonly addresses = new Map<string, SimAddress>();
  private readonly heights: Record<Network, number> = { bitcoin: 0, ethereum: 0, tron: 0 };
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private closed = false;
  /** Notices answered 2xx, for tests. */
  noticesAccepted = 0;

  constructor(private readonly opts: ChainSimulatorOptions) {
    this.knobs = { dropNotices: false, addressDelayMs: 0, ...opts.knobs };
    this.routes();
  }

  close() {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
  }

  /**
   * An address the simulator knows, or, like a real chain where any
   * well-formed address can be read and paid, one it takes on when it has the
   * shape of a network's address. The simulator keeps its chain in memory, so
   * after a restart our pools' addresses are still usable (their notices are
   * gone with the rest; polling finds their deposits).
   */
  private find(address: string): SimAddress | undefined {
    const known = this.addresses.get(address);
    if (known) return known;
    const network = networkOf(address);
    if (!network) return undefined;
    const adopted: SimAddress = { network, address, label: "", notifyUrl: null, deposits: [] };
    this.addresses.set(address, adopted);
    return adopted;
  }

  /** What the chain shows at an address, as the API answers it. */
  addressState(address: string): AddressState | null {
    const a = this.find(address);
    if (!a) return null;
    const height = this.heights[a.network];
    return {
      network: a.network,
      address: a.address,
      height,
      deposits: a.deposits.map((d) => ({
        txid: d.txid,
        coin: d.coin,
        amount: d.amount.toString(),
        confirmations: confirmationsOf(d, height),
        seenAt: d.seenAt,
      })),
    };
  }

  /** Issues a new address on `network`; notices about its deposits go to `notifyUrl`. */
  createAddress(network: Network, label = "", notifyUrl?: string): string {
    const address = newAddress(network);
    this.addresses.set(address, { network, address, label, notifyUrl: notifyUrl ?? null, deposits: [] });
    return address;
  }

  /** Takes a deposit into the mempool (0 confirmations) and notifies. */
  deposit(address: string, amount: bigint, txid = randomTxid(), coin?: string) {
    const a = this.find(address);
    if (!a) return null;
    if (a.deposits.length >= MAX_DEPOSITS_PER_ADDRESS) return null;
    const sent = coin ?? COIN_OPTIONS.find((o) => o.network === a.network)!.coin;
    const d: SimDeposit = { txid, coin: sent, amount, seenAt: Date.now(), block: null };
    a.deposits.push(d);
    this.notify(a, d);
    return d;
  }

  /**
   * Takes a deposit still in the mempool off the chain, as a double spend, a replacement or an eviction for a low
   * fee would, and notifies (the notice names a transaction the address no longer shows). A mined one stays.
   */
  drop(txid: string): "dropped" | "mined" | "unknown" {
    for (const a of this.addresses.values()) {
      const at = a.deposits.findIndex((d) => d.txid === txid);
      if (at < 0) continue;
      const d = a.deposits[at];
      if (d.block !== null) return "mined";
      a.deposits.splice(at, 1);
      this.notify(a, d);
      return "dropped";
    }
    return "unknown";
  }

  /** Mines `blocks` blocks on one network or all; mempool deposits go into the first. */
  mine(blocks: number, network?: Network) {
    const networks = network ? [network] : (Object.keys(this.heights) as Network[]);
    for (const n of networks) {
      for (let i = 0; i < blocks; i++) {
        this.heights[n]++;
        for (const a of this.addresses.values()) {
          if (a.network !== n) continue;
          for (const d of a.deposits) if (d.block === null) d.block = this.heights[n];
        }
      }
      for (const a of this.addresses.values()) {
        if (a.network !== n) continue;
        for (const d of a.deposits) {
          if (confirmationsOf(d, this.heights[n]) <= NOTIFY_UP_TO_CONFIRMATIONS) this.notify(a, d);
        }
      }
    }
    return { ...this.heights };
  }

  private routes() {
    const app = this.app;
    // Like a real chain, anyone may read an address, send to it or (here) mine; making addresses and turning
    // knobs is the address service's own business and takes its token.
    const gate = async (c: Context, next: () => Promise<void>) => {
      const token = (c.req.header("authorization") ?? "").replace(/^Bearer\s+/i, "");
      if (!constantTimeEqual(token, this.opts.apiToken)) return c.json({ error: "unauthorized" }, 401);
      await next();
    };
    app.post("/addresses", gate, async (c) => {
      const body = NewAddress.safeParse(await c.req.json().catch(() => null));
      if (!body.success) return bad(c, body.error);
      const { network, label, notifyUrl } = body.data;
      if (this.knobs.addressDelayMs) await new Promise((r) => setTimeout(r, this.knobs.addressDelayMs));
      const addresses = Array.from(
        { length: body.data.count ?? 1 },
        () => this.createAddress(network, label, notifyUrl),
      );
      return c.json({ network: body.data.network, address: addresses[0], addresses }, 201);
    });
    app.get("/addresses/:network/:address", (c) => {
      const state = this.addressState(c.req.param("address"));
      if (!state || state.network !== c.req.param("network")) return c.json({ error: "unknown address" }, 404);
      return c.json(state);
    });
    app.post("/deposits", async (c) => {
      const body = NewDeposit.safeParse(await c.req.json().catch(() => null));
      if (!body.success) return bad(c, body.error);
      if (body.data.txid && this.hasTx(body.data.txid)) return c.json({ error: "txid already used" }, 409);
      const network = this.find(body.data.address)?.network;
      const coins = network ? COIN_OPTIONS.filter((o) => o.network === network).map((o) => o.coin) : [];
      const asked = body.data.coin ?? (coins.length === 1 ? coins[0] : undefined);
      if (network && (!asked || !coins.includes(asked as typeof coins[number]))) {
        return c.json({ error: `coin must be one of ${coins.join(", ")} on ${network}` }, 400);
      }
      const d = this.deposit(body.data.address, BigInt(body.data.amount), body.data.txid, asked);
      if (!d) return c.json({ error: "unknown address, or it holds too many deposits" }, 404);
      const { txid, coin, amount } = d;
      return c.json({ txid, address: body.data.address, coin, amount: amount.toString(), confirmations: 0 }, 201);
    });
    app.post("/drop", async (c) => {
      const body = Drop.safeParse(await c.req.json().catch(() => null));
      if (!body.success) return bad(c, body.error);
      const outcome = this.drop(body.data.txid);
      if (outcome === "unknown") return c.json({ error: "unknown txid" }, 404);
      if (outcome === "mined") return c.json({ error: "already mined: only a mempool deposit can be dropped" }, 409);
      return c.json({ txid: body.data.txid, dropped: true });
    });
    app.post("/mine", async (c) => {
      const body = Mine.safeParse(await c.req.json().catch(() => null));
      if (!body.success) return bad(c, body.error);
      return c.json({ heights: this.mine(body.data.blocks, body.data.network) });
    });
    app.post("/knobs", gate, async (c) => {
      const body = await c.req.json().catch(() => ({}));
      if (typeof body?.dropNotices === "boolean") this.knobs.dropNotices = body.dropNotices;
      if (typeof body?.addressDelayMs === "number") this.knobs.addressDelayMs = Math.max(0, body.addressDelayMs);
      return c.json(this.knobs);
    });
  }

  private hasTx(txid: string): boolean {
    for (const a of this.addresses.values()) if (a.deposits.some((d) => d.txid === txid)) return true;
    return false;
  }

  private notify(a: SimAddress, d: SimDeposit) {
    if (!a.notifyUrl || this.knobs.dropNotices) return;
    const notice: ChainNotice = {
      eventId: randomId("cevt"),
      network: a.network,
      address: a.address,
      txid: d.txid,
      confirmations: confirmationsOf(d, this.heights[a.network]),
    };
    this.send(a.notifyUrl, JSON.stringify(notice), 0, 0);
  }

  private send(url: string, text: string, delayMs: number, attempt: number) {
    const timer = setTimeout(async () => {
      this.timers.delete(timer);
      if (this.closed) return;
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            [CHAIN_SIGNATURE_HEADER]: signChainNotice(this.opts.webhookSecret, Math.floor(Date.now() / 1000), text),
          },
          body: text,
          signal: AbortSignal.timeout(10_000),
        });
        await res.body?.cancel();
        if (res.ok) {
          this.noticesAccepted++;
          return;
        }
      } catch {
        // The receiver is down: retry below.
      }
      if (attempt < RETRY_MS.length && !this.closed) this.send(url, text, RETRY_MS[attempt], attempt + 1);
      else log.warn("chain simulator gave up on a notice", { url });
    }, delayMs);
    this.timers.add(timer);
  }
}

function confirmationsOf(d: SimDeposit, height: number): number {
  return d.block === null ? 0 : height - d.block + 1;
}

function bad(c: Context, error: z.ZodError) {
  return c.json(
    { error: "invalid request", issues: error.issues.map((i) => `${i.path.join(".")}: ${i.message}`) },
    400,
  );
}

const BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** The network an address's shape belongs to (as newAddress makes them), or undefined. */
function networkOf(address: string): Network | undefined {
  if (/^0x[0-9a-f]{40}$/.test(address)) return "ethereum";
  if (/^T[1-9A-HJ-NP-Za-km-z]{33}$/.test(address)) return "tron";
  if (/^bcrt1q[0-9a-z]{38}$/.test(address)) return "bitcoin";
  return undefined;
}

/** An address that looks like the network's own (random; nothing checks its checksum). */
function newAddress(network: Network): string {
  const bytes = randomBytes(20);
  switch (network) {
    case "ethereum":
      return `0x${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
    case "tron":
      return `T${Array.from(randomBytes(33), (b) => BASE58[b % 58]).join("")}`;
    case "bitcoin":
      return `bcrt1q${Array.from(randomBytes(19), (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }
}

function randomTxid(): string {
  return Array.from(randomBytes(32), (b) => b.toString(16).padStart(2, "0")).join("");
}
