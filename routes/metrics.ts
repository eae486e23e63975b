import { type Context, Hono, type MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { constantTimeEqual } from "../lib/crypto.ts";
import { AppError } from "../lib/errors.ts";
import type { Metrics } from "../lib/metrics.ts";

/** Requests no route answered are counted under one label, so random paths cannot grow the label set. */
export const UNMATCHED_ROUTE = "unmatched";

/**
 * Counts every request under the pattern of the route that answered it (`/api/v1/payments/:id`, never the path a
 * client sent) and its status. Registered first, so bodies refused by the size limit count too.
 */
export function countRequests(metrics: Metrics): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    await next();
    metrics.observeRequest(routeLabel(c), c.res.status, (performance.now() - started) / 1000);
  };
}

/**
 * The pattern of the handler that answered. Hono leaves `routeIndex` at the deepest route that ran; when that is a
 * middleware (an API key check refusing, or no handler at all), the first handler after it names the route.
 */
function routeLabel(c: Context): string {
  const routes = matchedRoutes(c);
  for (let i = c.req.routeIndex; i < routes.length; i++) {
    const r = routes[i];
    if (!(r.method === "ALL" && r.path.endsWith("*"))) return withoutConstraints(r.path);
  }
  return UNMATCHED_ROUTE;
}

const plainPatterns = new Map<string, string>();

/**
 * A route's pattern without its parameters' regular expressions (`/admin/shops/:id`, not
 * `/admin/shops/:id{shop_[0-9a-z]{26}}`), as alerts select it; worked out once per route.
 */
function withoutConstraints(path: string): string {
  let plain = plainPatterns.get(path);
  if (plain === undefined) {
    let depth = 0;
    plain = "";
    for (const ch of path) {
      if (ch === "{") depth++;
      else if (ch === "}") depth--;
      else if (depth === 0) plain += ch;
    }
    plainPatterns.set(path, plain);
  }
  return plain;
}

/** GET /metrics in Prometheus text format, for a scraper holding METRICS_TOKEN as its bearer token. */
export function metricsRoutes(metrics: Metrics, token: string) {
  const expected = `Bearer ${token}`;
  return new Hono().get("/metrics", async (c) => {
    if (!constantTimeEqual(c.req.header("authorization") ?? "", expected)) {
      throw new AppError(401, "unauthorized", "Missing or wrong metrics token.", undefined, {
        "www-authenticate": 'Bearer realm="metrics"',
      });
    }
    c.header("cache-control", "no-store");
    return c.body(await metrics.render(), 200, { "content-type": metrics.contentType });
  });
}
