// The same Worker written the way @upstash/ratelimit documents it for
// Cloudflare: its Redis client from the /cloudflare entry, 429 when denied.
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis/cloudflare";

let ratelimit;

export default {
  async fetch(request, env, ctx) {
    ratelimit ??= new Ratelimit({
      redis: Redis.fromEnv(env),
      limiter: Ratelimit.slidingWindow(10, "10 s"),
    });
    const id = request.headers.get("CF-Connecting-IP") ?? "anonymous";
    const { success, limit, remaining, reset, pending } = await ratelimit.limit(id);
    ctx.waitUntil(pending);
    const headers = {
      "X-RateLimit-Limit": String(limit),
      "X-RateLimit-Remaining": String(remaining),
      "X-RateLimit-Reset": String(Math.ceil(reset / 1000)),
    };
    if (!success) return new Response("Too Many Requests", { status: 429, headers });
    return new Response("hello", { headers });
  },
};
