// What a user of @upstash/ratelimit writes, accepted where the meaning is
// the same: `redis:` (an @upstash/redis client or `{ url, token }`),
// `ephemeralCache` (our exact deny cache), `analytics` and
// `enableTelemetry`; the rest of the mapping lives in Ratelimit itself
// (`limit(id, { rate })`, `resetUsedTokens`) and in `redisStore.fromEnv`.

import { invalid } from "./errors.js";
import { redisStore } from "./stores.js";

/** The URL and token of an @upstash/redis client (its HTTP client's). */
function credentials(redis) {
  if (typeof redis?.url === "string" && typeof redis?.token === "string") {
    return { url: redis.url, token: redis.token };
  }
  const client = redis?.client;
  const bearer = client?.headers?.authorization;
  if (typeof client?.baseUrl === "string" && typeof bearer === "string" && bearer.startsWith("Bearer ")) {
    return { url: client.baseUrl, token: bearer.slice("Bearer ".length) };
  }
  throw invalid("redis must be an @upstash/redis client or { url, token }");
}

/**
 * The store an @upstash/ratelimit configuration names: `redis` with
 * `ephemeralCache` (false: no deny cache; a Map or undefined: ours, which
 * is exact) and the request `timeout`.
 */
export function storeFromRedis({ redis, ephemeralCache }) {
  if (ephemeralCache !== undefined && ephemeralCache !== false && !(ephemeralCache instanceof Map)) {
    throw invalid("ephemeralCache must be a Map or false");
  }
  return redisStore({ ...credentials(redis), denyCache: ephemeralCache === false ? 0 : 10_000 });
}

/** Checks the flags that change nothing here, so a typo is still an error. */
export function checkUpstashFlags({ analytics, enableTelemetry }) {
  if (analytics !== undefined && typeof analytics !== "boolean") throw invalid("analytics must be true or false");
  if (enableTelemetry !== undefined && typeof enableTelemetry !== "boolean") {
    throw invalid("enableTelemetry must be true or false");
  }
}
