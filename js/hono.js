// Hono middleware: `app.use("/api/*", rateLimit({ limiter }))`. A denied
// request gets 429 with `Retry-After`; every response carries the
// RateLimit headers. Different routes take different limiters, stacked:
// each is charged in turn, and the tightest one's headers are sent.
//
// Imports nothing from Hono and no WebAssembly: the limiter comes from the
// package's main entry, already instantiated for the runtime.

import { anonymous, failedResponse, NO_DEFAULT_KEY, rateLimitHeaders } from "./edge.js";
import { EdgelimitError, invalid } from "./errors.js";
import { runtimeClient } from "./identity.js";
import { options } from "./options.js";

/**
 * The caller's id where the runtime knows it: Cloudflare's
 * `CF-Connecting-IP` (which a client cannot set), or on Deno the
 * connection's address (Hono's `c.env` there is `Deno.serve`'s info).
 * Elsewhere no header can be trusted: `key` is required.
 */
function runtimeKey() {
  const client = runtimeClient();
  return client && ((c) => client(c.req.raw, c.env));
}

export function rateLimit(config) {
  const {
    limiter,
    key = runtimeKey(),
    cost,
    limit,
    onLimited,
    onUnidentified,
  } = options("rateLimit", config, ["limiter", "key", "cost", "limit", "onLimited", "onUnidentified"]);
  if (limiter === undefined || (typeof limiter !== "function" && typeof limiter.limit !== "function")) {
    throw invalid("rateLimit needs a limiter: a Ratelimit, or a function of the context choosing one");
  }
  if (key === undefined) throw new EdgelimitError("INVALID_CONFIG", `rateLimit ${NO_DEFAULT_KEY}`);
  if (typeof key !== "function") throw invalid("key must be a function of the context");
  if (limit !== undefined && typeof limit !== "function") throw invalid("limit must be a function of the context");
  if (onUnidentified !== undefined && typeof onUnidentified !== "function") {
    throw invalid("onUnidentified must be a function of the context");
  }
  return async (c, next) => {
    const id = await key(c);
    // No identity, no shared quota: refused unless the caller says otherwise.
    if (anonymous(id)) {
      return onUnidentified ? onUnidentified(c, next) : c.text("Bad Request: the client cannot be identified\n", 400);
    }
    const chosen = typeof limiter === "function" ? limiter(c) : limiter;
    let result;
    try {
      const units = cost ? await cost(c) : 1;
      // The client's own limit (its plan), looked up per request.
      const own = limit ? await limit(c) : undefined;
      result = await chosen.limit(id, own === undefined ? { cost: units } : { cost: units, limit: own });
    } catch (error) {
      return failedResponse(error);
    }
    const headers = rateLimitHeaders(chosen.algorithm, result);
    if (!result.success) {
      const denied = onLimited
        ? await onLimited(c, result)
        : result.reason === "denyList"
          ? c.text("Forbidden\n", 403)
          : c.text("Too Many Requests\n", 429);
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
