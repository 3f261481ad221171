// Quota leases on the Redis store, through the real gateway in front of a
// real redis-server: a steady load costs one request per lease, the limit
// holds across limiters leasing the same id (as isolates would), and
// unspent units come back. A counting proxy sees every request.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startCountingProxy, startGateway, startRedis } from "../../tools/js/testkit.mjs";
import { memoryStore, Ratelimit, redisStore } from "./edgelimit.mjs";

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

const store = () => redisStore({ url: proxy.url, token: gateway.token });
let prefixes = 0;
const prefix = () => `q${process.pid}-${++prefixes}:`;

/** The number of requests `fn` makes. */
async function requestsOf(fn) {
  proxy.take();
  const result = await fn();
  return { result, requests: proxy.take().length };
}

/** Loads the scripts the tests run: what follows needs no EVAL. */
async function warmUp() {
  const s = store();
  for (const limiter of [Ratelimit.fixedWindow(10, "1 h"), Ratelimit.slidingWindow(10, "1 h")]) {
    const rl = new Ratelimit({ limiter, store: s, prefix: prefix(), lease: { units: 2 } });
    await Promise.all([rl.limit("a"), rl.limit("b")]);
    await rl.limit("a");
    await rl.returnLeases();
  }
}

test("a steady load makes one request per lease of units", async () => {
  await warmUp();
  for (const units of [1, 10, 25]) {
    const rl = new Ratelimit({
      limiter: Ratelimit.slidingWindow(1000, "1 h"),
      store: store(),
      prefix: prefix(),
      lease: { units },
    });
    const { result, requests } = await requestsOf(async () => {
      const remaining = [];
      for (let i = 0; i < 100; i++) {
        const r = await rl.limit("user");
        assert.equal(r.success, true);
        remaining.push(r.remaining);
      }
      return remaining;
    });
    assert.equal(requests, Math.ceil(100 / units), `${units} units a lease`);
    // Units held here count as remaining: it goes down by one per call.
    assert.deepEqual(
      result,
      Array.from({ length: 100 }, (_, i) => 999 - i),
    );
  }
});

test("limiters leasing one id never admit more than the limit", async () => {
  const p = prefix();
  const s = store();
  const limiter = Ratelimit.fixedWindow(30, "1 h");
  // Three limiters, as three isolates would each have.
  const isolates = [0, 1, 2].map(() => new Ratelimit({ limiter, store: s, prefix: p, lease: { units: 8 } }));
  let admitted = 0;
  for (let i = 0; i < 120; i++) {
    if ((await isolates[i % 3].limit("shared")).success) admitted++;
  }
  assert.ok(admitted <= 30, `${admitted} admitted`);
  // What the others hold unspent is all that can go unused: 7 units each.
  assert.ok(admitted >= 30 - 2 * 7, `${admitted} admitted`);
  // Calls made together (one turn of the event loop) share the leases.
  const rl = new Ratelimit({ limiter, store: s, prefix: prefix(), lease: { units: 8 } });
  const together = await Promise.all(Array.from({ length: 50 }, () => rl.limit("burst")));
  const ok = together.filter((r) => r.success).length;
  assert.ok(ok <= 30 && ok >= 30 - 7, `${ok} admitted together`);
});

test("returnLeases gives unspent units back in one request", async () => {
  const p = prefix();
  const s = store();
  const limiter = Ratelimit.fixedWindow(100, "1 h");
  const leasing = new Ratelimit({ limiter, store: s, prefix: p, lease: { units: 20 } });
  const plain = new Ratelimit({ limiter, store: s, prefix: p });
  for (const id of ["a", "b", "c"]) {
    assert.equal((await leasing.limit(id)).remaining, 99);
    assert.equal((await plain.getRemaining(id)).remaining, 80);
  }
  const { requests } = await requestsOf(() => leasing.returnLeases());
  assert.equal(requests, 1);
  for (const id of ["a", "b", "c"]) {
    assert.equal((await plain.getRemaining(id)).remaining, 99);
  }
  assert.equal((await requestsOf(() => leasing.returnLeases())).requests, 0);
  // reset forgets the lease with the state.
  await leasing.limit("a");
  await leasing.reset("a");
  assert.equal((await leasing.getRemaining("a")).remaining, 100);
});

test("a lease is refused where it cannot hold or would do nothing", () => {
  const s = store();
  const refused = (limiter, lease, storeOf = s) => {
    try {
      new Ratelimit({ limiter, store: storeOf, lease });
    } catch (error) {
      return error.code;
    }
    return "accepted";
  };
  const window = Ratelimit.fixedWindow(10, "1 m");
  assert.equal(refused(Ratelimit.tokenBucket(1, "1 s", 10), { units: 2 }), "INVALID_CONFIG");
  assert.equal(refused(Ratelimit.gcra(10, "1 m"), { units: 2 }), "INVALID_CONFIG");
  assert.equal(refused(Ratelimit.slidingLog(10, "1 m"), { units: 2 }), "INVALID_CONFIG");
  assert.equal(refused(window, { units: 0 }), "INVALID_CONFIG");
  assert.equal(refused(window, { units: 11 }), "INVALID_CONFIG");
  assert.equal(refused(window, { units: 2.5 }), "INVALID_ARGUMENT");
  assert.equal(refused(window, 5), "INVALID_ARGUMENT");
  assert.equal(refused(window, {}), "INVALID_ARGUMENT");
  assert.equal(refused(window, { units: 2 }, memoryStore()), "INVALID_CONFIG");
  assert.equal(refused(window, { units: 10 }), "accepted");
});
