// Waiting: timers that an AbortSignal cancels, and the core's jittered
// backoff (`backoff(retryAfter, now, deadline)`: ms to sleep, or -1 past the
// deadline) shared by blockUntilReady, acquire and throttle.

export { backoff } from "./edgelimit.js";

export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
