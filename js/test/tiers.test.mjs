// A call's own limit (a user's plan): decided on the same state as the
// limiter's own calls, in memory and in Redis through the real gateway, the
// same numbers on both, the headers naming the call's limit, and typed
// errors for limits that are no configuration.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { stackForTests } from "../../tools/js/testkit.mjs";
import { atTime, EdgelimitError, Ratelimit, rateLimitHeaders, redisStore, withRateLimit } from "./edgelimit.mjs";

const stack = stackForTests({ before, after });

const T0 = 1_700_000_010_000;
const numbers = (r) => [r.success, r.limit, r.remaining, r.reset, r.retryAfter];

test("an upgrade counts the usage already made against the new limit, a downgrade too", () =>
  atTime({ now: T0 }, () => {
    const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(10, "1 m") });
    const end = Math.ceil(T0 / 60_000) * 60_000;
    for (let i = 0; i < 10; i++) assert.equal(rl.limitSync("u").success, true);
    assert.deepEqual(numbers(rl.limitSync("u")), [false, 10, 0, end, end - T0]);
    assert.deepEqual(numbers(rl.limitSync("u", { limit: 100 })), [true, 100, 89, end, 0]);
    // Back on the free plan: the 11 units used leave nothing, and the
    // denial takes nothing (the plan of 100 still has 89).
    assert.deepEqual(numbers(rl.limitSync("u", { limit: 5 })), [false, 5, 0, end, end - T0]);
    assert.equal(rl.limitSync("u", { limit: 100, cost: 0 }).remaining, 89);
  }));

test("awaited calls and blockUntilReady take the limit too", async () => {
  const rl = new Ratelimit({ limiter: Ratelimit.slidingLog(1, "1 h") });
  assert.equal((await rl.limit("u")).success, true);
  assert.equal((await rl.limit("u")).success, false);
  const pro = await rl.limit("u", { limit: 3, cost: 2 });
  assert.deepEqual([pro.success, pro.limit, pro.remaining], [true, 3, 0]);
  const waited = await rl.blockUntilReady("u", 0, { limit: 4 });
  assert.deepEqual([waited.success, waited.remaining], [true, 0]);
});

test("a limit that is no configuration is a typed error, and nothing is taken", async () => {
  const gcra = new Ratelimit({ limiter: Ratelimit.gcra(5, "1 s") });
  for (const [limit, code] of [
    [0, "INVALID_ARGUMENT"],
    [-1, "INVALID_ARGUMENT"],
    [1.5, "INVALID_ARGUMENT"],
    ["10", "INVALID_ARGUMENT"],
  ]) {
    assert.throws(
      () => gcra.limitSync("u", { limit }),
      (e) => e instanceof EdgelimitError && e.code === code,
      String(limit),
    );
    await assert.rejects(gcra.limit("u", { limit }), (e) => e.code === code, String(limit));
  }
  assert.throws(
    () => gcra.limitSync("u", { refillRate: 2 }),
    (e) => e.code === "INVALID_ARGUMENT" && /GCRA takes no refill/.test(e.message),
  );
  const bucket = new Ratelimit({ limiter: Ratelimit.tokenBucket(2, "1 s", 5) });
  assert.throws(
    () => bucket.limitSync("u", { refillRate: 1 }),
    (e) =>
      e.code === "INVALID_ARGUMENT" &&
      /the limiter's refill \(2\) must not exceed a tier's refill \(1\)/.test(e.message),
  );
  assert.equal(gcra.limitSync("u").remaining, 4, "untouched by the failed calls");
  assert.equal(bucket.limitSync("u").remaining, 4);
});

test("a larger bucket mints no tokens, a smaller one holds no more than its size", () => {
  const clock = { now: T0 };
  return atTime(clock, () => {
    const rl = new Ratelimit({ limiter: Ratelimit.tokenBucket(1, "1 s", 10) });
    const pro = { limit: 100, refillRate: 10 };
    // A new key starts with the limiter's own 10 tokens, whatever its plan.
    assert.deepEqual(numbers(rl.limitSync("u", pro)).slice(0, 3), [true, 100, 9]);
    clock.now += 10_000;
    assert.equal(rl.limitSync("u", { ...pro, cost: 0 }).remaining, 100);
    assert.deepEqual(numbers(rl.limitSync("u")).slice(0, 3), [true, 10, 9], "a draw keeps 9 of the 100");
    assert.equal(rl.limitSync("u", { ...pro, cost: 0 }).remaining, 9, "the larger bucket refills them");
  });
});

