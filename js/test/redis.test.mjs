// The Redis store through the real gateway in front of a real redis-server.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, test } from "node:test";
import { freePort, stackForTests } from "../../tools/js/testkit.mjs";
import { atTime, Concurrency, memoryStore, Ratelimit, redisStore } from "./edgelimit.mjs";

const stack = stackForTests({ before, after });

const store = (options = {}) => redisStore({ url: stack.gateway.url, token: stack.gateway.token, ...options });
let prefixes = 0;
const prefix = () => `t${process.pid}-${++prefixes}:`;

const ALGORITHMS = {
  fixedWindow: () => Ratelimit.fixedWindow(5, "2 s"),
  slidingWindow: () => Ratelimit.slidingWindow(5, "2 s"),
  slidingLog: () => Ratelimit.slidingLog(5, "2 s"),
  tokenBucket: () => Ratelimit.tokenBucket(2, "700 ms", 5, { initialTokens: 3 }),
  gcra: () => Ratelimit.gcra(5, "2 s", { burst: 3 }),
};

// A small deterministic generator, so a failure can be replayed.
function random(seed) {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

for (const [name, make] of Object.entries(ALGORITHMS)) {
  test(`${name}: the same decisions in Redis as in memory`, async () => {
    const clock = { now: 1_700_000_000_000 };
    const next = random(name.length * 7919);
    const inMemory = new Ratelimit({ limiter: make(), store: memoryStore() });
    const inRedis = new Ratelimit({ limiter: make(), store: store({ time: "caller" }), prefix: prefix() });
    await atTime(clock, async () => {
      for (let step = 0; step < 150; step++) {
        clock.now += Math.floor(next() * 400);
        const id = `user-${Math.floor(next() * 3)}`;
        const roll = next();
        if (roll < 0.1) {
          const [m, r] = [await inMemory.getRemaining(id), await inRedis.getRemaining(id)];
          assert.deepEqual(r, m, `getRemaining at step ${step}`);
        } else if (roll < 0.13) {
          await inMemory.reset(id);
          await inRedis.reset(id);
        } else {
          const cost = Math.floor(next() * 3);
          const [m, r] = [await inMemory.limit(id, { cost }), await inRedis.limit(id, { cost })];
          delete m.pending;
          delete r.pending;
          assert.deepEqual(r, m, `limit(${id}, ${cost}) at step ${step}`);
        }
      }
    });
  });
}

test("Redis's clock by default; limiters on one store share usage", async () => {
  const p = prefix();
  const a = new Ratelimit({ limiter: Ratelimit.fixedWindow(3, "1 m"), store: store(), prefix: p });
  const b = new Ratelimit({ limiter: Ratelimit.fixedWindow(3, "1 m"), store: store(), prefix: p });
  assert.equal((await a.limit("k")).remaining, 2);
  assert.equal((await b.limit("k")).remaining, 1);
  const last = await a.limit("k", { cost: 1 });
  assert.equal(last.remaining, 0);
  const denied = await b.limit("k");
  assert.equal(denied.success, false);
  assert.ok(denied.retryAfter > 0 && denied.retryAfter <= 60_000);
  assert.ok(Math.abs(denied.reset - (Date.now() + denied.retryAfter)) < 5_000, "Redis time is close to ours");
  await assert.rejects(a.limit("k", { cost: 4 }), { code: "COST_EXCEEDS_LIMIT" });
  assert.throws(() => a.limitSync("k"), { code: "UNSUPPORTED" });
});

test("the script is sent again after Redis forgets it", async () => {
  const rl = new Ratelimit({ limiter: Ratelimit.gcra(10, "1 s"), store: store(), prefix: prefix() });
  assert.ok((await rl.limit("k")).success);
  assert.equal(await stack.redis.command("SCRIPT", "FLUSH"), "OK");
  assert.ok((await rl.limit("k")).success, "NOSCRIPT, then EVAL");
});

test("concurrency leases are shared through Redis", async () => {
  const p = prefix();
  const make = () => new Concurrency({ max: 2, leaseTtl: "10 s", store: store(), prefix: p });
  const [one, two] = [make(), make()];
  const first = await one.acquire("job");
  const second = await two.acquire("job");
  const third = await one.acquire("job");
  assert.deepEqual([first.acquired, second.acquired, third.acquired], [true, true, false]);
  assert.ok(third.retryAfter > 9_000 && third.retryAfter <= 10_000);
  assert.deepEqual(await two.getRemaining("job"), { remaining: 0, limit: 2 });
  assert.ok(await first.extend("20 s"));
  await first.release();
  await first.release();
  assert.deepEqual(await two.getRemaining("job"), { remaining: 1, limit: 2 });
  // A waiter gets the lease a holder gives back.
  const waiting = one.acquire("job", { timeout: 2_000 });
  setTimeout(() => second.release(), 100);
  const late = await waiting;
  assert.ok(late.acquired);
  await late.release();
  await one.reset("job");
  assert.deepEqual(await one.getRemaining("job"), { remaining: 2, limit: 2 });
});

test("a refused token is STORE_UNAUTHORIZED", async () => {
  const bad = redisStore({ url: stack.gateway.url, token: "wrong" });
  const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(3, "1 m"), store: bad, failure: "open" });
  await assert.rejects(new Ratelimit({ limiter: Ratelimit.fixedWindow(3, "1 m"), store: bad }).limit("k"), {
    code: "STORE_UNAUTHORIZED",
  });
  // A wrong token is a misconfiguration: failing open would silently admit
  // everything, so it is raised whatever the policy.
  await assert.rejects(rl.limit("k"), { code: "STORE_UNAUTHORIZED" });
});

