// Type-checked in a plain Workers tsconfig (lib es2022 and
// @cloudflare/workers-types, no skipLibCheck) by tools/check-pkg.sh.
import { type Concurrency, Ratelimit, redisStore, withRateLimit } from "edgelimit";

interface Env {
  REDIS_URL: string;
  REDIS_TOKEN: string;
}

const limiter = (env: Env) =>
  new Ratelimit({
    limiter: Ratelimit.gcra(100, "1 m"),
    store: redisStore({ url: env.REDIS_URL, token: env.REDIS_TOKEN }),
  });

// Env from the handler's annotation, with no type argument.
export const annotated = {
  fetch: withRateLimit(async (_request: Request, env: Env) => new Response(env.REDIS_URL), {
    limiter: (_request, env) => limiter(env),
  }),
} satisfies ExportedHandler<Env>;

// Env from `satisfies ExportedHandler<Env>` alone.
export default {
  fetch: withRateLimit(async (_request, env) => new Response(env.REDIS_URL), {
    limiter: (_request, env) => limiter(env),
    key: (request) => request.headers.get("CF-Connecting-IP") ?? "anonymous",
  }),
} satisfies ExportedHandler<Env>;

// A permit without `await using` (the lib has no disposables).
export async function job(jobs: Concurrency): Promise<boolean> {
  const permit = await jobs.acquire("tenant");
  await permit.release();
  return permit.acquired;
}
