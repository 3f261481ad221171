// The API on the memory store, with exact values at injected times.
import assert from "node:assert/strict";
import { test } from "node:test";
import { atTime, EdgelimitError, memoryStore, Ratelimit, redisStore, throttle, withRateLimit } from "./edgelimit.mjs";

const T0 = 1_700_000_000_000;

test("fixed window: exact remaining, reset and retryAfter", () =>
  atTime({ now: T0 + 1_000 }, () => {
    const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(3, "10 s") });
    const results = [1, 2, 3, 4].map(() => rl.limitSync("k"));
    assert.deepEqual(
      results.map((r) => [r.success, r.remaining, r.retryAfter]),
      [
        [true, 2, 0],
        [true, 1, 0],
        [true, 0, 0],
        [false, 0, 9_000],
      ],
    );
    assert.equal(results[3].limit, 3);
    assert.equal(results[3].reset, T0 + 10_000, "the window's end");
    assert.equal(results[3].reason, undefined);
  }));

test("sliding window weighs the previous window", async () => {
  const clock = { now: T0 };
  const rl = new Ratelimit({ limiter: Ratelimit.slidingWindow(10, "10 s") });
  await atTime(clock, () => {
    for (let i = 0; i < 10; i++) assert.ok(rl.limitSync("k").success);
    assert.equal(rl.limitSync("k").success, false);
    // A quarter into the next window, 3/4 of the previous 10 still count:
    // ceil(7.5) = 8 used, so 2 more fit.
    clock.now = T0 + 12_500;
    assert.equal(rl.limitSync("k").remaining, 1);
    assert.equal(rl.limitSync("k").remaining, 0);
    assert.equal(rl.limitSync("k").success, false);
  });
});

test("sliding log is exact over any window", async () => {
  const clock = { now: T0 };
  const rl = new Ratelimit({ limiter: Ratelimit.slidingLog(2, "1 s") });
  await atTime(clock, () => {
    assert.ok(rl.limitSync("k").success);
    clock.now += 600;
    assert.ok(rl.limitSync("k").success);
    clock.now += 300;
    const denied = rl.limitSync("k");
    assert.equal(denied.success, false);
    assert.equal(denied.retryAfter, 100, "the first entry leaves the log at T0 + 1000");
    clock.now += 100;
    assert.ok(rl.limitSync("k").success);
  });
});

test("token bucket: refill per interval, initial tokens, cost", async () => {
  const clock = { now: T0 };
  const rl = new Ratelimit({ limiter: Ratelimit.tokenBucket(2, "1 s", 10, { initialTokens: 3 }) });
  await atTime(clock, () => {
    assert.equal(rl.limitSync("k", { cost: 3 }).remaining, 0);
    const denied = rl.limitSync("k", { cost: 2 });
    assert.equal(denied.success, false);
    assert.equal(denied.retryAfter, 1_000);
    clock.now += 1_000;
    assert.equal(rl.limitSync("k", { cost: 2 }).remaining, 0);
  });
});

test("gcra spaces calls evenly after the burst", async () => {
  const clock = { now: T0 };
  const rl = new Ratelimit({ limiter: Ratelimit.gcra(10, "1 s", { burst: 2 }) });
  await atTime(clock, () => {
    assert.ok(rl.limitSync("k").success);
    assert.ok(rl.limitSync("k").success);
    const denied = rl.limitSync("k");
    assert.equal(denied.success, false);
    assert.equal(denied.retryAfter, 100);
    clock.now += 100;
    assert.ok(rl.limitSync("k").success);
  });
});

test("limit, getRemaining and reset agree; getRemaining writes nothing", async () => {
  const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(5, "1 m") });
  assert.equal((await rl.limit("a", { cost: 2 })).remaining, 3);
  assert.equal((await rl.getRemaining("a")).remaining, 3);
  assert.equal((await rl.getRemaining("a")).remaining, 3);
  assert.equal((await rl.limit("a", { cost: 0 })).remaining, 3, "cost 0 only reads");
  await rl.reset("a");
  assert.deepEqual(Object.keys(await rl.getRemaining("a")).sort(), ["limit", "remaining", "reset"]);
  assert.equal((await rl.getRemaining("a")).remaining, 5);
});

