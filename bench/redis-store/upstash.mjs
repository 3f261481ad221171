// Closed-loop load generator for @upstash/ratelimit, the peer side of
// run.sh: the same measurement as examples/rest_bench.rs.
//
// --concurrency async loops in one Node process share one Ratelimit (one
// @upstash/redis client with its defaults: base64 replies, auto-pipelining
// on unless --auto-pipeline off).
// Each loop awaits one limit() call and starts the next, cycling round-robin
// through --keys keys, for --duration-secs after an unrecorded warm-up. No
// ephemeral cache (every call reaches Redis), analytics off. Prints one JSON
// line; "requests" counts the HTTP requests sent during the measured window
// (global fetch is wrapped with a counter). Loopback URLs only.
//
//   node upstash.mjs --url http://127.0.0.1:8080 --token t \
//     --algorithm token-bucket --concurrency 10

const args = {
  url: "",
  token: "",
  algorithm: "",
  concurrency: 1,
  "duration-secs": 5,
  "warmup-secs": 0.5,
  keys: 10000,
  "auto-pipeline": "on",
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const name = argv[i].replace(/^--/, "");
  if (!(name in args) || argv[i + 1] === undefined) {
    console.error(`upstash.mjs: bad flag ${argv[i]}`);
    process.exit(2);
  }
  args[name] = typeof args[name] === "number" ? Number(argv[i + 1]) : argv[i + 1];
}
const host = new URL(args.url).hostname;
if (!["127.0.0.1", "localhost", "[::1]"].includes(host)) {
  console.error("upstash.mjs only targets loopback addresses");
  process.exit(2);
}

// Count every HTTP request the client makes; installed before the client
// is loaded so it cannot hold on to the original.
let requests = 0;
let counting = false;
const realFetch = globalThis.fetch;
globalThis.fetch = (...a) => {
  if (counting) requests += 1;
  return realFetch(...a);
};

const { Redis } = await import("@upstash/redis");
const { Ratelimit } = await import("@upstash/ratelimit");

const limiters = {
  // Capacity 100, 10 tokens back every second.
  "token-bucket": () => Ratelimit.tokenBucket(10, "1 s", 100),
  // 100 calls per sliding 10 s.
  "sliding-window": () => Ratelimit.slidingWindow(100, "10 s"),
};
if (!limiters[args.algorithm]) {
  console.error(`upstash.mjs: unknown algorithm ${args.algorithm}`);
  process.exit(2);
}
const ratelimit = new Ratelimit({
  redis: new Redis({
    url: args.url,
    token: args.token,
    enableAutoPipelining: args["auto-pipeline"] !== "off",
  }),
  limiter: limiters[args.algorithm](),
  ephemeralCache: false,
  analytics: false,
});

const keys = Array.from({ length: args.keys }, (_, i) => `user:${i}`);
let next = 0;
const latencies = [];
let allowed = 0;
let errors = 0;
let firstError;

const t0 = performance.now();
const measureFrom = t0 + args["warmup-secs"] * 1000;
const end = measureFrom + args["duration-secs"] * 1000;
setTimeout(() => {
  counting = true;
}, measureFrom - t0);

async function loop() {
  for (;;) {
    const began = performance.now();
    if (began >= end) return;
    const key = keys[next++ % keys.length];
    let outcome;
    try {
      const r = await ratelimit.limit(key);
      // A timed-out call is allowed by the library without a decision.
      outcome = r.reason === "timeout" ? "timeout" : r;
    } catch (e) {
      outcome = `${e}`;
    }
    const took = performance.now() - began;
    if (began < measureFrom) continue;
    if (typeof outcome === "string") {
      errors += 1;
      firstError ??= outcome;
    } else {
      latencies.push(took);
      if (outcome.success) allowed += 1;
    }
  }
}
await Promise.all(Array.from({ length: args.concurrency }, loop));
counting = false;

if (firstError) console.error(`upstash.mjs: ${errors} failed decisions, first: ${firstError}`);
latencies.sort((a, b) => a - b);
const n = latencies.length;
const pct = (p) => (n ? latencies[Math.min(n, Math.max(1, Math.ceil((p / 100) * n))) - 1] : 0);
const secs = args["duration-secs"];
console.log(
  JSON.stringify({
    decisions: n,
    allowed,
    errors,
    secs,
    rps: Math.round(n / secs),
    p50_ms: Number(pct(50).toFixed(3)),
    p99_ms: Number(pct(99).toFixed(3)),
    requests,
  }),
);
