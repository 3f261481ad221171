// The app each bundler builds (bundlers.test.mjs): a page importing the
// package as a user's code would. `edgelimit` is replaced by the entry under
// test (`edgelimit` itself, or `edgelimit/inline`) before building.
import { Ratelimit } from "edgelimit";

try {
  const limiter = new Ratelimit({ limiter: Ratelimit.fixedWindow(2, "1 m") });
  const decisions = [];
  for (let i = 0; i < 3; i++) decisions.push((await limiter.limit("visitor")).success);
  window.results = { decisions, remaining: (await limiter.getRemaining("visitor")).remaining };
} catch (error) {
  window.results = { failed: `${error?.stack ?? error}` };
}