test("ids of any length and script; prefixes and stores keep limiters apart", () => {
  const store = memoryStore();
  const a = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 m"), store, prefix: "a:" });
  const b = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 m"), store, prefix: "b:" });
  for (const id of ["", "x", "ünï©ødé ✓", "🦀".repeat(256), "k".repeat(1024)]) {
    assert.ok(a.limitSync(id).success, `first call for a ${id.length}-char id`);
    assert.equal(a.limitSync(id).success, false);
    assert.ok(b.limitSync(id).success, "another prefix counts apart");
  }
  // Two ids that differ only after a long common part stay apart.
  const long = "p".repeat(1_000);
  assert.ok(a.limitSync(`${long}1`).success);
  assert.ok(a.limitSync(`${long}2`).success);
  // Longer than 1024 bytes: refused, unless the limiter says otherwise.
  for (const id of ["🦀".repeat(257), "k".repeat(1025), "é".repeat(513)]) {
    assert.throws(() => a.limitSync(id), { code: "INVALID_ARGUMENT" });
  }
  const roomy = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 m"), store, maxIdBytes: 100_000 });
  assert.ok(roomy.limitSync("k".repeat(100_000)).success);
  assert.equal(roomy.limitSync("k".repeat(100_000)).success, false);
  assert.throws(() => new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 m"), maxIdBytes: 0 }), {
    code: "INVALID_CONFIG",
  });
});

test("no input traps the module; after any error every limiter keeps working", async () => {
  const store = memoryStore({ maxKeys: 1_000, maxBytes: 1 << 20 });
  const limiters = [
    new Ratelimit({ limiter: Ratelimit.fixedWindow(5, "1 m"), store, prefix: "fw:" }),
    new Ratelimit({ limiter: Ratelimit.slidingLog(1_000, "1 m"), store, prefix: "log:" }),
    new Ratelimit({ limiter: Ratelimit.tokenBucket(1, "1 s", 5), store, prefix: "tb:" }),
  ];
  const huge = "x".repeat(10_000_000);
  const hostile = [
    huge,
    `${huge}é`,
    "\ud800",
    "a\u0000b",
    "\udfff\ud800".repeat(200),
    42,
    null,
    undefined,
    {},
    Symbol("id"),
    10n,
  ];
  const costs = [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 1e308, -0, "1", null, 10n, 6];
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  for (let i = 0; i < 3_000; i++) {
    const rl = limiters[i % limiters.length];
    const id = i % 3 === 0 ? hostile[random() % hostile.length] : `id-${random() % 5_000}`.repeat(1 + (random() % 60));
    const options = i % 4 === 0 ? { cost: costs[random() % costs.length] } : undefined;
    try {
      rl.limitSync(id, options);
    } catch (error) {
      assert.ok(error instanceof EdgelimitError, `${error}`);
      assert.notEqual(error.name, "RuntimeError");
    }
    await rl.getRemaining(id).catch((error) => assert.ok(error instanceof EdgelimitError, `${error}`));
  }
  for (const [i, rl] of limiters.entries()) {
    assert.ok(rl.limitSync(`after-${i}`).success, "normal decisions still work");
    assert.equal(rl.limitSync(`after-${i}`, { cost: 2 }).remaining, i === 1 ? 997 : 2);
  }
  // maxKeys past what 32-bit WebAssembly addresses: refused, not wrapped to nothing.
  assert.throws(() => memoryStore({ maxKeys: 2 ** 32 }), { code: "INVALID_CONFIG" });
  assert.throws(() => memoryStore({ maxKeys: 0 }), { code: "INVALID_CONFIG" });
  assert.throws(() => memoryStore({ maxBytes: 0 }), { code: "INVALID_CONFIG" });
  assert.throws(() => memoryStore({ maxBytes: -1 }), { code: "INVALID_ARGUMENT" });
});

test("maxKeys bounds memory: no more keys are remembered than allowed", async () => {
  const store = memoryStore({ maxKeys: 64 });
  const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 h"), store });
  for (let i = 0; i < 5_000; i++) assert.ok(rl.limitSync(`id-${i}`).success);
  // A remembered key has no units left; a forgotten one is full again.
  let remembered = 0;
  for (let i = 0; i < 5_000; i++) {
    if ((await rl.getRemaining(`id-${i}`)).remaining === 0) remembered++;
  }
  assert.ok(remembered > 0 && remembered <= 64, `${remembered} keys remembered`);
});

