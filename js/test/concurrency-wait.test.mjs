// A waiting acquire is woken by a release (issue: it gave up at once when
// the soonest expiry was past its deadline): on the memory store, and on
// the Redis store through the real gateway (in this isolate at once, from
// another isolate at the next poll).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { stackForTests } from "../../tools/js/testkit.mjs";
import { Concurrency, memoryStore, redisStore } from "./edgelimit.mjs";

const stack = stackForTests({ before, after });

const redisOf = () => redisStore({ url: stack.gateway.url, token: stack.gateway.token });

for (const [name, store] of [
  ["memory", () => memoryStore()],
  ["redis", redisOf],
]) {
  test(`${name}: a release wakes a waiter long before the lease would expire`, async () => {
    const jobs = new Concurrency({ max: 1, leaseTtl: "30 s", store: store(), prefix: `w${process.pid}${name}:` });
    const a = await jobs.acquire("t");
    assert.equal(a.acquired, true);
    let releasedAt;
    setTimeout(() => {
      releasedAt = performance.now();
      a.release();
    }, 100);
    const started = Date.now();
    const b = await jobs.acquire("t", { timeout: 3_000 });
    const waited = Date.now() - started;
    const afterRelease = performance.now() - releasedAt;
    assert.equal(b.acquired, true);
    assert.ok(waited >= 90 && waited < 1_000, `acquired after ${waited} ms`);
    console.log(`${name}: granted ${afterRelease.toFixed(1)} ms after the release`);
    await b.release();
  });
}

test("redis: a release by another isolate is seen at the next poll", async () => {
  const prefix = `w${process.pid}x:`;
  const here = new Concurrency({ max: 1, leaseTtl: "30 s", store: redisOf(), prefix });
  const there = new Concurrency({ max: 1, leaseTtl: "30 s", store: redisOf(), prefix });
  const held = await there.acquire("t");
  setTimeout(() => held.release(), 100);
  const started = Date.now();
  const got = await here.acquire("t", { timeout: 3_000 });
  const waited = Date.now() - started;
  assert.equal(got.acquired, true);
  assert.ok(waited >= 90 && waited < 600, `acquired after ${waited} ms`);
});

test("waiters are woken in arrival order and give up at their deadline", async () => {
  const jobs = new Concurrency({ max: 1, leaseTtl: "30 s", store: memoryStore() });
  const first = await jobs.acquire("q");
  const order = [];
  const waiters = [1, 2, 3].map((n) =>
    jobs.acquire("q", { timeout: 2_000 }).then((p) => {
      order.push(n);
      return p;
    }),
  );
  const late = jobs.acquire("q", { timeout: 50 });
  assert.equal((await late).acquired, false, "nothing was released within 50 ms");
  let held = first;
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 20));
    await held.release();
    held = await waiters[i];
    assert.equal(held.acquired, true);
  }
  await held.release();
  assert.deepEqual(order, [1, 2, 3]);
});

test("an aborted waiter leaves the queue", async () => {
  const jobs = new Concurrency({ max: 1, leaseTtl: "30 s", store: memoryStore() });
  const held = await jobs.acquire("z");
  const controller = new AbortController();
  const waiting = jobs.acquire("z", { timeout: 2_000, signal: controller.signal });
  setTimeout(() => controller.abort(new Error("stop")), 30);
  await assert.rejects(waiting, { message: "stop" });
  const next = jobs.acquire("z", { timeout: 2_000 });
  await held.release();
  assert.equal((await next).acquired, true);
});

test("redis: only the first waiter polls; the queue is served in turn when slots free up", async () => {
  const { CoreConcurrency } = await import(new URL("../../pkg/edgelimit.js", import.meta.url).href);
  const calls = { n: 0 };
  const restCall = CoreConcurrency.prototype.restCall;
  CoreConcurrency.prototype.restCall = function (...args) {
    calls.n += 1;
    return restCall.apply(this, args);
  };
  try {
    const jobs = new Concurrency({ max: 2, leaseTtl: "30 s", store: redisOf(), prefix: `w${process.pid}q:` });
    const held = [await jobs.acquire("t"), await jobs.acquire("t")];
    const waiters = Array.from({ length: 300 }, () =>
      jobs.acquire("t", { timeout: 20_000 }).then(async (permit) => {
        assert.equal(permit.acquired, true);
        await permit.release();
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 300)); // every waiter tried once
    const before = calls.n;
    await new Promise((resolve) => setTimeout(resolve, 600));
    const polls = calls.n - before;
    // The first waiter polls every 100-200 ms; 300 waiters polling would be ~1,000.
    assert.ok(polls <= 12, `${polls} requests while every slot was held`);
    for (const permit of held) await permit.release();
    await Promise.all(waiters);
    assert.deepEqual(await jobs.getRemaining("t"), { remaining: 2, limit: 2 });
  } finally {
    CoreConcurrency.prototype.restCall = restCall;
  }
});

test("memory: a reset wakes every waiter", async () => {
  const jobs = new Concurrency({ max: 2, leaseTtl: "30 s", store: memoryStore() });
  await jobs.acquire("r");
  await jobs.acquire("r");
  const waiting = [jobs.acquire("r", { timeout: 5_000 }), jobs.acquire("r", { timeout: 5_000 })];
  await new Promise((resolve) => setTimeout(resolve, 20));
  const started = Date.now();
  await jobs.reset("r");
  const permits = await Promise.all(waiting);
  assert.deepEqual(
    permits.map((p) => p.acquired),
    [true, true],
  );
  assert.ok(Date.now() - started < 1_000, "woken, not timed out");
});

test("redis: an acquire whose answer never came releases the lease the store granted", async () => {
  const { createServer } = await import("node:http");
  let requests = 0;
  // In front of the gateway: forwards every request, and answers all but the first.
  const proxy = createServer(async (request, response) => {
    const chunks = [];
    for await (const chunk of request) chunks.push(chunk);
    const forwarded = await fetch(`${stack.gateway.url}${request.url}`, {
      method: "POST",
      headers: { authorization: request.headers.authorization, "content-type": "application/json" },
      body: Buffer.concat(chunks),
    });
    const text = await forwarded.text();
    if (++requests === 1) return; // the lease is taken, the answer lost
    response.writeHead(forwarded.status, { "content-type": "application/json" });
    response.end(text);
  });
  await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  try {
    const prefix = `w${process.pid}lost:`;
    const direct = new Concurrency({ max: 1, leaseTtl: "1 m", store: redisOf(), prefix });
    // The script loaded first: the lost request is the acquire itself.
    await (await direct.acquire("warm")).release();
    const url = `http://127.0.0.1:${proxy.address().port}`;
    const jobs = new Concurrency({
      max: 1,
      leaseTtl: "1 m",
      store: redisStore({ url, token: stack.gateway.token, retries: 0 }),
      prefix,
      timeout: 200,
    });
    await assert.rejects(jobs.acquire("t"), { code: "STORE_TIMEOUT" });
    assert.equal(requests >= 1, true);
    const deadline = Date.now() + 3_000;
    while ((await direct.getRemaining("t")).remaining !== 1) {
      assert.ok(Date.now() < deadline, "the granted lease was never released");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    proxy.closeAllConnections?.();
    proxy.close();
  }
});
