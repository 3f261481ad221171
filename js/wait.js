// Waiting: timers that an AbortSignal cancels, and the jittered backoff
// shared by blockUntilReady, acquire and throttle.

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

/**
 * How long to sleep after a denial asking for `retryAfter` ms, or -1 when
 * that is past the deadline. A little jitter keeps waiters woken together
 * from colliding again; it never pushes the wake-up past the deadline.
 */
export function backoff(retryAfter, now, deadline) {
  const wait = Math.max(1, retryAfter);
  const room = deadline - now;
  if (wait > room) return -1;
  const jitter = Math.min(Math.floor(wait / 8), room - wait, 50);
  return wait + Math.floor(Math.random() * (jitter + 1));
}
