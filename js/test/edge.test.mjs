// The edge glue and the waiting forms, on the memory store.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Concurrency, clientIp, Ratelimit, rateLimitHeaders, throttle, withRateLimit } from "./edgelimit.mjs";

const request = (ip, headers = {}) =>
  new Request("https://example.com/", { headers: { "x-forwarded-for": ip, ...headers } });

test("withRateLimit: 200s then 429 with Retry-After and the RateLimit fields", async () => {
  const limiter = new Ratelimit({ limiter: Ratelimit.fixedWindow(2, "1 m") });
  // Behind a proxy of ours at 10.0.0.0/8, which appends the address it saw.
  const key = (request) => clientIp(request, { trustedProxies: ["10.0.0.0/8"] });
  const handler = withRateLimit(() => new Response("hello"), { limiter, key });
  const responses = [];
  for (let i = 0; i < 3; i++) responses.push(await handler(request("203.0.113.7, 10.0.0.1")));
  assert.deepEqual(
    responses.map((r) => r.status),
    [200, 200, 429],
  );
  assert.equal(await responses[0].text(), "hello");
  const [first, , denied] = responses;
  assert.equal(first.headers.get("RateLimit-Policy"), '"default";q=2;w=60');
  assert.match(first.headers.get("RateLimit"), /^"default";r=1;t=\d+$/);
  assert.equal(first.headers.get("X-RateLimit-Limit"), "2");
  assert.equal(first.headers.get("X-RateLimit-Remaining"), "1");
  assert.equal(first.headers.get("Retry-After"), null);
  const retryAfter = Number(denied.headers.get("Retry-After"));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `${retryAfter}`);
  const t = Number(denied.headers.get("RateLimit").match(/t=(\d+)/)[1]);
  assert.ok(t >= 1 && t <= 60);
  const reset = Number(denied.headers.get("X-RateLimit-Reset"));
  assert.ok(Math.abs(reset - (Date.now() / 1000 + t)) <= 2, "epoch seconds");
  // Another address has its own quota; a request only our proxy vouches
  // for identifies no client, and shares no quota.
  assert.equal((await handler(request("198.51.100.1"))).status, 200);
  assert.equal((await handler(request("10.0.0.1", { "cf-connecting-ip": "192.0.2.9" }))).status, 400);
});

test("withRateLimit: custom key, cost, 429 body, per-request limiter; immutable responses are copied", async () => {
  const limiter = new Ratelimit({ limiter: Ratelimit.tokenBucket(1, "1 h", 5) });
  const seen = [];
  const handler = withRateLimit(() => Response.redirect("https://example.com/next", 302), {
    limiter: (_req, env) => {
      seen.push(env.name);
      return limiter;
    },
    key: async (req) => req.headers.get("x-api-key"),
    cost: (req) => Number(req.headers.get("x-cost")),
    onLimited: (_req, result) => Response.json({ wait: result.retryAfter }, { status: 429 }),
  });
  const call = (cost) =>
    handler(request("1.1.1.1", { "x-api-key": "key-1", "x-cost": String(cost) }), { name: "env" }, {});
  const ok = await call(4);
  assert.equal(ok.status, 302, "the redirect's immutable headers did not stop us");
  assert.equal(ok.headers.get("Location"), "https://example.com/next");
  assert.equal(ok.headers.get("X-RateLimit-Remaining"), "1");
  const denied = await call(2);
  assert.equal(denied.status, 429);
  const { wait } = await denied.json();
  assert.ok(wait > 3_590_000 && wait <= 3_600_000, `${wait}`);
  assert.equal(denied.headers.get("Retry-After"), "3600");
  assert.deepEqual(seen, ["env", "env"]);
});

test("rateLimitHeaders for a token bucket advertise its refill time", () => {
  const algorithm = Ratelimit.tokenBucket(2, "1 s", 10);
  const headers = rateLimitHeaders(
    algorithm,
    { success: true, limit: 10, remaining: 4, reset: 3_000, retryAfter: 0 },
    0,
  );
  assert.equal(headers.get("RateLimit-Policy"), '"default";q=10;w=5');
  assert.equal(headers.get("RateLimit"), '"default";r=4;t=3');
});

