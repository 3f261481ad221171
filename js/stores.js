// The stores: where limiter state lives. One store may serve many limiters.

import { CoreMemoryStore, CoreRestStore } from "./edgelimit.js";
import { checkNumber, invalid } from "./errors.js";

/** The core object behind a store or algorithm. */
export const CORE = Symbol("edgelimit.core");
/** Where a Redis store's requests go. */
export const TRANSPORT = Symbol("edgelimit.transport");

export function memoryStore({ maxKeys } = {}) {
  if (maxKeys !== undefined) checkNumber("maxKeys", maxKeys);
  return Object.freeze({ kind: "memory", [CORE]: new CoreMemoryStore(maxKeys) });
}

export function redisStore({ url, token, timeout = 2000, retries = 2, time = "redis" } = {}) {
  if (typeof url !== "string" || !/^https?:\/\//.test(url)) {
    throw invalid(`redisStore needs an http(s) url, got ${JSON.stringify(url)}`);
  }
  if (typeof token !== "string" || token === "") throw invalid("redisStore needs a token");
  if (time !== "redis" && time !== "caller") throw invalid(`time must be "redis" or "caller"`);
  checkNumber("timeout", timeout);
  checkNumber("retries", retries);
  const core = new CoreRestStore(timeout, retries, time === "caller");
  const transport = Object.freeze({ url, authorization: `Bearer ${token}` });
  return Object.freeze({ kind: "redis", [CORE]: core, [TRANSPORT]: transport });
}

/** The failure policy as the core numbers it. */
export function failureCode(failure) {
  const code = ["error", "open", "closed"].indexOf(failure);
  if (code < 0) throw invalid(`failure must be "error", "open" or "closed", got ${JSON.stringify(failure)}`);
  return code;
}

export function checkStore(store) {
  if (store?.[CORE] === undefined) throw invalid("store must come from memoryStore() or redisStore()");
  return store;
}
