import { ConflictError } from "../errors.ts";
import { addAuditOps, type NewAuditEntry } from "./audit.ts";
import type { PaymentForm } from "../forms/types.ts";

const formKey = (id: string) => ["forms", id] as const;
const byShopKey = (shopId: string, seq: string) => ["forms_by_shop", shopId, seq] as const;
/** Every shop's forms newest first, for the operator's list. */
const bySeqKey = (seq: string) => ["forms_by_seq", seq] as const;

/** The most forms a listing reads (a shop with more sees its newest). */
export const MAX_LISTED_FORMS = 200;

/** Stores a new form, its two indexes and its audit entry in one atomic operation. */
export async function createForm(kv: Deno.Kv, form: PaymentForm, audit: NewAuditEntry): Promise<void> {
  const op = kv.atomic()
    .check({ key: formKey(form.id), versionstamp: null })
    .set(formKey(form.id), form)
    .set(byShopKey(form.shopId, form.seq), form.id)
    .set(bySeqKey(form.seq), form.id);
  const res = await addAuditOps(op, audit).commit();
  if (!res.ok) throw new ConflictError("A form with this id already exists.");
}

export function getFormEntry(kv: Deno.Kv, id: string): Promise<Deno.KvEntryMaybe<PaymentForm>> {
  return kv.get<PaymentForm>(formKey(id));
}

export async function getForm(kv: Deno.Kv, id: string): Promise<PaymentForm | null> {
  return (await getFormEntry(kv, id)).value;
}

/** Replaces a form read as `entry`, with its audit entry, in one atomic operation; false if it changed meanwhile. */
export async function replaceForm(
  kv: Deno.Kv,
  entry: Deno.KvEntry<PaymentForm>,
  next: PaymentForm,
  audit: NewAuditEntry,
): Promise<boolean> {
  const op = kv.atomic().check(entry).set(formKey(next.id), next);
  return (await addAuditOps(op, audit).commit()).ok;
}

/** A shop's forms, newest first, at most `limit` (MAX_LISTED_FORMS). */
export function listFormsByShop(kv: Deno.Kv, shopId: string, limit = MAX_LISTED_FORMS): Promise<PaymentForm[]> {
  return formsFromIndex(kv, kv.list<string>({ prefix: ["forms_by_shop", shopId] }, { reverse: true, limit }));
}

/** Every shop's forms, newest first, at most `limit`. */
export function listAllForms(kv: Deno.Kv, limit = MAX_LISTED_FORMS): Promise<PaymentForm[]> {
  return formsFromIndex(kv, kv.list<string>({ prefix: ["forms_by_seq"] }, { reverse: true, limit }));
}

async function formsFromIndex(kv: Deno.Kv, index: Deno.KvListIterator<string>): Promise<PaymentForm[]> {
  const ids: string[] = [];
  for await (const e of index) ids.push(e.value);
  const out: PaymentForm[] = [];
  // getMany reads at most 10 keys a call.
  for (let i = 0; i < ids.length; i += 10) {
    const entries = await kv.getMany<PaymentForm[]>(ids.slice(i, i + 10).map(formKey));
    for (const e of entries) if (e.value) out.push(e.value);
  }
  return out;
}
