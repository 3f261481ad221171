// Fewer round trips on the Redis store, through the real gateway in front
// of a real redis-server: calls made together share one request (each with
// its own result or error, NOSCRIPT recovery and timeout), and the deny
// cache answers a blocked id without a request, exactly as Redis would. A
// counting proxy between the store and the gateway sees every request,
// whichever way the runtime makes it (node:http in Node, fetch in Deno).
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, test } from "node:test";
import { startCountingProxy, startGateway, startRedis } from "../../tools/js/testkit.mjs";
import { callAt, Ratelimit, redisStore } from "./edgelimit.mjs";

let redis;
let gateway;
let proxy;
before(async () => {
  redis = await startRedis();
  gateway = await startGateway(redis.port);
  proxy = await startCountingProxy(gateway.url);
});
after(async () => {
  await proxy?.stop();
  await gateway?.stop();
  await redis?.stop();
});

const store = (options = {}) => redisStore({ url: proxy.url, token: gateway.token, ...options });
let prefixes = 0;
const prefix = () => `b${process.pid}-${++prefixes}:`;

/** The requests `fn` makes, as the proxy saw them (path and body). */
async function requestsOf(fn) {
  proxy.take();
  const result = await fn();
  return { result, seen: proxy.take() };
}

/** Loads the scripts a batch and a lone call use: what follows needs no EVAL. */
async function warmUp(rl) {
  await Promise.all([rl.limit("warm-up"), rl.limit("warm-up")]);
  await rl.limit("warm-up");
}

for (const grouping of ["script", "pipeline"]) {
  test(`calls made together share one request in call order (grouping: ${grouping})`, async () => {
    const s = store({ batch: { grouping } });
    const rl = new Ratelimit({ limiter: Ratelimit.gcra(4, "1 m"), store: s, prefix: prefix() });
    await warmUp(rl);
    const { result, seen } = await requestsOf(() => Promise.all(Array.from({ length: 10 }, () => rl.limit("k"))));
    assert.deepEqual(
      result.map((r) => r.success),
      [true, true, true, true, false, false, false, false, false, false],
    );
    assert.deepEqual(
      result.slice(0, 4).map((r) => r.remaining),
      [3, 2, 1, 0],
    );
    assert.equal(seen.length, 1);
    if (grouping === "script") {
      // One command: a call of the batch script carrying the ten.
      const [verb, , count] = JSON.parse(seen[0].body);
      assert.deepEqual([seen[0].path, verb, count], ["/", "EVALSHA", "10"]);
    } else {
      assert.equal(seen[0].path, "/pipeline");
      assert.equal(JSON.parse(seen[0].body).length, 10);
    }
  });
}

test("each call of a batch gets its own result or error", async () => {
  const p = prefix();
  const rl = new Ratelimit({ limiter: Ratelimit.tokenBucket(1, "1 s", 3), store: store(), prefix: p });
  await warmUp(rl);
  // A key of the wrong type: its script fails with a Redis error.
  await redis.command("SET", `${p}tb:1000:{broken}`, "x");
  const { result, seen } = await requestsOf(() =>
    Promise.allSettled([rl.limit("a"), rl.limit("broken"), rl.limit("b")]),
  );
  assert.equal(result[0].value.remaining, 2);
  assert.equal(result[1].status, "rejected");
  assert.equal(result[1].reason.code, "STORE_COMMAND");
  assert.match(result[1].reason.message, /WRONGTYPE/);
  assert.equal(result[2].value.remaining, 2);
  assert.equal(seen.length, 1, "one request for the three");
  assert.equal((await rl.limit("a")).remaining, 1, "the store keeps working");
});

for (const grouping of ["script", "pipeline"]) {
  test(`NOSCRIPT in a batch sends the missing code once (grouping: ${grouping})`, async () => {
    const s = store({ batch: { grouping } });
    const gcra = new Ratelimit({ limiter: Ratelimit.gcra(10, "1 s"), store: s, prefix: prefix() });
    const bucket = new Ratelimit({ limiter: Ratelimit.tokenBucket(1, "1 s", 10), store: s, prefix: prefix() });
    assert.equal(await redis.command("SCRIPT", "FLUSH"), "OK");
    await gcra.limit("warm-up"); // only this script is cached again
    const { result, seen } = await requestsOf(() => Promise.all([gcra.limit("x"), bucket.limit("x"), gcra.limit("y")]));
    assert.deepEqual(
      result.map((r) => r.remaining),
      [9, 9, 9],
    );
    assert.equal(seen.length, 2);
    if (grouping === "script") {
      // The batch script was not cached: the batch goes again with its code.
      assert.equal(JSON.parse(seen[0].body)[0], "EVALSHA");
      assert.match(JSON.parse(seen[1].body)[1], /^-- edgelimit batch\n/);
    } else {
      // Only the bucket's script was missing: that call alone goes again.
      assert.equal(JSON.parse(seen[0].body).filter((c) => c[0] === "EVALSHA").length, 3);
      assert.equal(seen[1].path, "/");
      assert.match(JSON.parse(seen[1].body)[1], /^-- edgelimit token_bucket\n/);
    }
  });
}