test("bad input is a typed error and changes nothing", () => {
  const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(3, "1 m") });
  const cases = [
    [() => Ratelimit.fixedWindow(0, "1 s"), "INVALID_CONFIG"],
    [() => Ratelimit.slidingWindow(5, "0 s"), "INVALID_CONFIG"],
    [() => Ratelimit.fixedWindow(5, "ten seconds"), "INVALID_DURATION"],
    [() => Ratelimit.fixedWindow(5, 1.5), "INVALID_ARGUMENT"],
    [() => Ratelimit.fixedWindow("5", "1 s"), "INVALID_ARGUMENT"],
    [() => Ratelimit.tokenBucket(1, "1 s", 5, { initialTokens: 6 }), "INVALID_CONFIG"],
    [() => Ratelimit.gcra(10, "1 s", { burst: -1 }), "INVALID_ARGUMENT"],
    [() => new Ratelimit({}), "INVALID_ARGUMENT"],
    [() => new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 s"), failure: "maybe" }), "INVALID_ARGUMENT"],
    [() => rl.limitSync(42), "INVALID_ARGUMENT"],
    [() => rl.limitSync("k", { cost: -1 }), "INVALID_ARGUMENT"],
    [() => rl.limitSync("k", { cost: NaN }), "INVALID_ARGUMENT"],
    [() => rl.limitSync("k", { cost: 4 }), "COST_EXCEEDS_LIMIT"],
    [() => rl.limitSync("k", null), "INVALID_ARGUMENT"],
    [() => rl.limitSync("k", 3), "INVALID_ARGUMENT"],
  ];
  for (const [call, code] of cases) {
    assert.throws(call, (error) => {
      assert.ok(error instanceof EdgelimitError, `${error}`);
      assert.ok(error instanceof Error);
      assert.equal(error.name, "EdgelimitError");
      assert.equal(error.code, code, error.message);
      assert.ok(error.message.length > 10);
      return true;
    });
  }
  assert.equal(rl.limitSync("k").remaining, 2, "nothing was consumed by the failed calls");
  assert.equal(new EdgelimitError("UNSUPPORTED", "x").code, "UNSUPPORTED");
  assert.equal(new Error("plain") instanceof EdgelimitError, false);
});

test("async forms reject instead of throwing", async () => {
  const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(3, "1 m") });
  await assert.rejects(rl.limit("k", { cost: 9 }), { code: "COST_EXCEEDS_LIMIT" });
  await assert.rejects(rl.limit(7), { code: "INVALID_ARGUMENT" });
  await assert.rejects(rl.limit("k", { cost: -1 }), { code: "INVALID_ARGUMENT" });
  await assert.rejects(rl.limit("k", null), { code: "INVALID_ARGUMENT" });
  await assert.rejects(rl.getRemaining(7), { code: "INVALID_ARGUMENT" });
  assert.equal((await rl.limit("k")).remaining, 2, "nothing was consumed by the failed calls");
});