test("no gateway: error, open or closed as configured", async () => {
  const url = `http://127.0.0.1:${await freePort()}`;
  const down = redisStore({ url, token: "t", retries: 1 });
  const make = (failure) => new Ratelimit({ limiter: Ratelimit.fixedWindow(3, "1 m"), store: down, failure });
  await assert.rejects(make("error").limit("k"), (error) => {
    assert.equal(error.code, "STORE_UNREACHABLE", error.message);
    return true;
  });
  const open = await make("open").limit("k");
  assert.deepEqual([open.success, open.reason, open.remaining], [true, "storeFailure", 0]);
  const closed = await make("closed").limit("k");
  assert.deepEqual([closed.success, closed.reason, closed.retryAfter], [false, "storeFailure", 1_000]);
  const leases = new Concurrency({ max: 1, leaseTtl: "1 s", store: down, failure: "open" });
  const permit = await leases.acquire("k");
  assert.deepEqual([permit.acquired, permit.reason, permit.id], [true, "storeFailure", ""]);
  await permit.release();
});

test("a gateway that never answers is STORE_TIMEOUT after the timeout", async () => {
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
    await assert.rejects(rl.limit("k"), { code: "STORE_TIMEOUT" });
    const waited = Date.now() - started;
    // Not retried: a request that may have arrived could consume twice.
    assert.ok(waited >= 150 && waited < 1_000, `${waited} ms`);
    // A read is idempotent, so it is retried (twice by default).
    const readStarted = Date.now();
    await assert.rejects(rl.getRemaining("k"), { code: "STORE_TIMEOUT" });
    assert.ok(Date.now() - readStarted >= 450, "three attempts");
  } finally {
    for (const socket of sockets) socket.destroy();
    silent.close();
  }
});

