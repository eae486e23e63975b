import type { Context } from "hono";
import { AppError, ValidationError } from "../lib/errors.ts";
import { parseStrictJson } from "../lib/json_body.ts";
import { requestText } from "./_body_limit.ts";

/**
 * Reads a JSON object body (every JSON API route, shop's and operator's): 415 unless it is JSON, 400 unless it
 * parses strictly. The app's body limit (routes/_body_limit.ts) has already bounded what it reads.
 */
export async function readJson(c: Context): Promise<unknown> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new AppError(415, "unsupported_media_type", "Send the body as application/json.");
  }
  const value = parseStrictJson(await requestText(c));
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ValidationError("The body must be a JSON object.");
  }
  return value;
}
