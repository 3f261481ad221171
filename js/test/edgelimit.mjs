// The package as each runtime loads it: Node through its node entry, Deno
// through the entry its `deno` export condition selects.
const entry = globalThis.Deno ? "../../pkg/browser.js" : "../../pkg/node.js";
const edgelimit = await import(entry);

export const {
  Concurrency,
  EdgelimitError,
  Ratelimit,
  memoryStore,
  rateLimitHeaders,
  redisStore,
  throttle,
  withRateLimit,
} = edgelimit;

/** Runs `fn` with `Date.now()` answering `clock.now`. */
export async function atTime(clock, fn) {
  const real = Date.now;
  Date.now = () => clock.now;
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}
