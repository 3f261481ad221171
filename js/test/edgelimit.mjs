// The package as each runtime loads it: Node through its node entry, Deno
// through the entry its `deno` export condition selects.
const entry = globalThis.Deno ? "../../pkg/browser.js" : "../../pkg/node.js";
const edgelimit = await import(entry);

export const {
  accessList,
  Concurrency,
  EdgelimitError,
  clientIp,
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

/**
 * Starts `fn` with `Date.now()` answering `clock.now`, restoring it as soon
 * as `fn` returns its promise: the limiter reads the clock when a call
 * starts, and servers running in this process (a test's proxy) keep their
 * own time while the call's requests are in flight.
 */
export function callAt(clock, fn) {
  const real = Date.now;
  Date.now = () => clock.now;
  try {
    return fn();
  } finally {
    Date.now = real;
  }
}

/**
 * Runs `fn` as if in Cloudflare Workers, which the package recognises by
 * `navigator.userAgent` (the real thing runs in workerd: worker-example/).
 */
export async function asCloudflareWorkers(fn) {
  const original = Object.getOwnPropertyDescriptor(globalThis, "navigator");
  Object.defineProperty(globalThis, "navigator", {
    value: { userAgent: "Cloudflare-Workers" },
    configurable: true,
    writable: true,
  });
  try {
    return await fn();
  } finally {
    if (original) Object.defineProperty(globalThis, "navigator", original);
    else delete globalThis.navigator;
  }
}