test("Redis through the gateway decides tiers exactly as memory", async () => {
  const store = redisStore({ url: stack.gateway.url, token: stack.gateway.token, time: "caller" });
  const prefix = `tiers-${Date.now()}`;
  // Fixed "now" for both sides: the Redis store sends the caller's time.
  await atTime({ now: T0 }, async () => {
    for (const make of [
      () => Ratelimit.fixedWindow(4, "10 s"),
      () => Ratelimit.slidingWindow(4, "10 s"),
      () => Ratelimit.slidingLog(4, "10 s"),
      () => Ratelimit.gcra(4, "10 s"),
      () => Ratelimit.tokenBucket(1, "1 s", 4),
    ]) {
      const memory = new Ratelimit({ limiter: make() });
      const redis = new Ratelimit({ limiter: make(), store, prefix });
      for (let i = 0; i < 24; i++) {
        const options = [{}, { limit: 9 }, { limit: 2 }, { limit: 6, cost: 3, refillRate: 2 }][i % 4];
        const id = `k${i % 2}`;
        let m;
        let r;
        try {
          m = memory.limitSync(id, options);
        } catch (error) {
          m = error.code;
        }
        try {
          r = await redis.limit(id, options);
        } catch (error) {
          r = error.code;
        }
        assert.deepEqual(typeof r === "string" ? r : numbers(r), typeof m === "string" ? m : numbers(m), `call ${i}`);
      }
    }
  });
});

test("calls under different plans made together share one batch, each decided under its own", async () => {
  const store = redisStore({ url: stack.gateway.url, token: stack.gateway.token, time: "caller" });
  const prefix = `tiers-batch-${Date.now()}`;
  await atTime({ now: T0 }, async () => {
    const make = () => Ratelimit.tokenBucket(1, "1 s", 3);
    const memory = new Ratelimit({ limiter: make() });
    const redis = new Ratelimit({ limiter: make(), store, prefix });
    const plans = Array.from({ length: 12 }, (_, i) => [{}, { limit: 5 }, { limit: 8, refillRate: 4 }][i % 3]);
    const batched = await Promise.all(plans.map((options) => redis.limit("k", options)));
    const alone = plans.map((options) => memory.limitSync("k", options));
    assert.deepEqual(batched.map(numbers), alone.map(numbers));
    assert.deepEqual(
      alone.map((r) => r.success),
      [true, true, true, false, false, false, false, false, false, false, false, false],
    );
  });
});

test("withRateLimit limits each request by the client's plan and advertises that limit", async () => {
  const limiter = new Ratelimit({ limiter: Ratelimit.fixedWindow(2, "1 h") });
  const plans = { free: undefined, pro: 5 };
  const handler = withRateLimit(() => new Response("ok"), {
    limiter,
    key: (request) => request.headers.get("x-user"),
    limit: async (request) => plans[request.headers.get("x-plan")],
  });
  const call = (plan) => handler(new Request("https://x/", { headers: { "x-user": "u", "x-plan": plan } }));
  assert.equal((await call("free")).status, 200);
  assert.equal((await call("free")).status, 200);
  assert.equal((await call("free")).status, 429);
  const upgraded = await call("pro");
  assert.equal(upgraded.status, 200);
  assert.equal(upgraded.headers.get("RateLimit-Policy"), '"default";q=5;w=3600');
  assert.equal(upgraded.headers.get("X-RateLimit-Remaining"), "2");
  assert.throws(() => withRateLimit(() => new Response(), { limiter, key: () => "u", limit: 5 }), {
    code: "INVALID_ARGUMENT",
  });
  const result = limiter.limitSync("v", { limit: 7 });
  assert.equal(rateLimitHeaders(limiter.algorithm, result).get("RateLimit-Policy"), '"default";q=7;w=3600');
});
