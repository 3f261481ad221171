// One fresh process: imports a library's Node entry, then makes its first
// in-memory decision (the first call may finish a lazy start), timing both.
// @upstash/ratelimit decides only through Redis, so its "first" is the
// construction of a limiter and its client, without a request.
const cases = {
  edgelimit: {
    load: () => import("edgelimit"),
    first: ([m]) => new m.Ratelimit({ limiter: m.Ratelimit.fixedWindow(10, "1 s") }).limitSync("a"),
  },
  "@upstash/ratelimit": {
    load: () => import("@upstash/ratelimit"),
  },
  "@upstash/ratelimit + @upstash/redis": {
    load: () => Promise.all([import("@upstash/ratelimit"), import("@upstash/redis")]),
    first: ([r, { Redis }]) =>
      new r.Ratelimit({
        redis: new Redis({ url: "http://127.0.0.1:9", token: "unused" }),
        limiter: r.Ratelimit.slidingWindow(10, "1 s"),
      }),
  },
  "rate-limiter-flexible": {
    load: () => import("rate-limiter-flexible"),
    first: ([m]) => new m.RateLimiterMemory({ points: 10, duration: 1 }).consume("a"),
  },
  limiter: {
    load: () => import("limiter"),
    first: ([m]) => new m.RateLimiter({ tokensPerInterval: 10, interval: "second" }).tryRemoveTokens(1),
  },
};

const c = cases[process.argv[2]];
if (!c) {
  console.error(`child-import.mjs: unknown case ${process.argv[2]}`);
  process.exit(2);
}
const t0 = process.hrtime.bigint();
const loaded = await c.load();
const t1 = process.hrtime.bigint();
if (c.first) await c.first([loaded].flat());
const t2 = process.hrtime.bigint();
console.log(JSON.stringify({ importMs: Number(t1 - t0) / 1e6, firstMs: c.first ? Number(t2 - t0) / 1e6 : null }));
