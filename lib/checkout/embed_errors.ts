/**
 * The codes of checkout.js's `error` event, which tells the shop's page that the checkout cannot be shown. Our frame
 * says the first two, to the embedding page's origin only; the script itself says `load_failed` when the frame said
 * nothing at all (a network error, an error page, a frame the browser refused). Nothing else: a code names no session
 * and no shop's settings. Imported by the embed script's own bundle, so it imports nothing.
 */
export const EMBED_ERROR_CODES = ["origin_not_allowed", "session_not_found", "load_failed"] as const;
export type EmbedErrorCode = typeof EMBED_ERROR_CODES[number];

/** The codes our frame sends: `load_failed` is for when it sent none. */
export type FrameErrorCode = Exclude<EmbedErrorCode, "load_failed">;
