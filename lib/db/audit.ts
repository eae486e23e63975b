import { sortableId } from "../ids.ts";

/** One operator action: who did what to which thing, with the state before and after. */
export interface AuditEntry {
  id: string;
  at: number;
  actor: string;
  action: string;
  target: string;
  before: unknown;
  after: unknown;
}

/** The audit entry of an operator's status move (a payment's, an invoice's): who, what, from where to where. */
export function statusMoveAudit(
  by: { actor: string; action: string },
  move: { at: number; target: string; from: string; to: string },
): Omit<AuditEntry, "id"> {
  return {
    at: move.at,
    actor: by.actor,
    action: by.action,
    target: move.target,
    before: { status: move.from },
    after: { status: move.to },
  };
}

const auditKey = (id: string) => ["audit", id] as const;

/** Adds an audit entry to an atomic operation, so the action and its record commit together. */
export function addAuditOps(op: Deno.AtomicOperation, entry: Omit<AuditEntry, "id">): Deno.AtomicOperation {
  const id = sortableId();
  return op.set(auditKey(id), { id, ...entry });
}

export async function writeAudit(kv: Deno.Kv, entry: Omit<AuditEntry, "id">) {
  await addAuditOps(kv.atomic(), entry).commit();
}

/** Newest first; filtered by a case-insensitive text match over actor, action and target. */
export async function searchAudit(kv: Deno.Kv, opts: { query?: string; limit: number; scanLimit?: number }) {
  const q = opts.query?.toLowerCase().trim();
  const out: AuditEntry[] = [];
  for await (
    const e of kv.list<AuditEntry>({ prefix: ["audit"] }, { reverse: true, limit: opts.scanLimit ?? 10_000 })
  ) {
    const v = e.value;
    if (!q || `${v.actor} ${v.action} ${v.target} ${JSON.stringify(v.after)}`.toLowerCase().includes(q)) out.push(v);
    if (out.length >= opts.limit) break;
  }
  return out;
}
