// edgelimit/hono on a real Hono app (npm `hono`, from tools/js): 429 with
// Retry-After past the limit, the RateLimit headers on every response,
// per-route limits, and a default key that trusts no forwarded header.
import assert from "node:assert/strict";
import { test } from "node:test";
import { rateLimit } from "../../pkg/hono.js";
import { Hono } from "../../tools/js/node_modules/hono/dist/index.js";
import { accessList, asCloudflareWorkers, Ratelimit } from "./edgelimit.mjs";
import { readmeExample, runExample } from "./readme.mjs";

async function app() {
  const api = new Ratelimit({ limiter: Ratelimit.fixedWindow(2, "1 m"), prefix: "hono-api:" });
  const strict = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 m"), prefix: "hono-strict:" });
  const hono = new Hono();
  hono.use("/api/*", rateLimit({ limiter: api, key: (c) => c.req.header("x-client") ?? "none" }));
  hono.use("/api/strict/*", rateLimit({ limiter: strict, key: (c) => c.req.header("x-client") ?? "none" }));
  const byDefault = await asCloudflareWorkers(() =>
    rateLimit({ limiter: new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 m") }) }),
  );
  hono.use("/default/*", byDefault);
  hono.get("/api/a", (c) => c.text("a"));
  hono.get("/api/strict/b", (c) => c.text("b"));
  hono.get("/default/c", (c) => c.text("c"));
  hono.get("/open", (c) => c.text("open"));
  return hono;
}

test("429 with Retry-After past the limit; RateLimit headers on every response", async () => {
  const hono = await app();
  const responses = [];
  for (let i = 0; i < 3; i++) responses.push(await hono.request("/api/a", { headers: { "x-client": "ann" } }));
  assert.deepEqual(
    responses.map((r) => r.status),
    [200, 200, 429],
  );
  assert.equal(await responses[0].text(), "a");
  assert.deepEqual(
    responses.map((r) => r.headers.get("x-ratelimit-remaining")),
    ["1", "0", "0"],
  );
  assert.match(responses[0].headers.get("ratelimit"), /^"default";r=1;t=\d+$/);
  assert.equal(responses[0].headers.get("ratelimit-policy"), '"default";q=2;w=60');
  assert.equal(responses[0].headers.get("retry-after"), null);
  assert.ok(Number(responses[2].headers.get("retry-after")) >= 1);
  // Another client, and a route without the middleware.
  assert.equal((await hono.request("/api/a", { headers: { "x-client": "bob" } })).status, 200);
  const open = await hono.request("/open");
  assert.equal(open.status, 200);
  assert.equal(open.headers.get("ratelimit"), null);
});

test("per-route limits stack, each charged in turn", async () => {
  const hono = await app();
  const headers = { "x-client": "cat" };
  // /api/strict/* is under both: the API's limit of 2, then its own of 1.
  const first = await hono.request("/api/strict/b", { headers });
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("ratelimit-policy"), '"default";q=1;w=60', "the tightest limit's headers");
  assert.equal(first.headers.get("x-ratelimit-remaining"), "0");
  const denied = await hono.request("/api/strict/b", { headers });
  assert.equal(denied.status, 429);
  assert.equal(denied.headers.get("ratelimit-policy"), '"default";q=1;w=60', "the route's own limit denied");
  // The API's limit admitted both calls before the route's denied the
  // second: stacked limits are separate calls, not one atomic check.
  assert.equal((await hono.request("/api/a", { headers })).status, 429);
});

test("the default key trusts only CF-Connecting-IP", async () => {
  const hono = await app();
  // Forged forwarded headers identify no one: refused, with no quota shared
  // by all the unidentified.
  assert.equal((await hono.request("/default/c", { headers: { "x-forwarded-for": "10.0.0.1" } })).status, 400);
  assert.equal((await hono.request("/default/c", { headers: { "x-forwarded-for": "10.0.0.2" } })).status, 400);
  assert.equal((await hono.request("/default/c", { headers: { "cf-connecting-ip": "203.0.113.9" } })).status, 200);
  assert.equal((await hono.request("/default/c", { headers: { "cf-connecting-ip": "203.0.113.9" } })).status, 429);
});

test("rateLimit needs a key where the runtime vouches for no address", () => {
  const limiter = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 m") });
  if (globalThis.Deno) rateLimit({ limiter });
  else assert.throws(() => rateLimit({ limiter }), { code: "INVALID_CONFIG" });
});

test("rateLimit is checked", () => {
  assert.throws(() => rateLimit({}), { code: "INVALID_ARGUMENT" });
  assert.throws(() => rateLimit({ limiter: {} }), { code: "INVALID_ARGUMENT" });
  const limiter = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 m") });
  assert.throws(() => rateLimit({ limiter, key: "ip" }), { code: "INVALID_ARGUMENT" });
});

test("the README's Hono example runs as written", async () => {
  const { app } = await asCloudflareWorkers(() => runExample(readmeExample("edgelimit/hono"), "export { app };"));
  const login = { headers: { "CF-Connecting-IP": "198.51.100.7" } };
  const statuses = [];
  for (let i = 0; i < 6; i++) statuses.push((await app.request("/api/login", login)).status);
  assert.deepEqual(statuses, [404, 404, 404, 404, 404, 429], "5 logins per 15 minutes, then 429");
  assert.equal((await app.request("/api/other", login)).headers.get("ratelimit-policy"), '"default";q=100;w=60');
});

test("a deny-listed client gets 403 without Retry-After; an allow-listed one is never limited", async () => {
  const lists = accessList({ deny: ["203.0.113.0/24"], allow: ["198.51.100.7"] });
  const limiter = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 m"), accessList: lists });
  const hono = new Hono();
  hono.use("/*", rateLimit({ limiter, key: (c) => c.req.header("x-client") }));
  hono.get("/", (c) => c.text("ok"));
  const get = (client) => hono.request("/", { headers: { "x-client": client } });
  const denied = await get("203.0.113.9");
  assert.equal(denied.status, 403);
  assert.equal(denied.headers.get("retry-after"), null);
  for (let i = 0; i < 3; i++) assert.equal((await get("198.51.100.7")).status, 200);
  assert.deepEqual([(await get("192.0.2.1")).status, (await get("192.0.2.1")).status], [200, 429]);
});

test("a client's own limit from the context: its plan, on the same state", async () => {
  const limiter = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 h"), prefix: "hono-plans:" });
  const hono = new Hono();
  hono.use(
    "/*",
    rateLimit({
      limiter,
      key: (c) => c.req.header("x-client"),
      limit: async (c) => ({ pro: 3 })[c.req.header("x-plan")],
    }),
  );
  hono.get("/", (c) => c.text("ok"));
  const get = (plan) => hono.request("/", { headers: { "x-client": "ann", "x-plan": plan } });
  const seen = [];
  for (const plan of ["free", "free", "pro", "pro", "pro"]) {
    const response = await get(plan);
    seen.push([response.status, response.headers.get("ratelimit-policy")]);
  }
  const [free, pro] = ['"default";q=1;w=3600', '"default";q=3;w=3600'];
  assert.deepEqual(seen, [
    [200, free],
    [429, free],
    [200, pro],
    [200, pro],
    [429, pro],
  ]);
  assert.throws(() => rateLimit({ limiter, key: () => "k", limit: 3 }), { code: "INVALID_ARGUMENT" });
});
