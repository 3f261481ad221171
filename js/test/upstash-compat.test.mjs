// Moving from @upstash/ratelimit: the examples of its README (read from the
// installed package, tools/js) run against edgelimit with only the import
// changed, through the real gateway; and each option it documents means the
// same here.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { startGateway, startRedis } from "../../tools/js/testkit.mjs";
import { Ratelimit, redisStore } from "./edgelimit.mjs";

const README = new URL("../../tools/js/node_modules/@upstash/ratelimit/README.md", import.meta.url);
// The @upstash/redis client, as its users have it: in Node and Bun. Deno
// does not resolve its own imports when it is loaded by path from tools/js
// (they are not this project's dependencies), so these tests skip there.
const skip = globalThis.Deno ? "@upstash/redis loads by path in Node and Bun only" : false;
const { Redis } = skip
  ? {}
  : await import(new URL("../../tools/js/node_modules/@upstash/redis/nodejs.mjs", import.meta.url).href);

let redis;
let gateway;
const saved = {};
before(async () => {
  redis = await startRedis();
  gateway = await startGateway(redis.port);
  for (const name of ["UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN", "UPSTASH_DISABLE_TELEMETRY"]) {
    saved[name] = process.env[name];
  }
  process.env.UPSTASH_REDIS_REST_URL = gateway.url;
  process.env.UPSTASH_REDIS_REST_TOKEN = gateway.token;
  process.env.UPSTASH_DISABLE_TELEMETRY = "1";
});
after(async () => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await gateway?.stop();
  await redis?.stop();
});

/** The README's code blocks that build a Ratelimit, imports removed. */
function examples() {
  const text = readFileSync(README, "utf8");
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)]
    .map((m) => m[1])
    .filter((code) => code.includes("new Ratelimit("))
    .map((code) => code.replace(/^import .*$/gm, ""));
}

test("@upstash/ratelimit's README examples run unchanged but for the import", { skip }, async () => {
  const blocks = examples();
  assert.ok(blocks.length >= 2, `${blocks.length} examples found`);
  const AsyncFunction = (async () => {}).constructor;
  for (const code of blocks) {
    let expensive = 0;
    // The README's snippets `return` at the top level: run each as a body.
    const run = new AsyncFunction("Ratelimit", "Redis", "doExpensiveCalculation", code);
    const answer = await run(Ratelimit, Redis, () => expensive++);
    if (code.includes(".limit(")) {
      assert.equal(answer, "Here you go!");
      assert.equal(expensive, 1);
    }
  }
  // The limit went through Redis: the Basic Usage's key holds one call.
  assert.equal(await redis.command("KEYS", "*@upstash/ratelimit*"), "@upstash/ratelimit:sw:10000:{api}");
});

test("each @upstash/ratelimit option means the same here", { skip }, async () => {
  const client = new Redis({ url: gateway.url, token: gateway.token });
  const prefix = `compat${process.pid}`;
  const rl = new Ratelimit({
    redis: client,
    limiter: Ratelimit.tokenBucket(1, "1 m", 5),
    prefix,
    timeout: 1_000,
    analytics: false,
    ephemeralCache: new Map(),
  });
  // `rate` is the cost of a call.
  assert.equal((await rl.limit("u", { rate: 3 })).remaining, 2);
  assert.deepEqual({ ...(await rl.getRemaining("u")), reset: 0 }, { remaining: 2, reset: 0, limit: 5 });
  assert.equal((await rl.limit("u", { rate: 3 })).success, false);
  await rl.resetUsedTokens("u");
  assert.equal((await rl.limit("u")).remaining, 4);
  // `{ url, token }` in place of a client, and ephemeralCache off.
  const plain = new Ratelimit({
    redis: { url: gateway.url, token: gateway.token },
    limiter: Ratelimit.fixedWindow(1, "1 m"),
    prefix,
    ephemeralCache: false,
  });
  assert.equal((await plain.limit("v")).success, true);
  assert.equal((await plain.limit("v")).success, false);
  // Upstash's environment names.
  const fromEnv = new Ratelimit({ store: redisStore.fromEnv(), limiter: Ratelimit.fixedWindow(1, "1 m"), prefix });
  assert.equal((await fromEnv.limit("v")).success, false, "the same key in the same Redis");
});

test("what does not mean the same is refused", () => {
  const limiter = Ratelimit.fixedWindow(1, "1 m");
  const redisOption = { url: gateway.url, token: gateway.token };
  const refused = (options) => {
    try {
      new Ratelimit({ limiter, ...options });
    } catch (error) {
      return error.code;
    }
    return "accepted";
  };
  assert.equal(refused({ redis: {} }), "INVALID_ARGUMENT");
  assert.equal(refused({ redis: redisOption, store: redisStore(redisOption) }), "INVALID_ARGUMENT");
  assert.equal(refused({ ephemeralCache: new Map() }), "INVALID_ARGUMENT", "a cache without redis");
  assert.equal(refused({ redis: redisOption, ephemeralCache: {} }), "INVALID_ARGUMENT");
  assert.equal(refused({ analytics: "yes" }), "INVALID_ARGUMENT");
  assert.throws(() => redisStore.fromEnv({}), { code: "INVALID_ARGUMENT" });
  const rl = new Ratelimit({ limiter });
  assert.throws(() => rl.limitSync("w", { cost: 1, rate: 2 }), { code: "INVALID_ARGUMENT" });
});
