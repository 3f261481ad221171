// The smallest useful Worker on edgelimit: per-IP limit, state in the
// isolate's memory, standard headers on every response.
import { Ratelimit, withRateLimit } from "edgelimit";

const limiter = new Ratelimit({ limiter: Ratelimit.slidingWindow(10, "10 s") });

export default {
  fetch: withRateLimit(() => new Response("hello"), { limiter }),
};
