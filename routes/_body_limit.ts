import type { Context, MiddlewareHandler } from "hono";
import { AppError } from "../lib/errors.ts";

/** What any route may read unless its prefix says otherwise: enough for every form and webhook we take. */
export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024;
/** A client that has not sent its whole body by then is holding a connection open, not uploading. */
export const BODY_READ_TIMEOUT_MS = 10_000;

/** Methods that reach routing; the rest (TRACE, TRACK, CONNECT, anything odd) get 405 at once. */
const SERVED_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

export interface BodyLimits {
  /** Longest matching path prefix wins; other paths get DEFAULT_BODY_LIMIT_BYTES. */
  byPrefix: Record<string, number>;
  timeoutMs?: number;
}

/**
 * Reads every request body before any route sees it, bounded in size and
 * time: a declared length over the limit is refused with 413 without reading
 * a byte, a streamed body is cut off (413) as soon as it passes the limit, and
 * one that trickles in longer than the timeout gets 408. Routes then parse
 * from memory (`requestText`, or Hono's body readers, which find the bytes in
 * their cache), so no parser (forms, JSON, CSRF) can be made to buffer more.
 */
export function limitBodies(limits: BodyLimits): MiddlewareHandler {
  const prefixes = Object.entries(limits.byPrefix).sort(([a], [b]) => b.length - a.length);
  const timeoutMs = limits.timeoutMs ?? BODY_READ_TIMEOUT_MS;
  return async (c, next) => {
    // No route takes these, and a Request cannot even be built with TRACE or CONNECT (Deno still hands
    // TRACE a body): refuse them here rather than fail below.
    if (!SERVED_METHODS.has(c.req.method)) {
      throw new AppError(405, "method_not_allowed", `${c.req.method} is not served here.`, undefined, {
        allow: "GET, HEAD, POST",
      });
    }
    const body = c.req.raw.body;
    if (!body || c.req.method === "GET" || c.req.method === "HEAD") return await next();
    const path = c.req.path;
    const maxBytes = prefixes.find(([prefix]) => path.startsWith(prefix))?.[1] ?? DEFAULT_BODY_LIMIT_BYTES;
    const declared = c.req.header("content-length");
    if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(maxBytes);
    const bytes = await readBounded(body, maxBytes, timeoutMs);
    // Kept beside the request rather than in a new Request around them: building one cost about as much as
    // the rest of reading the body, on every API call.
    bodies.set(c.req.raw, bytes);
    // Hono's own body readers (c.req.text(), parseBody()) answer from this cache, as its validator's do; its type
    // says method, its code keeps a promise.
    (c.req.bodyCache as Record<string, unknown>).arrayBuffer = Promise.resolve(exactBuffer(bytes));
    await next();
  };
}

/** The bodies `limitBodies` read, by request. */
const bodies = new WeakMap<Request, Uint8Array>();
const utf8 = new TextDecoder();

/** The request's body as text: what `limitBodies` read, or (on a route mounted without it) the body itself. */
export async function requestText(c: Context): Promise<string> {
  const bytes = bodies.get(c.req.raw);
  return bytes ? utf8.decode(bytes) : await c.req.text();
}

/** The bytes as an ArrayBuffer of their own: the one they are in when it holds exactly them, else a copy. */
function exactBuffer(bytes: Uint8Array<ArrayBuffer>): ArrayBuffer {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  return whole ? bytes.buffer : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

async function readBounded(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  timeoutMs: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const reader = body.getReader();
  let timedOut = false;
  // Cancelling ends the pending read with `done`, so the loop below stops at the deadline.
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, timeoutMs);
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let size = 0;
  try {
    for (;;) {
      const read = await reader.read().catch(() => null);
      if (timedOut) {
        throw new AppError(408, "request_timeout", `The body must arrive within ${timeoutMs / 1000} seconds.`);
      }
      if (!read) throw new AppError(400, "body_unreadable", "The body could not be read.");
      const { done, value } = read;
      if (done) break;
      size += value.length;
      if (size > maxBytes) {
        reader.cancel().catch(() => {});
        throw tooLarge(maxBytes);
      }
      chunks.push(value as Uint8Array<ArrayBuffer>);
    }
  } finally {
    clearTimeout(timer);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function tooLarge(maxBytes: number) {
  return new AppError(413, "body_too_large", `The body must be at most ${maxBytes / 1024} KiB.`);
}
