// Refunds and penalties: units given back (never more than used) or charged
// (never past the limit), in memory and in Redis through the real gateway,
// the same numbers on both; a refund reopens a key the deny cache closed.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { stackForTests } from "../../tools/js/testkit.mjs";
import { atTime, EdgelimitError, Ratelimit, redisStore } from "./edgelimit.mjs";

const stack = stackForTests({ before, after });

const T0 = 1_700_000_010_000;

test("a refund gives back what was used and no more; a penalty charges up to the limit", () =>
  atTime({ now: T0 }, async () => {
    const rl = new Ratelimit({ limiter: Ratelimit.tokenBucket(1, "1 s", 10) });
    assert.equal(rl.limitSync("u", { cost: 4 }).remaining, 6);
    assert.deepEqual(await rl.refund("u", 100), { remaining: 10, reset: T0, limit: 10 });
    assert.equal((await rl.penalize("u", 100)).remaining, 0);
    assert.equal(rl.limitSync("u").success, false);
    assert.equal((await rl.refund("u", 1)).remaining, 1);
    assert.equal(rl.limitSync("u").success, true);
  }));

test("bad units are a typed error and change nothing", async () => {
  const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(3, "1 m") });
  rl.limitSync("u");
  for (const units of [-1, 1.5, "2", undefined]) {
    await assert.rejects(rl.refund("u", units), (e) => e instanceof EdgelimitError && e.code === "INVALID_ARGUMENT");
  }
  await assert.rejects(rl.penalize("x".repeat(5_000), 1), (e) => e.code === "INVALID_ARGUMENT");
  assert.equal((await rl.getRemaining("u")).remaining, 2);
});

test("Redis decides refunds and penalties exactly as memory, and forgets cached denials", async () => {
  const store = redisStore({ url: stack.gateway.url, token: stack.gateway.token, time: "caller" });
  const prefix = `adjust-${Date.now()}`;
  await atTime({ now: T0 }, async () => {
    for (const make of [
      () => Ratelimit.fixedWindow(3, "10 s"),
      () => Ratelimit.slidingWindow(3, "10 s"),
      () => Ratelimit.slidingLog(3, "10 s"),
      () => Ratelimit.tokenBucket(1, "1 s", 3),
      () => Ratelimit.gcra(3, "10 s"),
    ]) {
      const memory = new Ratelimit({ limiter: make() });
      const redis = new Ratelimit({ limiter: make(), store, prefix });
      const steps = ["call", "call", "call", "call", "call", "refund 2", "call", "penalize 5", "call", "refund 9"];
      for (const [i, step] of steps.entries()) {
        const [what, units] = step.split(" ");
        const pick = (rl) => (what === "call" ? rl.limit("k") : rl[what]("k", Number(units)));
        const [m, r] = [await pick(memory), await pick(redis)];
        assert.deepEqual(r, m, `${make().kind} step ${i}: ${step}`);
      }
    }
  });
});
