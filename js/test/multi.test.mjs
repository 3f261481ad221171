// Several limits decided as one call (`limiter: [...]`) and the block after
// a denial (`blockFor`): all or nothing in memory and in Redis through the
// real gateway, the same numbers on both, the headers listing every
// policy, and typed errors.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { stackForTests } from "../../tools/js/testkit.mjs";
import { atTime, EdgelimitError, Ratelimit, rateLimitHeaders, redisStore, withRateLimit } from "./edgelimit.mjs";

const stack = stackForTests({ before, after });

const T0 = 1_700_000_020_000;
const numbers = (r) => [r.success, r.limit, r.remaining, r.reset, r.retryAfter, r.reason, r.deniedBy];
const each = (r) => r.limits.map((d) => [d.success, d.limit, d.remaining, d.reset, d.retryAfter]);

test("a denied call charges no limit, and says which limit denied it", () =>
  atTime({ now: T0 }, () => {
    const second = Ratelimit.slidingWindow(2, "1 s");
    const day = Ratelimit.fixedWindow(100, "1 d");
    const rl = new Ratelimit({ limiter: [second, day] });
    assert.equal(rl.limitSync("u").success, true);
    const last = rl.limitSync("u");
    assert.deepEqual([last.success, last.remaining, last.limits[1].remaining], [true, 0, 98]);
    const denied = rl.limitSync("u");
    assert.equal(denied.success, false);
    assert.equal(denied.deniedBy, 0);
    assert.equal(denied.limit, 2);
    assert.equal(denied.limits[1].remaining, 98, "the day's quota is untouched");
    assert.equal(denied.limits[1].success, true);
    // The factories' algorithms stay usable on their own.
    assert.equal(new Ratelimit({ limiter: day }).limitSync("u").remaining, 99);
  }));

test("blockFor keeps an id denied for exactly its time, however often it calls", () => {
  const clock = { now: T0 };
  return atTime(clock, async () => {
    const login = new Ratelimit({ limiter: Ratelimit.fixedWindow(2, "10 s"), blockFor: "1 m" });
    assert.equal(login.limitSync("alice").success, true);
    assert.equal((await login.limit("alice")).success, true);
    const first = login.limitSync("alice");
    assert.deepEqual(numbers(first), [false, 2, 0, T0 + 60_000, 60_000, "blocked", 0]);
    for (const t of [1, 10_000, 59_999]) {
      clock.now = T0 + t;
      const d = login.limitSync("alice");
      assert.deepEqual([d.success, d.reason, d.retryAfter], [false, "blocked", 60_000 - t], `+${t}`);
    }
    const read = await login.getRemaining("alice");
    assert.deepEqual([read.remaining, read.reason], [0, "blocked"]);
    clock.now = T0 + 60_000;
    const after = login.limitSync("alice");
    assert.deepEqual([after.success, after.remaining, after.reason], [true, 1, undefined]);
    assert.equal(login.limitSync("bob").success, true, "other ids are not blocked");
    await login.reset("alice");
    assert.equal(login.limitSync("alice").remaining, 1);
  });
});

test("bad configurations are typed errors", () => {
  const bad = [
    [{ limiter: [] }, "INVALID_ARGUMENT"],
    [{ limiter: [Ratelimit.fixedWindow(1, "1 s"), {}] }, "INVALID_ARGUMENT"],
    [{ limiter: [Ratelimit.fixedWindow(1, "1 s"), Ratelimit.fixedWindow(5, "1 s")] }, "INVALID_CONFIG"],
    [{ limiter: Ratelimit.fixedWindow(1, "1 s"), blockFor: "soon" }, "INVALID_DURATION"],
    [{ limiter: Ratelimit.fixedWindow(1, "1 s"), blockFor: 0 }, "INVALID_CONFIG"],
  ];
  for (const [options, code] of bad) {
    assert.throws(
      () => new Ratelimit(options),
      (e) => e instanceof EdgelimitError && e.code === code,
      JSON.stringify(Object.keys(options)),
    );
  }
  const rl = new Ratelimit({ limiter: [Ratelimit.fixedWindow(3, "1 s"), Ratelimit.gcra(9, "1 s")] });
  assert.throws(
    () => rl.limitSync("u", { cost: 4 }),
    (e) => e.code === "COST_EXCEEDS_LIMIT",
  );
  assert.throws(
    () => rl.limitSync("u", { limit: 5 }),
    (e) => e.code === "INVALID_ARGUMENT",
  );
  assert.rejects(rl.refund("u", 1), (e) => e.code === "UNSUPPORTED");
  assert.equal(rl.limitSync("u").remaining, 2, "nothing taken by the failed calls");
});