test("a batch that times out fails its consuming calls at once and retries its reads", async () => {
  const sockets = [];
  const silent = createServer((socket) => sockets.push(socket));
  await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
  try {
    const url = `http://127.0.0.1:${silent.address().port}`;
    const rl = new Ratelimit({
      limiter: Ratelimit.fixedWindow(3, "1 m"),
      store: redisStore({ url, token: "t" }),
      timeout: 150,
    });
    const started = Date.now();
    const took = (promise) =>
      promise.then(
        () => assert.fail("a silent server cannot answer"),
        (error) => ({ code: error.code, ms: Date.now() - started }),
      );
    const [a, b, read] = await Promise.all([took(rl.limit("a")), took(rl.limit("b")), took(rl.getRemaining("c"))]);
    for (const outcome of [a, b, read]) assert.equal(outcome.code, "STORE_TIMEOUT");
    // One timeout for both consuming calls (they may have been applied);
    // the read was tried three times.
    assert.ok(a.ms >= 150 && a.ms < 1_000 && Math.abs(a.ms - b.ms) < 100, `${a.ms}, ${b.ms}`);
    assert.ok(read.ms >= 450 && read.ms < 3_000, `${read.ms}`);
  } finally {
    for (const socket of sockets) socket.destroy();
    silent.close();
  }
});

test("batch: false sends one request per call", async () => {
  const rl = new Ratelimit({ limiter: Ratelimit.gcra(10, "1 m"), store: store({ batch: false }), prefix: prefix() });
  await rl.limit("warm-up");
  const { seen } = await requestsOf(() => Promise.all(Array.from({ length: 5 }, () => rl.limit("k"))));
  assert.deepEqual(
    seen.map((s) => s.path),
    ["/", "/", "/", "/", "/"],
  );
});

test("a blocked id hammered 10 000 times costs a handful of requests", async () => {
  for (const [name, make] of Object.entries({
    fixedWindow: () => Ratelimit.fixedWindow(3, "1 h"),
    slidingWindow: () => Ratelimit.slidingWindow(3, "1 h"),
    slidingLog: () => Ratelimit.slidingLog(3, "1 h"),
    tokenBucket: () => Ratelimit.tokenBucket(1, "1 h", 3),
    gcra: () => Ratelimit.gcra(3, "1 h"),
  })) {
    const rl = new Ratelimit({ limiter: make(), store: store(), prefix: prefix() });
    await rl.limit("warm-up");
    const { result, seen } = await requestsOf(async () => {
      const outcomes = [];
      for (let i = 0; i < 10_003; i++) outcomes.push(await rl.limit("hot"));
      return outcomes;
    });
    assert.equal(result.filter((r) => r.success).length, 3, name);
    const first = result[3];
    assert.ok(
      result.slice(3).every((r) => !r.success && r.retryAfter <= first.retryAfter),
      name,
    );
    assert.equal(seen.length, 4, `${name}: 3 admissions and the first denial`);
  }
});

test("the deny cache changes no decision", async () => {
  for (const [name, make] of Object.entries({
    fixedWindow: () => Ratelimit.fixedWindow(3, "700 ms"),
    slidingWindow: () => Ratelimit.slidingWindow(3, "700 ms"),
    slidingLog: () => Ratelimit.slidingLog(3, "700 ms"),
    tokenBucket: () => Ratelimit.tokenBucket(1, "300 ms", 3),
    gcra: () => Ratelimit.gcra(3, "700 ms"),
  })) {
    const clock = { now: 1_700_000_000_000 };
    let seed = name.length * 7919;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const cached = new Ratelimit({ limiter: make(), store: store({ time: "caller" }), prefix: prefix() });
    const plain = new Ratelimit({ limiter: make(), store: store({ time: "caller", denyCache: 0 }), prefix: prefix() });
    let saved = 0;
    // The clock is the limiters' alone: the counting proxy runs in this
    // process and keeps real time.
    for (let step = 0; step < 300; step++) {
      clock.now += Math.floor(next() * 120) - (next() < 0.05 ? 150 : 0);
      const id = `user-${Math.floor(next() * 2)}`;
      const cost = next() < 0.7 ? 1 : Math.floor(next() * 4);
      const c = await requestsOf(() => callAt(clock, () => cached.limit(id, { cost })));
      const p = await requestsOf(() => callAt(clock, () => plain.limit(id, { cost })));
      delete c.result.pending;
      delete p.result.pending;
      assert.deepEqual(c.result, p.result, `${name}: limit(${id}, ${cost}) at step ${step}`);
      saved += p.seen.length - c.seen.length;
      if (step % 50 === 49) {
        await cached.reset(id);
        await plain.reset(id);
      }
    }
    assert.ok(saved > 20, `${name}: ${saved} requests saved`);
  }
});
