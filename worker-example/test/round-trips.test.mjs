// Round trips from workerd to Redis: calls a Worker makes together share
// one request, and a blocked client is answered from the deny cache. A
// counting proxy between the Workers and the real gateway counts requests.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startCountingProxy, startGateway, startRedis } from "../../tools/js/testkit.mjs";
import { bundleWorker, exampleDir } from "../lib/bundle.mjs";
import { startWorkerd } from "../lib/workerd.mjs";
import { assertAdmitted, assertDenied, hit, newClient, workerBundle } from "./helpers.mjs";

let redis, gateway, proxy;
const running = [];
const dir = mkdtempSync(join(tmpdir(), "edgelimit-batch-worker-"));

before(async () => {
  redis = await startRedis();
  gateway = await startGateway(redis.port);
  proxy = await startCountingProxy(gateway.url);
});
after(async () => {
  await Promise.all(running.map((w) => w.stop()));
  await proxy?.stop();
  await gateway?.stop();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function worker(bundle) {
  const started = await startWorkerd(bundle, { REDIS_URL: proxy.url, REDIS_TOKEN: gateway.token });
  running.push(started);
  return started;
}

test("calls a Worker makes together share one command, decided in call order", async () => {
  const batcher = await worker(await bundleWorker(join(exampleDir, "test/fixtures/batch-worker.js"), dir));
  const ask = async (id, n) => {
    const response = await fetch(`${batcher.url}/?id=${id}&n=${n}`);
    assert.equal(response.status, 200, `${await response.clone().text()}\n${batcher.logs()}`);
    return response.json();
  };
  // Loads the scripts a batch and a lone call use.
  await ask("warm-up", 2);
  await ask("warm-up", 1);
  proxy.take();
  assert.deepEqual(await ask("k", 6), [
    [true, 3],
    [true, 2],
    [true, 1],
    [true, 0],
    [false, 0],
    [false, 0],
  ]);
  const seen = proxy.take();
  assert.equal(seen.length, 1, JSON.stringify(seen));
  // One command: a call of the batch script carrying the six.
  const [verb, , count] = JSON.parse(seen[0].body);
  assert.deepEqual([seen[0].path, verb, count], ["/", "EVALSHA", "6"]);
});

test("a blocked client costs Redis no further requests", async () => {
  const example = await worker(await workerBundle());
  const client = newClient();
  for (let remaining = 4; remaining >= 0; remaining--) assertAdmitted(await hit(example, client), remaining, "redis");
  proxy.take();
  for (let i = 0; i < 30; i++) assertDenied(await hit(example, client));
  const seen = proxy.take();
  assert.ok(seen.length <= 1, `${seen.length} requests for 30 denials`);
});

test("a Worker's quota lease pays for calls without requests, and comes back", async () => {
  const leasing = await worker(await bundleWorker(join(exampleDir, "test/fixtures/lease-worker.js"), dir));
  const get = async (path) => {
    const response = await fetch(`${leasing.url}${path}`);
    assert.equal(response.status, 200, `${await response.clone().text()}\n${leasing.logs()}`);
    return response;
  };
  // Loads the scripts a lone call and a returning batch use.
  await get("/?id=warm-a");
  await get("/?id=warm-b");
  await get("/return");
  proxy.take();
  const answers = [];
  for (let i = 0; i < 35; i++) answers.push(await (await get("/?id=user")).json());
  assert.deepEqual(
    answers,
    Array.from({ length: 35 }, (_, i) => [true, 999 - i]),
  );
  assert.equal(proxy.take().length, 4, "one request per 10 calls");
  await get("/return");
  assert.equal(proxy.take().length, 1);
  // Given back: Redis counts the 35 calls made, not the 40 units leased.
  assert.equal(String(await redis.command("HGET", "workerd-lease:fw:3600000:{user}", "count")), "35");
});

test("deny and allow lists on workerd: 403 and admissions without a request to Redis", async () => {
  const listed = await worker(await bundleWorker(join(exampleDir, "test/fixtures/lists-worker.js"), dir));
  const get = (ip) => fetch(listed.url, { headers: { "CF-Connecting-IP": ip } });
  const first = await get("192.0.2.1");
  assert.equal(first.status, 200, listed.logs());
  proxy.take();
  const statuses = [];
  for (const ip of ["203.0.113.5", "198.51.100.7", "198.51.100.7", "198.51.100.7", "2001:db8:7::1", "203.0.113.9"]) {
    const response = await get(ip);
    statuses.push(response.status);
    if (response.status === 403) assert.equal(response.headers.get("retry-after"), null);
    await response.arrayBuffer();
  }
  assert.deepEqual(statuses, [403, 200, 200, 200, 200, 403], listed.logs());
  assert.deepEqual(proxy.take(), [], "no request for a listed client");
  assert.equal((await get("192.0.2.1")).status, 200);
  assert.equal((await get("192.0.2.1")).status, 429, "an unlisted client is limited as usual");
});

test("plans on workerd: each client limited by its own limit, on one state in Redis", async () => {
  const plans = await worker(await bundleWorker(join(exampleDir, "test/fixtures/plans-worker.js"), dir));
  const get = (plan) => fetch(plans.url, { headers: { "x-user": "u1", "x-plan": plan } });
  const seen = [];
  for (const plan of ["free", "free", "free", "pro", "pro", "pro", "pro", "free"]) {
    const response = await get(plan);
    seen.push([response.status, response.headers.get("ratelimit-policy")]);
    await response.arrayBuffer();
  }
  const free = '"default";q=2;w=3600';
  const pro = '"default";q=5;w=3600';
  assert.deepEqual(
    seen,
    [
      [200, free],
      [200, free],
      [429, free],
      [200, pro],
      [200, pro],
      [200, pro],
      [429, pro],
      [429, free],
    ],
    plans.logs(),
  );
  // A refund gives one unit back: one more call on the pro plan.
  const refunded = await fetch(new URL("/refund", plans.url), { method: "POST", headers: { "x-user": "u1" } });
  assert.equal((await refunded.json()).remaining, 0, "5 used of 2: none left on the limiter's own plan");
  assert.equal((await get("pro")).status, 200);
  assert.equal((await get("pro")).status, 429);
  // One state in Redis, whatever the plan: the key of the limiter's own.
  assert.equal(String(await redis.command("KEYS", "workerd-plans:*")), "workerd-plans:sl:3600000:{u1}");
});

test("a login on workerd: two limits as one call in one request each, then a block", async () => {
  const login = await worker(await bundleWorker(join(exampleDir, "test/fixtures/login-worker.js"), dir));
  const attempt = (user) => fetch(`${login.url}/?user=${user}`);
  // Redis learns the script (NOSCRIPT, then EVAL) on the first call.
  await (await attempt("warm-up")).arrayBuffer();
  proxy.take();
  const seen = [];
  for (let i = 0; i < 5; i++) {
    const response = await attempt("mallory");
    seen.push([response.status, response.headers.get("ratelimit"), response.headers.get("retry-after")]);
    await response.arrayBuffer();
  }
  assert.deepEqual(
    seen.map(([status]) => status),
    [200, 200, 200, 429, 429],
    login.logs(),
  );
  assert.match(seen[2][1], /^"fixedWindow-60s";r=0;t=\d+, "fixedWindow-86400s";r=17;t=\d+$/);
  // Blocked for the hour: every policy has nothing left until then.
  assert.equal(seen[3][2], "3600");
  assert.match(seen[4][1], /^"fixedWindow-60s";r=0;t=360\d, "fixedWindow-86400s";r=0;t=\d+$/);
  assert.equal(proxy.take().length, 5, "one request to Redis per attempt");
  assert.equal((await attempt("alice")).status, 200, "other users are not blocked");
  // The denied attempts counted against neither limit.
  const day = await redis.command("HGET", "workerd-login:fw:86400000:{mallory}", "count");
  assert.equal(String(day), "3");
});

test("edgelimit/hono in a Hono app on workerd: 429 and the RateLimit headers", async () => {
  const hono = await worker(await bundleWorker(join(exampleDir, "test/fixtures/hono-worker.js"), dir));
  const get = (ip) => fetch(`${hono.url}/api/hello`, { headers: { "CF-Connecting-IP": ip } });
  const statuses = [];
  for (let i = 0; i < 3; i++) {
    const response = await get("203.0.113.5");
    statuses.push(response.status);
    assert.match(response.headers.get("ratelimit") ?? "", /r=\d+/, hono.logs());
    await response.arrayBuffer();
  }
  assert.deepEqual(statuses, [200, 200, 429], hono.logs());
  assert.equal((await get("203.0.113.6")).status, 200, "another client");
});

test("the README's Worker example runs as written: one limiter per isolate, 429 after the burst", async () => {
  const readme = readFileSync(join(exampleDir, "..", "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  const found = blocks.filter((code) => code.includes("export default { fetch: withRateLimit"));
  assert.equal(found.length, 1, "one README Worker example");
  // Inside worker-example, so that "edgelimit" resolves to the package.
  const source = mkdtempSync(join(exampleDir, ".readme-"));
  try {
    writeFileSync(join(source, "worker.js"), found[0]);
    const readmeWorker = await worker(await bundleWorker(join(source, "worker.js"), join(source, "out")));
    const get = async (ip) => {
      const response = await fetch(readmeWorker.url, { headers: { "CF-Connecting-IP": ip } });
      await response.arrayBuffer();
      return response.status;
    };
    const statuses = [];
    for (let i = 0; i < 21; i++) statuses.push(await get("203.0.113.77"));
    assert.deepEqual(statuses, [...Array(20).fill(200), 429], "a burst of 20, then 429");
    assert.equal(await get("198.51.100.77"), 200, "another client has its own burst");
    // The isolate's one limiter remembers the denial: no request to Redis.
    proxy.take();
    for (let i = 0; i < 10; i++) assert.equal(await get("203.0.113.77"), 429);
    assert.deepEqual(proxy.take(), [], "denials answered by the isolate's deny cache");
  } finally {
    rmSync(source, { recursive: true, force: true });
  }
});
