import type { z } from "zod";
import { AppError, UpstreamError } from "../errors.ts";
import type { AppContext } from "../context.ts";
import type { Network } from "./coins.ts";
import { AddressState, NewAddressResponse } from "./chain_wire.ts";
import type { HttpAnswer, HttpTransport } from "../providers/http1_client.ts";
import { isTimeout, withTimeout } from "../timeout.ts";

export interface ChainSettings {
  /** The chain service's API (the simulator at /sandbox/chain when none is configured). */
  apiUrl: string;
  apiToken: string;
  /** Signs the service's notices to us. */
  webhookSecret: string;
  timeoutMs: number;
  /** How calls reach it: the provider adapters' kept-alive connections (or fetch behind an operator's proxy). */
  http: HttpTransport;
}

/**
 * Our client of the address and chain service: new deposit addresses, and
 * what the chain shows at an address. Errors become UpstreamError, never the
 * service's internals.
 */
export class ChainClient {
  constructor(readonly settings: ChainSettings) {}

  /** `count` new addresses on `network` for a shop's pool; notices about them go to `notifyUrl`. */
  async createAddresses(network: Network, shopId: string, notifyUrl: string, count: number): Promise<string[]> {
    const res = await this.call("POST", "/addresses", { network, label: shopId, notifyUrl, count }, NewAddressResponse);
    if (res.network !== network) throw new UpstreamError(false, "chain service answered another network");
    if (new Set(res.addresses).size !== res.addresses.length) {
      throw new UpstreamError(false, "chain service answered the same address twice");
    }
    return res.addresses;
  }

  /** The deposits the chain shows at an address, with their confirmations. */
  getAddress(network: Network, address: string): Promise<AddressState> {
    return this.call(
      "GET",
      `/addresses/${encodeURIComponent(network)}/${encodeURIComponent(address)}`,
      undefined,
      AddressState,
    );
  }

  private async call<T extends z.ZodType>(
    method: string,
    path: string,
    body: unknown,
    schema: T,
  ): Promise<z.output<T>> {
    let res: HttpAnswer;
    try {
      res = await withTimeout(
        this.settings.timeoutMs,
        (signal) =>
          this.settings.http.send(this.settings.apiUrl + path, {
            method,
            headers: {
              authorization: `Bearer ${this.settings.apiToken}`,
              ...(body === undefined ? {} : { "content-type": "application/json" }),
            },
            body: body === undefined ? undefined : JSON.stringify(body),
            signal,
          }),
      );
    } catch (err) {
      const timedOut = isTimeout(err);
      throw new UpstreamError(timedOut, `chain ${method} ${path}: ${timedOut ? "timeout" : String(err)}`);
    }
    if (res.status < 200 || res.status > 299) {
      throw new UpstreamError(false, `chain ${method} ${path}: HTTP ${res.status}`);
    }
    const text = decoder.decode(res.body);
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // Left null: refused by the schema below.
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      // Which field, so an operator can tell a service that does not follow the wire (a deposit without its coin)
      // from one that is down: the field's path and the rule only, never a value from the answer.
      const issue = parsed.error.issues[0];
      const where = issue ? ` (${issue.path.join(".") || "body"}: ${issue.code})` : "";
      throw new UpstreamError(false, `chain ${method} ${path}: unexpected answer${where}`);
    }
    return parsed.data;
  }
}

const decoder = new TextDecoder();

/** The chain service, or 503 `invoices_unavailable` when this server has none (a real provider, no CHAIN_*). */
export function requireChain(ctx: AppContext): ChainClient {
  if (!ctx.chain) {
    throw new AppError(503, "invoices_unavailable", "Crypto invoices are not set up on this server.");
  }
  return ctx.chain;
}
