// One fresh process measures one cell: one implementation, one key pattern,
// one verdict. A fresh process keeps each implementation's JIT feedback and
// heap its own. Closed loop, one call at a time (each async call awaited),
// hrtime read once per batch so the clock costs nothing per call.
//
//   node child-decide.mjs <impl> <hot|10k> <allowed|denied> <warmup ms> <duration ms>
const [impl, pattern, verdict, warmupMs, durationMs] = process.argv.slice(2);

// "allowed": a limit no run can reach (1e9 per hour), so every call is
// admitted; "denied": 1 per hour, so all but each key's first call are denied.
const N = verdict === "denied" ? 1 : 1e9;
const WINDOW_S = 3600;

const ours = async (algorithm, mode) => {
  const { Ratelimit } = await import("edgelimit");
  const limiter = {
    fixedWindow: () => Ratelimit.fixedWindow(N, `${WINDOW_S} s`),
    gcra: () => Ratelimit.gcra(N, `${WINDOW_S} s`),
    tokenBucket: () => Ratelimit.tokenBucket(N, `${WINDOW_S} s`, N),
  }[algorithm]();
  const rl = new Ratelimit({ limiter });
  return mode === "sync"
    ? { call: (k) => rl.limitSync(k).success }
    : // The same form as rate-limiter-flexible's below: one promise, one then.
      { async: true, call: (k) => rl.limit(k).then((r) => r.success) };
};

const impls = {
  "edgelimit fixedWindow limitSync": () => ours("fixedWindow", "sync"),
  "edgelimit fixedWindow limit": () => ours("fixedWindow", "async"),
  "edgelimit gcra limitSync": () => ours("gcra", "sync"),
  "edgelimit gcra limit": () => ours("gcra", "async"),
  "edgelimit tokenBucket limitSync": () => ours("tokenBucket", "sync"),
  "edgelimit tokenBucket limit": () => ours("tokenBucket", "async"),
  // No decision at all: an already resolved promise, awaited in the same
  // form as the async calls. The most any awaited call can reach.
  "promise floor (no decision)": async () => ({ async: true, call: (k) => Promise.resolve(k).then(() => true) }),
  // Fixed window; a denial rejects with a RateLimiterRes (not an Error).
  "rate-limiter-flexible consume": async () => {
    const { RateLimiterMemory } = await import("rate-limiter-flexible");
    const rl = new RateLimiterMemory({ points: N, duration: WINDOW_S });
    return {
      async: true,
      call: (k) =>
        rl.consume(k).then(
          () => true,
          () => false,
        ),
    };
  },
  // limiter has one bucket per object and no keys: a Map of buckets is how
  // it is used per client. TokenBucket starts empty, so it is filled.
  "limiter TokenBucket tryRemoveTokens": async () => {
    const { TokenBucket } = await import("limiter");
    const buckets = new Map();
    return {
      call: (k) => {
        let b = buckets.get(k);
        if (!b) {
          b = new TokenBucket({ bucketSize: N, tokensPerInterval: N, interval: "hour" });
          b.content = N;
          buckets.set(k, b);
        }
        return b.tryRemoveTokens(1);
      },
    };
  },
  "limiter RateLimiter tryRemoveTokens": async () => {
    const { RateLimiter } = await import("limiter");
    const limiters = new Map();
    return {
      call: (k) => {
        let l = limiters.get(k);
        if (!l) {
          l = new RateLimiter({ tokensPerInterval: N, interval: "hour" });
          limiters.set(k, l);
        }
        return l.tryRemoveTokens(1);
      },
    };
  },
};

if (!impls[impl] || !["hot", "10k"].includes(pattern) || !["allowed", "denied"].includes(verdict)) {
  console.error(`child-decide.mjs: bad cell ${process.argv.slice(2).join(" ")}`);
  process.exit(2);
}
const { call, async: isAsync } = await impls[impl]();
const keys = pattern === "hot" ? ["user:0"] : Array.from({ length: 10_000 }, (_, i) => `user:${i}`);

const BATCH = 1000;
let next = 0;
function runSync(until) {
  let calls = 0;
  let admitted = 0;
  do {
    for (let b = 0; b < BATCH; b++) {
      if (call(keys[next])) admitted++;
      if (++next === keys.length) next = 0;
    }
    calls += BATCH;
  } while (process.hrtime.bigint() < until);
  return { calls, admitted };
}
async function runAsync(until) {
  let calls = 0;
  let admitted = 0;
  do {
    for (let b = 0; b < BATCH; b++) {
      if (await call(keys[next])) admitted++;
      if (++next === keys.length) next = 0;
    }
    calls += BATCH;
  } while (process.hrtime.bigint() < until);
  return { calls, admitted };
}
const run = isAsync ? runAsync : runSync;

const ms = (x) => BigInt(Math.round(Number(x) * 1e6));
// Every key once first, however short the warm-up: in the denied cells the
// measured calls are then all denials, and every key has state.
for (const k of keys) await call(k);
await run(process.hrtime.bigint() + ms(warmupMs));
const t0 = process.hrtime.bigint();
const { calls, admitted } = await run(t0 + ms(durationMs));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(JSON.stringify({ opsPerSec: calls / secs, calls, admitted }));