test("Redis through the gateway decides several limits and blocks exactly as memory", async () => {
  const store = redisStore({ url: stack.gateway.url, token: stack.gateway.token, time: "caller" });
  const prefix = `multi-${Date.now()}`;
  const clock = { now: T0 };
  await atTime(clock, async () => {
    for (const [make, blockFor] of [
      [
        () => [Ratelimit.slidingWindow(3, "2 s"), Ratelimit.tokenBucket(1, "1 s", 4), Ratelimit.slidingLog(6, "1 m")],
        undefined,
      ],
      [() => [Ratelimit.fixedWindow(2, "1 s"), Ratelimit.gcra(5, "10 s")], "3 s"],
      [() => Ratelimit.fixedWindow(2, "5 s"), "2 s"],
    ]) {
      const memory = new Ratelimit({ limiter: make(), blockFor });
      const redis = new Ratelimit({ limiter: make(), blockFor, store, prefix });
      for (let i = 0; i < 30; i++) {
        clock.now += [0, 100, 700, 2_500][i % 4];
        const id = `k${i % 2}`;
        const cost = i % 5 === 0 ? 2 : 1;
        const m = memory.limitSync(id, { cost });
        const r = await redis.limit(id, { cost });
        assert.deepEqual(numbers(r), numbers(m), `call ${i}`);
        assert.deepEqual(each(r), each(m), `call ${i}`);
      }
      assert.deepEqual(await redis.getRemaining("k0"), await memory.getRemaining("k0"));
      await redis.reset("k0");
      await memory.reset("k0");
      assert.deepEqual(numbers(await redis.limit("k0")), numbers(memory.limitSync("k0")));
    }
  });
});

test("a failed Redis answers by the failure policy for every limit", async () => {
  const store = redisStore({ url: "http://127.0.0.1:9", token: "t", retries: 0, timeout: 500 });
  const limiter = [Ratelimit.fixedWindow(5, "1 s"), Ratelimit.gcra(7, "1 s")];
  const open = new Ratelimit({ limiter, store, failure: "open" });
  const result = await open.limit("u");
  assert.deepEqual([result.success, result.reason], [true, "storeFailure"]);
  assert.deepEqual(
    result.limits.map((d) => d.limit),
    [5, 7],
  );
  const strict = new Ratelimit({ limiter, store });
  // Unreachable, or refused by the runtime (Deno blocks port 9).
  await assert.rejects(strict.limit("u"), (e) => ["STORE_UNREACHABLE", "STORE_UNAVAILABLE"].includes(e.code));
});

test("the headers list every policy and what each has left", async () => {
  const limiter = new Ratelimit({ limiter: [Ratelimit.slidingWindow(2, "1 s"), Ratelimit.fixedWindow(50, "1 d")] });
  const handler = withRateLimit(() => new Response("ok"), { limiter, key: () => "client" });
  const request = () => new Request("http://example.com/");
  const ok = await handler(request());
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("RateLimit-Policy"), '"slidingWindow-1s";q=2;w=1, "fixedWindow-86400s";q=50;w=86400');
  assert.match(ok.headers.get("RateLimit"), /^"slidingWindow-1s";r=1;t=\d+, "fixedWindow-86400s";r=49;t=\d+$/);
  await handler(request());
  const limited = await handler(request());
  assert.equal(limited.status, 429);
  assert.match(limited.headers.get("Retry-After"), /^[12]$/);
  assert.match(limited.headers.get("RateLimit"), /^"slidingWindow-1s";r=0;t=[12], "fixedWindow-86400s";r=48;t=\d+$/);
  // Blocked: every policy has nothing left until the block ends.
  const login = new Ratelimit({ limiter: [Ratelimit.fixedWindow(1, "1 m")], blockFor: "5 m" });
  login.limitSync("x");
  const blocked = login.limitSync("x");
  const headers = rateLimitHeaders(login.algorithm, blocked);
  assert.equal(headers.get("Retry-After"), "300");
  assert.equal(headers.get("RateLimit"), '"fixedWindow-60s";r=0;t=300');
});
