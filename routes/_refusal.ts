import { AppError } from "../lib/errors.ts";

/**
 * Runs a page's action; when it is refused (a 4xx other than 404: a postback under way, more than is left to
 * refund), the page shows again saying why (`showRefusal`, which answers 422) instead of the error page. A 404 and
 * our own failures go on to the app's error handling.
 */
export async function refusalShownOnPage(
  action: () => Promise<Response>,
  showRefusal: (why: string) => Response | Promise<Response>,
): Promise<Response> {
  try {
    return await action();
  } catch (err) {
    if (err instanceof AppError && err.status < 500 && err.status !== 404) return await showRefusal(err.message);
    throw err;
  }
}