test("options are checked by name: a typo is an error, never a silent default", async () => {
  const limiter = Ratelimit.fixedWindow(5, "1 m");
  const rl = new Ratelimit({ limiter });
  const unknown = (name) => (error) => {
    assert.ok(error instanceof EdgelimitError, `${error}`);
    assert.equal(error.code, "INVALID_CONFIG");
    assert.ok(error.message.includes(`"${name}"`), error.message);
    return true;
  };
  assert.throws(() => new Ratelimit({ limiter, limt: 5 }), unknown("limt"));
  assert.throws(
    () => new Ratelimit({ limiter, enableProtection: true }),
    (error) => {
      assert.match(error.message, /accessList/);
      return unknown("enableProtection")(error);
    },
  );
  assert.throws(
    () => new Ratelimit({ limiter, dynamicLimits: true }),
    (error) => {
      assert.match(error.message, /limit\(id, \{ limit \}\)/);
      return unknown("dynamicLimits")(error);
    },
  );
  assert.throws(() => memoryStore({ max: 3 }), unknown("max"));
  assert.throws(
    () => redisStore({ url: "http://127.0.0.1:1", token: "t", automaticDeserialization: false }),
    (e) => unknown("automaticDeserialization")(e),
  );
  assert.throws(() => redisStore({ url: "http://127.0.0.1:1", token: "t", batch: { maxCall: 5 } }), unknown("maxCall"));
  assert.throws(() => Ratelimit.gcra(10, "1 s", { bursts: 2 }), unknown("bursts"));
  assert.throws(() => Ratelimit.tokenBucket(1, "1 s", 5, { initial: 1 }), unknown("initial"));
  assert.throws(() => rl.limitSync("k", { weight: 2 }), unknown("weight"));
  await assert.rejects(rl.limit("k", { weight: 2 }), unknown("weight"));
  await assert.rejects(rl.blockUntilReady("k", 10, { costs: 2 }), unknown("costs"));
  assert.throws(() => throttle(() => 1, rl, { keys: "x" }), unknown("keys"));
  assert.throws(
    () => withRateLimit(() => new Response(""), { limiter: rl, key: () => "k", keyFn: 1 }),
    unknown("keyFn"),
  );
  assert.throws(
    () => new Ratelimit({ limiter, lease: { unit: 2 } }),
    (error) => error instanceof EdgelimitError,
  );
  // Not objects at all: typed errors, not TypeErrors.
  for (const call of [
    () => new Ratelimit(null),
    () => new Ratelimit(5),
    () => memoryStore(null),
    () => redisStore(null),
    () => throttle(() => 1, rl, null),
    () => withRateLimit(() => new Response(""), null),
    () => new Ratelimit({ limiter, failure: 10n }),
    () => new Ratelimit({ limiter, failure: Symbol("open") }),
    () => rl.limitSync("k", []),
  ]) {
    assert.throws(call, (error) => error instanceof EdgelimitError && error.code === "INVALID_ARGUMENT");
  }
  // @upstash/ratelimit's `rate` is the cost of the call.
  assert.equal(rl.limitSync("k", { rate: 3 }).remaining, 2);
  assert.equal(rl.limitSync("k").remaining, 1, "nothing else was consumed by the failed calls");
});

// A million decisions: seconds on a busy machine, past Bun's default 5 s.
test("a flood of fresh ids never frees a limited one", { timeout: 120_000 }, () => {
  for (const [name, algorithm] of [
    ["fixed window", Ratelimit.fixedWindow(10, "1 h")],
    ["sliding window", Ratelimit.slidingWindow(10, "1 h")],
    ["token bucket", Ratelimit.tokenBucket(1, "1 h", 10)],
  ]) {
    const rl = new Ratelimit({ limiter: algorithm, store: memoryStore({ maxKeys: 10_000 }) });
    const fresh = name === "fixed window" ? 1_000_000 : 200_000;
    let admitted = 0;
    for (let i = 0; i < fresh; i++) {
      if (i % 100 === 0 && rl.limitSync("hot").success) admitted++;
      rl.limitSync(`fresh-${i}`);
    }
    assert.equal(admitted, 10, `${name}: the hot id admitted over its limit`);
  }
});

test("token bucket: a slow caller of a cold bucket is admitted, as retryAfter says", async () => {
  const clock = { now: 1_700_000_000_000 };
  const rl = new Ratelimit({ limiter: Ratelimit.tokenBucket(5, "60 s", 10, { initialTokens: 0 }) });
  await atTime(clock, async () => {
    const first = rl.limitSync("slow");
    assert.equal(first.success, false);
    assert.equal(first.retryAfter, 60_000);
    for (let i = 0; i < 5; i++) {
      clock.now += 120_000;
      assert.ok(rl.limitSync("slow").success, `call ${i + 2}, 2 minutes after the last`);
    }
  });
});

test("Concurrency: options by name, ids bounded, prefixes without braces", async () => {
  const { Concurrency } = await import("./edgelimit.mjs");
  assert.throws(() => new Concurrency({ max: 1, leaseTtl: "1 m", maxx: 2 }), { code: "INVALID_CONFIG" });
  assert.throws(() => new Concurrency(null), { code: "INVALID_ARGUMENT" });
  assert.throws(() => new Concurrency({ max: 1, leaseTtl: "1 m", prefix: "{x}" }), { code: "INVALID_CONFIG" });
  const jobs = new Concurrency({ max: 1, leaseTtl: "1 m" });
  await assert.rejects(jobs.acquire("t", { timout: 5 }), { code: "INVALID_CONFIG" });
  await assert.rejects(jobs.acquire("x".repeat(1025)), { code: "INVALID_ARGUMENT" });
  const roomy = new Concurrency({ max: 1, leaseTtl: "1 m", maxIdBytes: 4096 });
  assert.ok((await roomy.acquire("x".repeat(4000))).acquired);
  assert.ok((await jobs.acquire("t")).acquired, "still working after the errors");
});