test("after a store failure only the policy (and Retry-After on a denial) is advertised", () => {
  const algorithm = Ratelimit.fixedWindow(10, "1 m");
  const failed = { limit: 10, remaining: 0, reset: 5_000, reason: "storeFailure" };
  const open = rateLimitHeaders(algorithm, { ...failed, success: true, retryAfter: 0 }, 5_000);
  assert.deepEqual([...open.keys()], ["ratelimit-policy"]);
  const closed = rateLimitHeaders(algorithm, { ...failed, success: false, retryAfter: 1_000 }, 5_000);
  assert.deepEqual([...closed.keys()].sort(), ["ratelimit-policy", "retry-after"]);
  assert.equal(closed.get("Retry-After"), "1");
});

test("blockUntilReady waits for capacity, and gives up when it cannot come in time", async () => {
  const rl = new Ratelimit({ limiter: Ratelimit.gcra(20, "1 s", { burst: 1 }) });
  assert.ok((await rl.limit("k")).success);
  const started = Date.now();
  const waited = await rl.blockUntilReady("k", 1_000);
  assert.ok(waited.success);
  assert.ok(Date.now() - started >= 45, "one emission interval (50 ms)");
  const hopeless = await rl.blockUntilReady("k", 10, { cost: 1 });
  assert.equal(hopeless.success, false, "50 ms needed, 10 ms allowed: no sleep at all");
  const controller = new AbortController();
  const aborted = rl.blockUntilReady("k", 5_000, { signal: controller.signal });
  controller.abort(new Error("stop"));
  await assert.rejects(aborted, /stop/);
});

test("throttle admits calls in order at the limiter's pace, and aborts waiting calls", async () => {
  const rl = new Ratelimit({ limiter: Ratelimit.gcra(20, "1 s", { burst: 1 }) });
  const finished = [];
  const started = Date.now();
  const double = throttle(async (x) => {
    finished.push([x, Date.now() - started]);
    return x * 2;
  }, rl);
  assert.deepEqual(await Promise.all([1, 2, 3, 4].map(double)), [2, 4, 6, 8]);
  assert.deepEqual(
    finished.map(([x]) => x),
    [1, 2, 3, 4],
  );
  for (let i = 1; i < finished.length; i++) {
    assert.ok(finished[i][1] - finished[i - 1][1] >= 40, `spacing ${JSON.stringify(finished)}`);
  }
  const controller = new AbortController();
  const slow = throttle((x) => x, new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 h") }), {
    signal: controller.signal,
    key: (_x) => "same",
  });
  assert.equal(await slow(1), 1);
  const waiting = [slow(2), slow(3)];
  setTimeout(() => controller.abort(new Error("user left")), 20);
  for (const call of waiting) await assert.rejects(call, /user left/);
});

test("Concurrency in memory: leases, waiting, expiry, dispose", async () => {
  const leases = new Concurrency({ max: 1, leaseTtl: "200 ms" });
  const held = await leases.acquire("db");
  assert.ok(held.acquired);
  assert.match(held.id, /^\d+$/);
  assert.ok(held.expiresAt >= Date.now() + 150);
  const refused = await leases.acquire("db");
  assert.equal(refused.acquired, false);
  assert.equal(refused.id, "");
  assert.ok(refused.retryAfter > 0 && refused.retryAfter <= 200);
  await refused.release(); // a no-op
  // Never released: the lease expires and a waiter gets it.
  const waited = await leases.acquire("db", { timeout: 1_000 });
  assert.ok(waited.acquired);
  await waited[Symbol.asyncDispose]();
  assert.deepEqual(await leases.getRemaining("db"), { remaining: 1, limit: 1 });
  assert.equal(await held.extend(), false, "expired long ago");
  await assert.rejects(leases.acquire("db", { leaseTtl: "0 s" }), { code: "INVALID_ARGUMENT" });
  assert.throws(() => new Concurrency({ max: 0, leaseTtl: "1 s" }), { code: "INVALID_CONFIG" });
});

test("a fresh module answers a lease call before any rate decision", async () => {
  // Run in its own process: the module's buffers start unset.
  const { execFileSync } = await import("node:child_process");
  const script = `
    const { Concurrency } = await import(${JSON.stringify(new URL("../../pkg/node.js", import.meta.url).href)});
    const permit = await new Concurrency({ max: 1, leaseTtl: "1 s" }).acquire("k");
    console.log(permit.acquired);`;
  if (globalThis.Deno) return; // the Node entry; Deno runs using.test.ts first thing instead
  assert.equal(execFileSync(process.execPath, ["--input-type=module", "-e", script]).toString().trim(), "true");
});
