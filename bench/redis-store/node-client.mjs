// Closed-loop load generator in Node for the two JS clients compared by
// run.sh: edgelimit's npm package (pkg/, the Redis store) and
// @upstash/ratelimit, same algorithm and configuration, same gateway.
//
// --concurrency async loops in one Node process share one limiter. Each
// loop awaits one limit() call and starts the next, cycling round-robin
// through --keys keys, for --duration-secs after an unrecorded warm-up.
// Prints one JSON line; "requests" counts the HTTP requests sent during
// the measured window (global fetch is wrapped with a counter). Loopback
// URLs only.
//
//   node node-client.mjs --client edgelimit --url http://127.0.0.1:8080 \
//     --token t --algorithm token-bucket --concurrency 10 --batch on
//
// edgelimit: --batch on|off (calls made together share a request),
//   --max-calls N (most calls per request; 0: the default),
//   --deny-cache on|off (denials answered locally), --lease N (quota leases
//   of N units; sliding window only; 0: none). Time from Redis.
// upstash: @upstash/redis with its defaults (auto-pipelining on unless
//   --batch off); --deny-cache on|off is its ephemeralCache; analytics off.

const args = {
  client: "",
  url: "",
  token: "",
  algorithm: "",
  concurrency: 1,
  "duration-secs": 5,
  "warmup-secs": 0.5,
  keys: 10000,
  batch: "on",
  "deny-cache": "off",
  "max-calls": 0,
  lease: 0,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const name = argv[i].replace(/^--/, "");
  if (!(name in args) || argv[i + 1] === undefined) {
    console.error(`node-client.mjs: bad flag ${argv[i]}`);
    process.exit(2);
  }
  args[name] = typeof args[name] === "number" ? Number(argv[i + 1]) : argv[i + 1];
}
const host = new URL(args.url).hostname;
if (!["127.0.0.1", "localhost", "[::1]"].includes(host)) {
  console.error("node-client.mjs only targets loopback addresses");
  process.exit(2);
}
const on = (flag) => args[flag] === "on";

// Count every HTTP request; installed before the clients are loaded so
// that none can hold on to the original.
let requests = 0;
let counting = false;
const realFetch = globalThis.fetch;
globalThis.fetch = (...a) => {
  if (counting) requests += 1;
  return realFetch(...a);
};

async function edgelimit() {
  const { Ratelimit, redisStore } = await import("../../pkg/node.js");
  const limiters = {
    // Capacity 100, 10 tokens back every second.
    "token-bucket": () => Ratelimit.tokenBucket(10, "1 s", 100),
    // 100 calls per sliding 10 s.
    "sliding-window": () => Ratelimit.slidingWindow(100, "10 s"),
  };
  const store = redisStore({
    url: args.url,
    token: args.token,
    batch: on("batch") ? (args["max-calls"] > 0 ? { maxCalls: args["max-calls"] } : true) : false,
    denyCache: on("deny-cache") ? 10_000 : 0,
  });
  const lease = args.lease > 0 ? { units: args.lease } : undefined;
  return new Ratelimit({ limiter: limiters[args.algorithm](), store, lease });
}

async function upstash() {
  const { Redis } = await import("@upstash/redis");
  const { Ratelimit } = await import("@upstash/ratelimit");
  const limiters = {
    "token-bucket": () => Ratelimit.tokenBucket(10, "1 s", 100),
    "sliding-window": () => Ratelimit.slidingWindow(100, "10 s"),
  };
  return new Ratelimit({
    redis: new Redis({ url: args.url, token: args.token, enableAutoPipelining: on("batch") }),
    limiter: limiters[args.algorithm](),
    ephemeralCache: on("deny-cache") ? new Map() : false,
    analytics: false,
  });
}

const clients = { edgelimit, upstash };
if (!clients[args.client] || !["token-bucket", "sliding-window"].includes(args.algorithm)) {
  console.error(`node-client.mjs: unknown client ${args.client} or algorithm ${args.algorithm}`);
  process.exit(2);
}
const ratelimit = await clients[args.client]();

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
      // A timed-out call is allowed by @upstash/ratelimit without a decision.
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

if (firstError) console.error(`node-client.mjs: ${errors} failed decisions, first: ${firstError}`);
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
