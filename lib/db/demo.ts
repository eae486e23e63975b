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

/** The demo page shows 20; a few more are kept so a burst does not empty it. */
export const MAX_DEMO_POSTBACKS = 50;

/** Keeps a postback for 24 h, and only the newest MAX_DEMO_POSTBACKS of them. */
export async function addDemoPostback(kv: Deno.Kv, postback: DemoPostback) {
  await kv.set(["demo_postbacks", sortableId()], postback, { expireIn: DEMO_POSTBACK_TTL_MS });
  const older = kv.list({ prefix: ["demo_postbacks"] }, { reverse: true, limit: MAX_DEMO_POSTBACKS + 20 });
  let kept = 0;
  for await (const entry of older) {
    if (++kept > MAX_DEMO_POSTBACKS) await kv.delete(entry.key);
  }
}

export function listDemoPostbacks(kv: Deno.Kv, limit: number): Promise<DemoPostback[]> {
  return collectValues(kv.list<DemoPostback>({ prefix: ["demo_postbacks"] }, { reverse: true, limit }));
}
