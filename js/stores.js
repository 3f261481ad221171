// The stores: where limiter state lives. One store may serve many limiters.

import { CoreFailure, CoreMemoryStore, CoreRestStore } from "./edgelimit.js";
import { checkNumber, invalid } from "./errors.js";
import { describe, options } from "./options.js";
import { Transport } from "./transport.js";

/** The core object behind a store or algorithm. */
export const CORE = Symbol("edgelimit.core");
/** Where a Redis store's requests go. */
export const TRANSPORT = Symbol("edgelimit.transport");

export function memoryStore(config) {
  const { maxKeys, maxBytes } = options("memoryStore", config, ["maxKeys", "maxBytes"]);
  if (maxKeys !== undefined) checkNumber("maxKeys", maxKeys);
  if (maxBytes !== undefined) checkNumber("maxBytes", maxBytes);
  return Object.freeze({ kind: "memory", [CORE]: new CoreMemoryStore(maxKeys, maxBytes) });
}

/** Calls per request, requests in flight and grouping, from the `batch` option. */
function batching(batch) {
  const defaults = { maxCalls: 128, maxInFlight: Infinity, grouping: "script" };
  if (batch === false) return { ...defaults, maxCalls: 1, grouping: "pipeline" };
  if (batch === true) return defaults;
  if (typeof batch !== "object" || batch === null) {
    throw invalid("batch must be true, false or { maxCalls, maxInFlight, grouping }");
  }
  const {
    maxCalls = 128,
    maxInFlight = Infinity,
    grouping = "script",
  } = options("batch", batch, ["maxCalls", "maxInFlight", "grouping"]);
  for (const [name, value] of [
    ["maxCalls", maxCalls],
    ["maxInFlight", maxInFlight],
  ]) {
    if (!(checkNumber(name, value) >= 1) || !(Number.isInteger(value) || value === Infinity)) {
      throw invalid(`batch.${name} must be a whole number of at least 1`);
    }
  }
  if (grouping !== "script" && grouping !== "pipeline") {
    throw invalid('batch.grouping must be "script" or "pipeline"');
  }
  return { maxCalls, maxInFlight, grouping };
}

// @upstash/redis's own client options, which mean nothing to a store.
const CLIENT_OPTIONS = "an @upstash/redis client option; give the client itself as new Ratelimit({ redis })";
const REDIS_HINTS = {
  automaticDeserialization: CLIENT_OPTIONS,
  responseEncoding: CLIENT_OPTIONS,
  retry: "retries: n sets how often a failed request is tried again",
  readYourWrites: CLIENT_OPTIONS,
};

export function redisStore(config) {
  const {
    url,
    token,
    timeout = 2000,
    retries = 2,
    time = "redis",
    batch = true,
    denyCache = 10_000,
  } = options("redisStore", config, ["url", "token", "timeout", "retries", "time", "batch", "denyCache"], REDIS_HINTS);
  if (typeof url !== "string" || !/^https?:\/\//.test(url)) {
    throw invalid(`redisStore needs an http(s) url, got ${describe(url)}`);
  }
  if (typeof token !== "string" || token === "") throw invalid("redisStore needs a token");
  if (time !== "redis" && time !== "caller") throw invalid(`time must be "redis" or "caller"`);
  checkNumber("timeout", timeout);
  checkNumber("retries", retries);
  const cached = denyCache === false ? 0 : checkNumber("denyCache", denyCache);
  const core = new CoreRestStore(timeout, retries, time === "caller", cached);
  const transport = new Transport(url, token, batching(batch));
  return Object.freeze({ kind: "redis", [CORE]: core, [TRANSPORT]: transport });
}

const FAILURES = new Map([
  ["error", CoreFailure.Error],
  ["open", CoreFailure.Open],
  ["closed", CoreFailure.Closed],
]);

/** The failure policy as the core numbers it. */
export function failureCode(failure) {
  const code = FAILURES.get(failure);
  if (code === undefined) throw invalid(`failure must be "error", "open" or "closed", got ${describe(failure)}`);
  return code;
}

export function checkStore(store) {
  if (store?.[CORE] === undefined) throw invalid("store must come from memoryStore() or redisStore()");
  return store;
}

/** The environment's variables: Node's and Bun's process.env, Deno.env, or none. */
function environment() {
  if (typeof process !== "undefined" && process.env) return process.env;
  if (typeof Deno !== "undefined") return Deno.env.toObject();
  return {};
}

/**
 * A Redis store from Upstash's environment names (UPSTASH_REDIS_REST_URL
 * and UPSTASH_REDIS_REST_TOKEN, else Vercel KV's KV_REST_API_URL and
 * KV_REST_API_TOKEN), read from `env` (a Worker's `env`) or the process.
 */
function fromEnv(env = environment(), config = {}) {
  if (env === null || typeof env !== "object")
    throw invalid("redisStore.fromEnv takes an env object, e.g. a Worker's env");
  const url = env.UPSTASH_REDIS_REST_URL ?? env.KV_REST_API_URL;
  const token = env.UPSTASH_REDIS_REST_TOKEN ?? env.KV_REST_API_TOKEN;
  if (url === undefined || token === undefined) {
    throw invalid("redisStore.fromEnv needs UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN");
  }
  return redisStore({
    ...options("redisStore.fromEnv", config, ["timeout", "retries", "time", "batch", "denyCache"]),
    url,
    token,
  });
}

redisStore.fromEnv = fromEnv;
