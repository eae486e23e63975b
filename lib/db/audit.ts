import { sortableId } from "../ids.ts";

/**
 * Every action the audit log records, written once: each write names one of these (NewAuditEntry), and the console
 * reads each as a sentence (routes/admin/audit.tsx, a table over this list), so a new action is a type error until it
 * is listed here and has its sentence there.
 */
export const AUDIT_ACTIONS = [
  "account.create",
  "account.disable",
  "account.enable",
  "account.rotate",
  "form.create",
  "form.disable",
  "invoice.cancel",
  "key.create",
  "key.revoke",
  "operator.create",
  "operator.disable",
  "operator.enable",
  "operator.password",
  "operator_token.create",
  "operator_token.revoke",
  "paid_orphan.handle",
  "payment.recheck",
  "payment.refund",
  "portal.link",
  "portal.signin",
  "postback.replay",
  "postback.resend",
  "refund.settle",
  "shop.create",
  "shop.update",
  "shop.enable",
  "shop.disable",
  "shop.rotate_secret",
  "shop.rotate_secret.refused",
  "shop.switch_signing",
  "shop.switch_signing.refused",
  "shop.end_signing_overlap",
  "shop.redirect_signing",
  "shop.routing",
  "shop.rate_limit",
  "shop.embed_origins",
  "signin",
  "signin.failed",
  "signout",
] as const;

export type AuditAction = typeof AUDIT_ACTIONS[number];

/**
 * One operator action as stored: who did what to which thing, with the state before and after. `action` is a string
 * as read: an entry written by an older version may name an action no longer written.
 */
export interface AuditEntry {
  id: string;
  at: number;
  actor: string;
  action: string;
  target: string;
  before: unknown;
  after: unknown;
}

/** An entry to write: its action one of AUDIT_ACTIONS. */
export type NewAuditEntry = Omit<AuditEntry, "id" | "action"> & { action: AuditAction };

/** The audit entry of an operator's status move (a payment's, an invoice's): who, what, from where to where. */
export function statusMoveAudit(
  by: { actor: string; action: AuditAction },
  move: { at: number; target: string; from: string; to: string },
): NewAuditEntry {
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
export function addAuditOps(op: Deno.AtomicOperation, entry: NewAuditEntry): Deno.AtomicOperation {
  const id = sortableId();
  return op.set(auditKey(id), { id, ...entry });
}

/**
 * Writes an audit entry on its own: only for an entry that is the whole of what happened (a refused change, a failed
 * sign-in, a link recorded before it is handed out, a replay's command before its many writes). An action that changes
 * state in one write adds its entry to that change's atomic operation (addAuditOps), so neither lands without the other.
 */
export async function writeAudit(kv: Deno.Kv, entry: NewAuditEntry) {
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
