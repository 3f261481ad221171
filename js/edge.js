// withRateLimit: a Workers/Deno fetch handler behind a limiter, answering 429
// with Retry-After and the IETF RateLimit fields (draft-ietf-httpapi-
// ratelimit-headers) plus the legacy X-RateLimit-* trio on every response.

import { invalid } from "./errors.js";

const seconds = (ms) => Math.ceil(Math.max(0, ms) / 1000);

export function rateLimitHeaders(algorithm, result, now = Date.now()) {
  const headers = new Headers();
  headers.set("RateLimit-Policy", `"default";q=${algorithm.limit};w=${seconds(algorithm.windowMs)}`);
  if (result.reason === "storeFailure") {
    // The store could not be asked: the usage is unknown, so it is not
    // advertised; a fail-closed denial still says when to come back.
    if (!result.success) headers.set("Retry-After", String(Math.max(1, seconds(result.retryAfter))));
    return headers;
  }
  headers.set("RateLimit", `"default";r=${result.remaining};t=${seconds(result.reset - now)}`);
  headers.set("X-RateLimit-Limit", String(result.limit));
  headers.set("X-RateLimit-Remaining", String(result.remaining));
  headers.set("X-RateLimit-Reset", String(seconds(result.reset)));
  if (!result.success) headers.set("Retry-After", String(Math.max(1, seconds(result.retryAfter))));
  return headers;
}

/** The client's address as Cloudflare or a proxy reports it. */
function clientAddress(request) {
  const headers = request.headers;
  return headers.get("CF-Connecting-IP") ?? headers.get("X-Forwarded-For")?.split(",")[0].trim() ?? "anonymous";
}

function tooManyRequests() {
  return new Response("Too Many Requests\n", {
    status: 429,
    headers: { "Content-Type": "text/plain; charset=utf-8" },
  });
}

/** `response` with `headers` added; copied first if its headers are immutable. */
function decorate(response, headers) {
  try {
    for (const [name, value] of headers) response.headers.set(name, value);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    for (const [name, value] of headers) copy.headers.set(name, value);
    return copy;
  }
}

export function withRateLimit(handler, { limiter, key = clientAddress, cost, onLimited } = {}) {
  if (typeof handler !== "function") throw invalid("withRateLimit needs a fetch handler");
  if (limiter === undefined) throw invalid("withRateLimit needs a limiter");
  return async (request, env, ctx) => {
    const chosen = typeof limiter === "function" ? limiter(request, env, ctx) : limiter;
    const id = await key(request, env, ctx);
    const result = await chosen.limit(id, { cost: cost ? cost(request, env, ctx) : 1 });
    const response = result.success
      ? await handler(request, env, ctx)
      : await (onLimited ? onLimited(request, result) : tooManyRequests());
    return decorate(response, rateLimitHeaders(chosen.algorithm, result));
  };
}
