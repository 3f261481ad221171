// Fair waiting: on Redis (through the real gateway), the waiters of two
// isolates (two limiters, each with its own store and queue) acquire in
// arrival order; an acquire without a timeout takes no slot a waiter is
// owed unless `fair: false`; a waiter granted as it is aborted gives the
// slot back.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { stackForTests, startCountingProxy, startGateway } from "../../tools/js/testkit.mjs";
import { Concurrency, memoryStore, redisStore } from "./edgelimit.mjs";

const stack = stackForTests({ before, after });

const isolate = (prefix, options = {}, url = stack.gateway.url) =>
  new Concurrency({
    max: 1,
    leaseTtl: "30 s",
    store: redisStore({ url, token: stack.gateway.token }),
    prefix,
    ...options,
  });

/** A field of a semaphore's hash, read through the gateway. */
async function field(key, name) {
  const response = await fetch(stack.gateway.url, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.gateway.token}` },
    body: JSON.stringify(["HGET", key, name]),
  });
  return (await response.json()).result;
}

/** Until `key`'s queue has handed out `n` numbers: the nth waiter has its place. */
async function untilNumbered(key, n) {
  const deadline = Date.now() + 10_000;
  while (Number(await field(key, "n")) !== n) {
    assert.ok(Date.now() < deadline, `waiter ${n} never queued`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test("redis: waiters of two isolates acquire in arrival order", async () => {
  const prefix = `f${process.pid}:`;
  const isolates = [isolate(prefix), isolate(prefix)];
  const held = await isolates[0].acquire("t");
  assert.equal(held.acquired, true);
  const order = [];
  // Arrivals alternate between the isolates: a0, b1, a2, b3.
  const waiters = [];
  for (let n = 0; n < 4; n++) {
    waiters.push(
      isolates[n % 2].acquire("t", { timeout: 20_000 }).then(async (permit) => {
        assert.equal(permit.acquired, true);
        order.push(n);
        // Held a while: the other isolate's next waiter polls meanwhile, and
        // this one's is woken at the release, both wanting the slot.
        await new Promise((resolve) => setTimeout(resolve, 150));
        await permit.release();
      }),
    );
    await untilNumbered(`${prefix}sem:{t}`, n + 1);
  }
  await held.release();
  await Promise.all(waiters);
  assert.deepEqual(order, [0, 1, 2, 3]);
  assert.equal(await field(`${prefix}sem:{t}`, "n"), null, "nothing left behind");
});

test("redis: an acquire without a timeout queues behind waiters, unless fair: false", async () => {
  const prefix = `p${process.pid}:`;
  const here = isolate(prefix);
  const there = isolate(prefix);
  const held = await here.acquire("t");
  const waiting = there.acquire("t", { timeout: 20_000 });
  await untilNumbered(`${prefix}sem:{t}`, 1);
  // Released by `here`, whose own try comes before the other isolate's next
  // poll: the slot is the waiter's all the same.
  await held.release();
  assert.equal((await here.acquire("t")).acquired, false, "fair by default");
  const unfair = isolate(prefix, { fair: false });
  const barged = await unfair.acquire("t");
  assert.equal(barged.acquired, true, "fair: false takes the free slot");
  await barged.release();
  const permit = await waiting;
  assert.equal(permit.acquired, true);
  await permit.release();
  assert.throws(() => isolate(prefix, { fair: "yes" }), { code: "INVALID_ARGUMENT" });
});

test("redis: a waiter out of time takes its place out of the queue", async () => {
  const prefix = `l${process.pid}:`;
  const here = isolate(prefix);
  const held = await here.acquire("t");
  const denied = await isolate(prefix).acquire("t", { timeout: 300 });
  assert.equal(denied.acquired, false);
  // The leave is sent as the waiter gives up (a lapsed ticket would stay
  // in the hash until the next call on the key).
  const deadline = Date.now() + 5_000;
  for (;;) {
    const response = await fetch(stack.gateway.url, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.gateway.token}` },
      body: JSON.stringify(["HKEYS", `${prefix}sem:{t}`]),
    });
    const { result } = await response.json();
    if (!result.some((name) => name.startsWith("t"))) break;
    assert.ok(Date.now() < deadline, `the ticket stayed: ${result}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await held.release();
  assert.equal((await here.acquire("t")).acquired, true);
});

for (const [name, store] of [
  ["memory", () => memoryStore()],
  ["redis", () => redisStore({ url: stack.gateway.url, token: stack.gateway.token })],
]) {
  test(`${name}: a waiter granted as it is aborted gives the slot back`, async () => {
    const jobs = new Concurrency({ max: 1, leaseTtl: "30 s", store: store(), prefix: `a${process.pid}${name}:` });
    const controller = new AbortController();
    // The slot is free: the try is granted, its answer arriving after the abort.
    const acquiring = jobs.acquire("t", { timeout: 2_000, signal: controller.signal });
    controller.abort(new Error("stop"));
    await assert.rejects(acquiring, { message: "stop" });
    assert.deepEqual(await jobs.getRemaining("t"), { remaining: 1, limit: 1 });
    const next = await jobs.acquire("t");
    assert.equal(next.acquired, true, "not leaked");
    await next.release();
  });
}

test("redis: a dead holder's slot goes to a waiter elsewhere when its lease ends", async () => {
  const prefix = `d${process.pid}:`;
  // The holder takes a 1 s lease and dies: it never releases it.
  const held = await isolate(prefix).acquire("t", { leaseTtl: "1 s" });
  assert.equal(held.acquired, true);
  const permit = await isolate(prefix).acquire("t", { timeout: 10_000 });
  assert.equal(permit.acquired, true);
  // Granted on Redis's clock at expiresAt - leaseTtl.
  const grantedAt = permit.expiresAt - 30_000;
  assert.ok(grantedAt >= held.expiresAt, `granted at ${grantedAt}, before ${held.expiresAt}`);
  // The first waiter polls every 100-200 ms: a generous margin, far below the timeout.
  assert.ok(grantedAt - held.expiresAt < 2_000, `granted ${grantedAt - held.expiresAt} ms late`);
  await permit.release();
});

test("redis: waiting costs each isolate its first waiter's polls, however many wait", async () => {
  const proxy = await startCountingProxy(stack.gateway.url);
  try {
    const prefix = `c${process.pid}:`;
    const isolates = [isolate(prefix, {}, proxy.url), isolate(prefix, {}, proxy.url)];
    const held = await isolates[0].acquire("t");
    const perIsolate = 50;
    const waiters = Array.from({ length: 2 * perIsolate }, (_, n) =>
      isolates[n % 2].acquire("t", { timeout: 60_000 }).then((permit) => {
        assert.equal(permit.acquired, true);
        return permit.release();
      }),
    );
    await untilNumbered(`${prefix}sem:{t}`, 2 * perIsolate);
    proxy.take();
    const started = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const requests = proxy.take().length;
    const perSecond = requests / ((Date.now() - started) / 1_000) / 2;
    console.log(
      `${perIsolate} waiters in each of 2 isolates: ${perSecond.toFixed(1)} Redis requests a second per isolate, ` +
        `${(perSecond / perIsolate).toFixed(3)} per waiter`,
    );
    // One poll every 100-200 ms per isolate: at most 10 a second (a poll per
    // waiter would be 500 a second per isolate).
    assert.ok(perSecond <= 15, `${perSecond} requests a second per isolate`);
    await held.release();
    await Promise.all(waiters);
  } finally {
    await proxy.stop();
  }
});

test("redis: a wait goes on through a store outage until its slot comes", async () => {
  const prefix = `o${process.pid}:`;
  const own = await startGateway(stack.redis.port);
  let again;
  try {
    const held = await isolate(prefix).acquire("t");
    const waiter = new Concurrency({
      max: 1,
      leaseTtl: "30 s",
      store: redisStore({ url: own.url, token: own.token, retries: 0, timeout: 500 }),
      prefix,
    });
    const waiting = waiter.acquire("t", { timeout: 20_000 });
    await untilNumbered(`${prefix}sem:{t}`, 1);
    // Its gateway goes down: the waiter's polls fail for a while (the
    // outage's length is the point, not a synchronisation).
    await own.stop();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await held.release();
    again = await startGateway(stack.redis.port, { port: own.port });
    const permit = await waiting;
    assert.equal(permit.acquired, true, "granted once the store is back");
    await permit.release();
  } finally {
    await own.stop();
    await again?.stop();
  }
});

test("memory: limiters sharing a store queue fairly, and see each other's releases", async () => {
  const store = memoryStore();
  const [a, b] = [0, 1].map(() => new Concurrency({ max: 1, leaseTtl: "30 s", store }));
  const held = await b.acquire("t");
  const order = [];
  // On the memory store a waiter's first try is made in the call: a's
  // waiter is numbered first, b's second.
  const first = a.acquire("t", { timeout: 10_000 }).then((permit) => {
    order.push("a");
    return permit;
  });
  const second = b.acquire("t", { timeout: 10_000 }).then((permit) => {
    order.push("b");
    return permit;
  });
  // Released through b, which wakes its own waiter at once: that one must
  // let a's go first, which sees the release at its next poll, long before
  // the lease would expire.
  await held.release();
  const p1 = await first;
  assert.equal((await b.acquire("t")).acquired, false, "no slot taken past the queue");
  await p1.release();
  const p2 = await second;
  assert.deepEqual(order, ["a", "b"]);
  await p2.release();
});
