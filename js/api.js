// The public API; the runtime entries (node.js, workerd.js, browser.js)
// instantiate the WebAssembly module and re-export this.

export { EdgelimitError } from "./errors.js";
export { memoryStore, redisStore } from "./stores.js";
export { Ratelimit } from "./ratelimit.js";
export { Concurrency } from "./concurrency.js";
export { withRateLimit, rateLimitHeaders } from "./edge.js";
export { throttle } from "./throttle.js";