test("a kept-alive connection the server closed is not an outage", async () => {
  // The script is loaded first, so each call below is one request: a
  // NOSCRIPT answer and the EVAL after it, back to back on one connection,
  // would race the close below (a close after a request was processed but
  // before its answer cannot be told from one before it arrived).
  await new Ratelimit({ limiter: Ratelimit.fixedWindow(100, "1 m"), store: store(), prefix: prefix() }).limit("warm");
  // In front of the gateway: answers, then closes each connection shortly
  // after, as a server's idle timeout does.
  const { createServer: createHttpServer } = await import("node:http");
  const closing = createHttpServer(async (request, response) => {
    const chunks = [];
    for await (const chunk of request) chunks.push(chunk);
    const forwarded = await fetch(`${stack.gateway.url}${request.url}`, {
      method: "POST",
      headers: { authorization: request.headers.authorization, "content-type": "application/json" },
      body: Buffer.concat(chunks),
    });
    response.writeHead(forwarded.status, { "content-type": "application/json" });
    response.end(await forwarded.text());
    setTimeout(() => request.socket.destroy(), 20);
  });
  await new Promise((resolve) => closing.listen(0, "127.0.0.1", resolve));
  try {
    const url = `http://127.0.0.1:${closing.address().port}`;
    const rl = new Ratelimit({
      limiter: Ratelimit.fixedWindow(100, "1 m"),
      store: redisStore({ url, token: stack.gateway.token }),
      prefix: prefix(),
    });
    for (let i = 0; i < 5; i++) {
      assert.equal((await rl.limit("k")).remaining, 99 - i);
      // Well after the close: a request racing it could have been processed
      // (and counted) before the close, which the client cannot tell from
      // one that never arrived.
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  } finally {
    closing.close();
    closing.closeAllConnections?.();
  }
});

test("limiters of different kinds on one id keep apart, in Redis as in memory", async () => {
  const run = async (where) => {
    const shared = where === "memory" ? memoryStore() : store();
    const on = (limiter) => new Ratelimit({ limiter, store: shared, prefix: "kinds" });
    const limiters = [
      on(Ratelimit.fixedWindow(3, "1 h")),
      on(Ratelimit.tokenBucket(1, "1 h", 5)),
      on(Ratelimit.gcra(2, "1 h")),
    ];
    const admitted = [0, 0, 0];
    for (let i = 0; i < 20; i++) {
      for (const [k, rl] of limiters.entries()) if ((await rl.limit(`user-${where}`)).success) admitted[k]++;
    }
    // The same algorithm and window share state by design: a different limit.
    const twin = await on(Ratelimit.fixedWindow(10, "1 h")).limit(`user-${where}`);
    const jobs = new Concurrency({ max: 1, leaseTtl: "1 h", store: shared, prefix: "kinds" });
    const held = await jobs.acquire(`user-${where}`);
    return [admitted, twin.remaining, held.acquired];
  };
  const inMemory = await run("memory");
  assert.deepEqual(inMemory, [[3, 5, 2], 6, true]);
  assert.deepEqual(await run("redis"), inMemory);
  // The key layout, as the README documents it.
  const keys = (await stack.redis.command("KEYS", "kinds:*")).split("\n").sort();
  assert.deepEqual(keys, [
    "kinds:fw:3600000:{user-redis}",
    "kinds:gcra:3600000/2:{user-redis}",
    "kinds:sem:{user-redis}",
    "kinds:tb:3600000:{user-redis}",
  ]);
});

test("a prefix is always followed by a separator; braces are refused", async () => {
  const shared = memoryStore();
  const fixed = (prefix) => new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 h"), store: shared, prefix });
  assert.ok(fixed("api").limitSync("2user1").success);
  assert.ok(fixed("api2").limitSync("user1").success, "api + 2user1 is not api2 + user1");
  assert.throws(() => fixed("a{b}"), { code: "INVALID_CONFIG" });
});

test("outages follow the failure policy; misconfiguration is raised whatever it is", async () => {
  // A server answering every request with `status` and `body`.
  const answering = async (status, body) => {
    const server = createServer((socket) => {
      socket.once("data", () => {
        socket.end(
          `HTTP/1.1 ${status} X\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
      });
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
  };
  const limiter = (url, failure) =>
    new Ratelimit({
      limiter: Ratelimit.fixedWindow(3, "1 m"),
      store: redisStore({ url, token: "t", retries: 0 }),
      failure,
    });
  const cases = [
    [401, '{"error":"Unauthorized"}', "STORE_UNAUTHORIZED", "raised"],
    [403, '{"error":"ERR command not allowed"}', "STORE_FORBIDDEN", "raised"],
    [404, "Not Found", "STORE_NOT_FOUND", "raised"],
    [400, `{"error":"ERR unknown command 'nowhere'"}`, "STORE_NOT_FOUND", "raised"],
    [503, "Service Unavailable", "STORE_UNAVAILABLE", "policy"],
    [502, "<html>bad gateway</html>", "STORE_UNAVAILABLE", "policy"],
  ];
  for (const [status, body, code, kind] of cases) {
    const server = await answering(status, body);
    try {
      await assert.rejects(limiter(server.url, "error").limit("k"), { code }, `${status}`);
      for (const failure of ["open", "closed"]) {
        const call = limiter(server.url, failure).limit("k");
        if (kind === "raised") {
          await assert.rejects(call, { code }, `${status} with failure ${failure}`);
        } else {
          const result = await call;
          assert.equal(result.success, failure === "open", `${status} ${failure}`);
          assert.equal(result.reason, "storeFailure");
        }
      }
    } finally {
      server.close();
    }
  }
});

test("a 50 MB reply is cut off within the timeout, with a short message", async () => {
  const sockets = [];
  const flood = createServer((socket) => {
    sockets.push(socket);
    socket.once("data", () => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"error":"`);
      const block = "x".repeat(1 << 20);
      let sent = 0;
      const more = () => {
        while (sent < 50 && socket.write(block)) sent++;
        if (sent < 50 && !socket.destroyed) socket.once("drain", more);
      };
      socket.on("error", () => {});
      more();
    });
  });
  await new Promise((resolve) => flood.listen(0, "127.0.0.1", resolve));
  try {
    const url = `http://127.0.0.1:${flood.address().port}`;
    const rl = new Ratelimit({
      limiter: Ratelimit.fixedWindow(3, "1 m"),
      store: redisStore({ url, token: "t", retries: 0 }),
      timeout: 300,
    });
    const started = Date.now();
    const error = await rl.limit("k").then(
      () => assert.fail("admitted"),
      (e) => e,
    );
    assert.ok(Date.now() - started < 1_000, `${Date.now() - started} ms`);
    assert.ok(["STORE_UNAVAILABLE", "STORE_TIMEOUT"].includes(error.code), error.code);
    assert.ok(error.message.length < 500, `${error.message.length} characters`);
  } finally {
    for (const socket of sockets) socket.destroy();
    flood.close();
  }
});

test("withRateLimit on an outage and on a misconfiguration: no unhandled error, logged once", async () => {
  const { withRateLimit } = await import("./edgelimit.mjs");
  const unauthorized = createServer((socket) =>
    socket.once("data", () =>
      socket.end('HTTP/1.1 401 X\r\ncontent-length: 24\r\nconnection: close\r\n\r\n{"error":"Unauthorized"}'),
    ),
  );
  await new Promise((resolve) => unauthorized.listen(0, "127.0.0.1", resolve));
  const down = await freePort(); // nothing listens there
  const logs = [];
  const realError = console.error;
  console.error = (...args) => logs.push(args.join(" "));
  try {
    const handle = async (url, failure) => {
      const limiter = new Ratelimit({
        limiter: Ratelimit.fixedWindow(1, "1 h"),
        store: url ? redisStore({ url, token: "t", retries: 0 }) : memoryStore(),
        failure,
      });
      const handler = withRateLimit(() => new Response("hello"), { limiter, key: () => "client" });
      const statuses = [];
      for (let i = 0; i < 2; i++) {
        const response = await handler(new Request("https://example.com/"));
        statuses.push(
          `${response.status}${response.headers.get("Retry-After") ? `/${response.headers.get("Retry-After")}` : ""}`,
        );
      }
      return statuses.join(" ");
    };
    const outage = `http://127.0.0.1:${down}`;
    assert.equal(await handle(outage, "error"), "503/1 503/1", "the default: try again soon");
    assert.equal(await handle(outage, "open"), "200 200");
    assert.equal(await handle(outage, "closed"), "429/1 429/1");
    const wrongToken = `http://127.0.0.1:${unauthorized.address().port}`;
    for (const failure of ["error", "open", "closed"]) {
      assert.equal(await handle(wrongToken, failure), "500 500", `a refused token with failure ${failure}`);
    }
    for (const failure of ["error", "open", "closed"]) {
      assert.match(await handle(undefined, failure), /^200 429\/\d+$/, "memory never fails");
    }
    assert.equal(logs.filter((line) => line.includes("STORE_UNAUTHORIZED")).length, 1, logs.join("\n"));
    assert.equal(logs.filter((line) => line.includes("STORE_UNREACHABLE")).length, 1, logs.join("\n"));
  } finally {
    console.error = realError;
    unauthorized.close();
  }
});
