import { AppError } from "../lib/errors.ts";

/** A line on top of a page: what an action just did, or why it was refused. */
export interface PageNote {
  kind: "ok" | "bad";
  text: string;
}

/**
 * A page saying why its action was refused answers 422 (the form was understood, the action not taken). Loaded
 * afterwards (the redirect after an action, a reload), it is a page like any other: 200, whatever its line says.
 */
export function pageNoteStatus(note: PageNote | undefined, method: string): 200 | 422 {
  return note?.kind === "bad" && method === "POST" ? 422 : 200;
}

/**
 * Runs a page's action; when it is refused (a 4xx other than 404: a postback under way, more than is left to
 * refund), `page` shows the page again with "`what`: why" on top, instead of the error page. A 404 and our own
 * failures go on to the app's error handling.
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
    throw err;
  }
}
