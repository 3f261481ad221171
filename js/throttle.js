// throttle: calls that wait for capacity instead of failing, admitted in the
// order they were made (a browser's API client, a crawler's fetches).

import { EdgelimitError, invalid } from "./errors.js";
import { options } from "./options.js";
import { sleep } from "./wait.js";

export function throttle(fn, limiter, config) {
  const { key = "throttle", cost = 1, signal } = options("throttle", config, ["key", "cost", "signal"]);
  if (typeof fn !== "function") throw invalid("throttle needs a function");
  if (typeof limiter?.limit !== "function") throw invalid("throttle needs a Ratelimit");
  let queue = Promise.resolve();

  async function admit(id) {
    for (;;) {
      signal?.throwIfAborted();
      const result = await limiter.limit(id, { cost });
      if (result.success) return;
      // Never admitted (a deny list): waiting would spin, so the call fails.
      if (!Number.isFinite(result.retryAfter)) {
        throw new EdgelimitError("DENY_LISTED", `throttle: ${JSON.stringify(id)} is on the limiter's deny list`);
      }
      await sleep(Math.max(1, result.retryAfter), signal);
    }
  }

  return (...args) => {
    const id = typeof key === "function" ? key(...args) : key;
    // Admissions are chained so that earlier calls go first; the calls
    // themselves then run concurrently.
    const turn = queue.then(() => admit(id));
    queue = turn.catch(() => {});
    return turn.then(() => fn(...args));
  };
}
