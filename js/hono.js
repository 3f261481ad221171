// Hono middleware: `app.use("/api/*", rateLimit({ limiter }))`. A denied
// request gets 429 with `Retry-After`; every response carries the
// RateLimit headers. Different routes take different limiters, stacked:
// each is charged in turn, and the tightest one's headers are sent.
//
// Imports nothing from Hono and no WebAssembly: the limiter comes from the
// package's main entry, already instantiated for the runtime.

import { rateLimitHeaders } from "./edge.js";
import { invalid } from "./errors.js";

/**
 * The caller's id: Cloudflare's `CF-Connecting-IP`, which a client cannot
 * set. Elsewhere no header can be trusted, so every request shares one
 * limit (a limit that holds) until `key` says who the caller is.
 */
function cloudflareClient(c) {
  return c.req.header("CF-Connecting-IP") ?? "unidentified";
}

export function rateLimit({ limiter, key = cloudflareClient, cost, onLimited } = {}) {
  if (limiter === undefined || (typeof limiter !== "function" && typeof limiter.limit !== "function")) {
    throw invalid("rateLimit needs a limiter: a Ratelimit, or a function of the context choosing one");
  }
  if (typeof key !== "function") throw invalid("key must be a function of the context");
  return async (c, next) => {
    const chosen = typeof limiter === "function" ? limiter(c) : limiter;
    const id = await key(c);
    const result = await chosen.limit(id, { cost: cost ? await cost(c) : 1 });
    const headers = rateLimitHeaders(chosen.algorithm, result);
    if (!result.success) {
      const denied = onLimited ? await onLimited(c, result) : c.text("Too Many Requests\n", 429);
      for (const [name, value] of headers) denied.headers.set(name, value);
      return denied;
    }
    await next();
    // Stacked limiters (app-wide, then per route): the tightest speaks. A
    // denial from an inner one, or fewer remaining, keeps its headers.
    const inner = c.res.headers.get("X-RateLimit-Remaining");
    if (c.res.status === 429 && inner !== null) return;
    if (inner !== null && Number(inner) <= result.remaining) return;
    for (const [name, value] of headers) c.res.headers.set(name, value);
  };
}
