import { AppError } from "../lib/errors.ts";

/** A line on top of a page: what an action just did, or why it was refused. */
export interface PageNote {
  kind: "ok" | "bad";
  text: string;
  /** What a refused action's page answers when it is not 422: bad input (400), a provider that failed (502, 504). */
  status?: 400 | 502 | 504;
}

/**
 * A page saying why its action was refused answers 422 (the form was understood, the action not taken), or the
 * note's own status. Loaded afterwards (the redirect after an action, a reload), it is a page like any other: 200,
 * whatever its line says.
 */
export function pageNoteStatus(note: PageNote | undefined, method: string): 200 | 400 | 422 | 502 | 504 {
  return note?.kind === "bad" && method === "POST" ? note.status ?? 422 : 200;
}

/** The API's codes for a payment provider that failed (lib/errors.ts UpstreamError): not our failure, nor a refusal. */
const PROVIDER_FAILURES = new Set(["provider_error", "provider_timeout"]);

/**
 * Runs a page's action; when it is refused (a 4xx other than 404: a postback under way, more than is left to
 * refund), `page` shows the page again with "`what`: why" on top, instead of the error page. A provider that failed
 * (502, 504) is said the same way, with its status: the operator stays beside what they were doing and can try again
 * from there. A 404 and our own failures go on to the app's error handling.
 */
export async function refusalShownOnPage(
  what: string,
  action: () => Promise<Response>,
  page: (note: PageNote) => Promise<Response>,
): Promise<Response> {
  try {
    return await action();
  } catch (err) {
    if (err instanceof AppError && err.status < 500 && err.status !== 404) {
      return await page({ kind: "bad", text: `${what}: ${err.message}` });
    }
    if (err instanceof AppError && PROVIDER_FAILURES.has(err.code) && (err.status === 502 || err.status === 504)) {
      return await page({ kind: "bad", text: `${what}: ${err.message}`, status: err.status });
    }
    throw err;
  }
}
