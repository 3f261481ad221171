// withRateLimit: a Workers/Deno fetch handler behind a limiter, answering 429
// with Retry-After and the IETF RateLimit fields (draft-ietf-httpapi-
// ratelimit-headers) plus the legacy X-RateLimit-* trio on every response.

import { EdgelimitError, invalid } from "./errors.js";
import { runtimeClient } from "./identity.js";
import { options } from "./options.js";

const seconds = (ms) => Math.ceil(Math.max(0, ms) / 1000);

// Decisions made without the store's numbers.
const UNCOUNTED = new Set(["storeFailure", "denyList", "allowList"]);

/** The names of several limits' policies: their kind and window, unique. */
function policyNames(algorithms) {
  const names = [];
  for (const [i, { kind, windowMs }] of algorithms.entries()) {
    const name = `${kind}-${seconds(windowMs)}s`;
    names.push(names.includes(name) ? `${name}-${i}` : name);
  }
  return names;
}

export function rateLimitHeaders(algorithm, result, now = Date.now()) {
  const headers = new Headers();
  const several = Array.isArray(algorithm) && Array.isArray(result.limits);
  const names = several ? policyNames(algorithm) : ["default"];
  if (several) {
    // One policy per limit, and what each has left.
    const items = algorithm.map((a, i) => `"${names[i]}";q=${result.limits[i].limit};w=${seconds(a.windowMs)}`);
    headers.set("RateLimit-Policy", items.join(", "));
  } else {
    // The call's own limit when it had one (a user's plan), else the limiter's.
    const quota = Number.isFinite(result.limit) ? result.limit : algorithm.limit;
    headers.set("RateLimit-Policy", `"default";q=${quota};w=${seconds(algorithm.windowMs)}`);
  }
  if (UNCOUNTED.has(result.reason)) {
    // The store was not asked (it failed, or a list decided): the usage is
    // unknown, so it is not advertised; a fail-closed denial still says
    // when to come back (a deny list never does).
    if (!result.success && Number.isFinite(result.retryAfter)) {
      headers.set("Retry-After", String(Math.max(1, seconds(result.retryAfter))));
    }
    return headers;
  }
  if (several) {
    // While blocked, no limit admits anything before the block's end.
    const blocked = result.reason === "blocked";
    const items = result.limits.map((d, i) =>
      blocked
        ? `"${names[i]}";r=0;t=${seconds(Math.max(d.reset - now, result.retryAfter))}`
        : `"${names[i]}";r=${d.remaining};t=${seconds(d.reset - now)}`,
    );
    headers.set("RateLimit", items.join(", "));
  } else {
    headers.set("RateLimit", `"default";r=${result.remaining};t=${seconds(result.reset - now)}`);
  }
  headers.set("X-RateLimit-Limit", String(result.limit));
  headers.set("X-RateLimit-Remaining", String(result.remaining));
  headers.set("X-RateLimit-Reset", String(seconds(result.reset)));
  if (!result.success) headers.set("Retry-After", String(Math.max(1, seconds(result.retryAfter))));
  return headers;
}

/** Why a key is needed where the runtime gives no trustworthy address. */
export const NO_DEFAULT_KEY =
  "needs a key function here: only Cloudflare Workers (CF-Connecting-IP) and Deno (the connection's " +
  "address) tell who the client is in a way no client can forge. Behind your own proxies pass " +
  "key: (request) => clientIp(request, { trustedProxies }); or key by an API key or user id";

/** The answer to a request no key identifies: refused, never a shared quota. */
function unidentified() {
  return new Response("Bad Request: the client cannot be identified\n", {
    status: 400,
    headers: { "Content-Type": "text/plain; charset=utf-8" },
  });
}

/** Whether a key function's answer identifies no one. */
export function anonymous(id) {
  return id === undefined || id === null || id === "";
}

// Errors that mean the store is down or struggling, rather than that the
// limiter is set up wrong (a refused token, a wrong URL: every request
// would fail the same way until someone fixes it).
const OUTAGES = new Set([
  "STORE_TIMEOUT",
  "STORE_UNREACHABLE",
  "STORE_UNAVAILABLE",
  "STORE_BUSY",
  "STORE_MALFORMED_REPLY",
  "STORE_COMMAND",
  "STORE_SCRIPT_MISSING",
]);

const logged = new Set();

/** Logs `error` once per code: one line to notice, not one per request. */
function logOnce(error) {
  const key = String(error?.code);
  if (logged.has(key)) return;
  logged.add(key);
  console.error(`edgelimit: ${error?.code ?? "error"}: ${error?.message ?? error} (logged once)`);
}

/**
 * The answer when deciding failed (with `failure: "error"`, the default; the
 * other policies decide instead): 503 with `Retry-After: 1` while the store
 * is down, 500 when the limiter is misconfigured (a refused token, a wrong
 * URL: raised whatever the policy). Either way logged once, never thrown at
 * the runtime.
 */
export function failedResponse(error) {
  logOnce(error);
  if (error?.code === "INVALID_ARGUMENT") {
    // An id the key function made from the request (too long, not a string).
    return new Response("Bad Request: the client id is not valid\n", {
      status: 400,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
  }
  if (OUTAGES.has(error?.code)) {
    return new Response("Service Unavailable: the rate limiter's store is down\n", {
      status: 503,
      headers: { "Content-Type": "text/plain; charset=utf-8", "Retry-After": "1" },
    });
  }
  return new Response("Internal Server Error: the rate limiter is misconfigured\n", {
    status: 500,
    headers: { "Content-Type": "text/plain; charset=utf-8" },
  });
}

/** The default answer to a denied request: 429, or 403 for the deny list (waiting would not help). */
export function deniedResponse(result) {
  const [status, text] = result.reason === "denyList" ? [403, "Forbidden"] : [429, "Too Many Requests"];
  return new Response(`${text}\n`, {
    status,
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

export function withRateLimit(handler, config) {
  const {
    limiter,
    key = runtimeClient(),
    cost,
    limit,
    onLimited,
    onUnidentified = unidentified,
  } = options("withRateLimit", config, ["limiter", "key", "cost", "limit", "onLimited", "onUnidentified"]);
  if (typeof handler !== "function") throw invalid("withRateLimit needs a fetch handler");
  if (limiter === undefined) throw invalid("withRateLimit needs a limiter");
  if (key === undefined) throw new EdgelimitError("INVALID_CONFIG", `withRateLimit ${NO_DEFAULT_KEY}`);
  if (typeof key !== "function") throw invalid("key must be a function of the request");
  if (typeof onUnidentified !== "function") throw invalid("onUnidentified must be a function of the request");
  if (limit !== undefined && typeof limit !== "function") throw invalid("limit must be a function of the request");
  return async (request, env, ctx) => {
    const id = await key(request, env, ctx);
    if (anonymous(id)) return onUnidentified(request, env, ctx);
    const chosen = typeof limiter === "function" ? limiter(request, env, ctx) : limiter;
    let result;
    try {
      const units = cost ? cost(request, env, ctx) : 1;
      // The client's own limit (its plan), looked up per request.
      const own = limit ? await limit(request, env, ctx) : undefined;
      result = await chosen.limit(id, own === undefined ? { cost: units } : { cost: units, limit: own });
    } catch (error) {
      return failedResponse(error);
    }
    const response = result.success
      ? await handler(request, env, ctx)
      : await (onLimited ? onLimited(request, result) : deniedResponse(result));
    return decorate(response, rateLimitHeaders(chosen.algorithm, result));
  };
}
