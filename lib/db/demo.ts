import { sortableId } from "../ids.ts";
import { collectValues } from "./kv.ts";

/** A postback the demo shop received, as the demo page lists it. */
export interface DemoPostback {
  receivedAt: number;
  webhookId: string;
  type: string;
  shopTxId: string | null;
  paymentId: string | null;
  verified: boolean;
}

const DEMO_POSTBACK_TTL_MS = 24 * 60 * 60 * 1000;

export async function addDemoPostback(kv: Deno.Kv, postback: DemoPostback) {
  await kv.set(["demo_postbacks", sortableId()], postback, { expireIn: DEMO_POSTBACK_TTL_MS });
}

export function listDemoPostbacks(kv: Deno.Kv, limit: number): Promise<DemoPostback[]> {
  return collectValues(kv.list<DemoPostback>({ prefix: ["demo_postbacks"] }, { reverse: true, limit }));
}
