import { z } from "zod";
import { FORM_KINDS, FORM_STATUSES } from "./types.ts";

/** What the forms API answers, as zod schemas for the OpenAPI document (tests check real answers against them). */

const isoTime = z.iso.datetime().describe("ISO 8601 time in UTC.");

export const FormCreatedResponse = z.object({
  status: z.literal("success"),
  form: z.object({
    id: z.string().describe("Our form id (form_...)."),
    url: z.url().describe("The buyer's page: share it as a link or show it in an iframe."),
  }),
});

export const FormView = z.object({
  id: z.string().describe("Our form id (form_...)."),
  url: z.url().describe("The buyer's page."),
  kind: z.enum(FORM_KINDS),
  title: z.string(),
  description: z.string().nullable(),
  status: z.enum(FORM_STATUSES).describe("active: takes payments; disabled: its page says so and refuses submits."),
  returnUrl: z.string().nullable().describe(
    "Your page the buyer goes back to from the pages after the form, as you gave it, or null.",
  ),
  amount: z.union([z.int().positive(), z.string()]).nullable().describe(
    "The fixed amount (fiat: integer minor units; crypto: a decimal string), or null when the buyer types it.",
  ),
  currency: z.string().nullable().describe("Fiat: the fixed currency, or null when the buyer picks it."),
  coin: z.string().nullable().describe("Crypto: the fixed coin, or null when the buyer picks it."),
  network: z.string().nullable().describe("Crypto: the fixed network, or null when the buyer picks it."),
  createdAt: isoTime,
  disabledAt: isoTime.nullable(),
});

export const FormResponse = z.object({ status: z.literal("success"), form: FormView });
export const FormListResponse = z.object({
  status: z.literal("success"),
  forms: z.array(FormView).describe("Newest first, at most 200."),
});
