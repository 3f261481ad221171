// A Worker that allows each client 5 requests per sliding 10 seconds.
//
// State lives in this isolate's memory unless REDIS_URL and REDIS_TOKEN are
// set (an Upstash database or an edgelimit-gateway): then every isolate, in
// every region, shares the same counts.
import { memoryStore, Ratelimit, redisStore, withRateLimit } from "edgelimit";

const algorithm = Ratelimit.slidingWindow(5, "10 s");

// Limiters are built once per isolate, not per request: the memory store
// must outlive requests to count anything, and a Redis store keeps its
// loaded scripts between calls.
const inMemory = new Ratelimit({ limiter: algorithm, store: memoryStore() });
const inRedis = new Map();
const usesRedis = (env) => Boolean(env.REDIS_URL && env.REDIS_TOKEN);

function limiter(_request, env) {
  if (!usesRedis(env)) return inMemory;
  // What to answer when Redis cannot be reached: "open" lets requests
  // through, "closed" denies them; either beats failing the whole request.
  const failure = env.FAILURE === "closed" ? "closed" : "open";
  const cacheKey = `${env.REDIS_URL} ${failure}`;
  let shared = inRedis.get(cacheKey);
  if (!shared) {
    const store = redisStore({ url: env.REDIS_URL, token: env.REDIS_TOKEN });
    shared = new Ratelimit({ limiter: algorithm, store, failure });
    inRedis.set(cacheKey, shared);
  }
  return shared;
}

async function handler(_request, env) {
  const store = usesRedis(env) ? "redis" : "memory";
  return Response.json({ message: "Hello from behind the rate limiter", store });
}

// Clients are told apart by CF-Connecting-IP, which Cloudflare sets on
// every request; each gets its own 5 per 10 s.
export default { fetch: withRateLimit(handler, { limiter }) };
