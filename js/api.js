// The public API; the runtime entries (node.js, workerd.js, browser.js)
// instantiate the WebAssembly module and re-export this.

export { accessList } from "./access.js";
export { Concurrency } from "./concurrency.js";
export { rateLimitHeaders, withRateLimit } from "./edge.js";
export { EdgelimitError } from "./errors.js";
export { clientIp } from "./identity.js";
export { Ratelimit } from "./ratelimit.js";
export { memoryStore, redisStore } from "./stores.js";
export { throttle } from "./throttle.js";
