// The unmodified @upstash/ratelimit algorithms against the gateway: exactly
// `limit` requests of a burst pass.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis";
import { startStack } from "../../../tools/js/testkit.mjs";

// Waits until at least `marginMs` remain in the current window of
// `windowMs`, so a burst never straddles a window boundary.
async function awayFromBoundary(windowMs, marginMs = 3000) {
  const left = windowMs - (Date.now() % windowMs);
  if (left < marginMs) await new Promise((r) => setTimeout(r, left + 50));
}

async function burst(limiter, id, n) {
  let passed = 0;
  for (let i = 0; i < n; i++) {
    const r = await limiter.limit(id);
    await r.pending;
    if (r.success) passed++;
  }
  return passed;
}

describe("@upstash/ratelimit", () => {
  let stack;
  let redis;
  before(async () => {
    stack = await startStack();
    redis = new Redis({ url: stack.url, token: stack.token });
  });
  after(() => stack?.stop());

  const make = (limiter, extra = {}) =>
    new Ratelimit({ redis, limiter, prefix: `rl-${Math.random().toString(36).slice(2)}`, ...extra });

  test("fixedWindow", async () => {
    const rl = make(Ratelimit.fixedWindow(5, "60 s"));
    await awayFromBoundary(60_000);
    assert.equal(await burst(rl, "user", 12), 5);
    const rem = await rl.getRemaining("user");
    assert.equal(rem.remaining, 0);
    assert.equal(rem.limit, 5);
    assert.equal(await burst(rl, "other", 3), 3);
    await rl.resetUsedTokens("user");
    assert.equal(await burst(rl, "user", 7), 5);
  });

  test("slidingWindow", async () => {
    const rl = make(Ratelimit.slidingWindow(4, "60 s"));
    await awayFromBoundary(60_000);
    const first = await rl.limit("u");
    assert.equal(first.success, true);
    assert.equal(first.remaining, 3);
    assert.equal(await burst(rl, "u", 9), 3);
    assert.equal((await rl.getRemaining("u")).remaining, 0);
  });

  test("tokenBucket", async () => {
    const rl = make(Ratelimit.tokenBucket(1, "60 s", 6));
    assert.equal(await burst(rl, "tb", 10), 6);
    const r = await rl.limit("tb");
    assert.equal(r.success, false);
    assert.ok(r.reset > Date.now());
  });

  test("cachedFixedWindow with an ephemeral cache", async () => {
    const rl = make(Ratelimit.cachedFixedWindow(3, "60 s"), { ephemeralCache: new Map() });
    await awayFromBoundary(60_000);
    assert.equal(await burst(rl, "c", 8), 3);
  });

  test("limits hold under concurrency (auto-pipelined)", async () => {
    const rl = make(Ratelimit.fixedWindow(10, "60 s"));
    await awayFromBoundary(60_000);
    const results = await Promise.all(Array.from({ length: 40 }, () => rl.limit("conc")));
    assert.equal(results.filter((r) => r.success).length, 10);
  });

  test("recovers when Redis forgot the scripts", async () => {
    const rl = make(Ratelimit.fixedWindow(2, "60 s"));
    await awayFromBoundary(60_000);
    assert.equal(await burst(rl, "f", 1), 1);
    await stack.redis.command("SCRIPT", "FLUSH");
    assert.equal(await burst(rl, "f", 3), 1);
  });
});
