// The same Worker with state in Redis over the Upstash REST protocol: the
// like-for-like counterpart of upstash.mjs.
import { Ratelimit, redisStore, withRateLimit } from "edgelimit";

let limiter;

export default {
  fetch: withRateLimit(() => new Response("hello"), {
    limiter: (_request, env) =>
      (limiter ??= new Ratelimit({
        store: redisStore({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN }),
        limiter: Ratelimit.slidingWindow(10, "10 s"),
      })),
  }),
};
