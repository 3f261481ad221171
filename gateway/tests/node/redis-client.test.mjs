// The unmodified @upstash/redis client against the gateway.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Redis } from "@upstash/redis";
import { startStack } from "../../../tools/js/testkit.mjs";

describe("@upstash/redis", () => {
  let stack;
  let redis;
  before(async () => {
    stack = await startStack();
    redis = new Redis({ url: stack.url, token: stack.token, enableAutoPipelining: false });
  });
  after(() => stack?.stop());

  test("strings, JSON values and unicode", async () => {
    assert.equal(await redis.set("s", "hello"), "OK");
    assert.equal(await redis.get("s"), "hello");
    assert.equal(await redis.incr("n"), 1);
    assert.equal(await redis.incrby("n", 41), 42);
    assert.equal(await redis.get("n"), 42);
    await redis.set("obj", { a: 1, b: ["x"] });
    assert.deepEqual(await redis.get("obj"), { a: 1, b: ["x"] });
    await redis.set("u", "héllo ✓ 日本");
    assert.equal(await redis.get("u"), "héllo ✓ 日本");
    assert.equal(await redis.get("missing"), null);
    await redis.mset({ m1: "a", m2: "b" });
    assert.deepEqual(await redis.mget("m1", "m2", "m3"), ["a", "b", null]);
    assert.equal(await redis.set("ex", "v", { ex: 100, nx: true }), "OK");
    assert.equal(await redis.set("ex", "v", { nx: true }), null);
    const ttl = await redis.ttl("ex");
    assert.ok(ttl > 90 && ttl <= 100);
    assert.equal(await redis.getdel("ex"), "v");
  });

  test("hashes", async () => {
    assert.equal(await redis.hset("h", { name: "ada", age: 36 }), 2);
    assert.deepEqual(await redis.hgetall("h"), { name: "ada", age: 36 });
    assert.equal(await redis.hincrby("h", "age", 1), 37);
    assert.equal(await redis.hget("h", "name"), "ada");
    assert.deepEqual(await redis.hmget("h", "name", "nope"), { name: "ada", nope: null });
    assert.equal(await redis.hgetall("nohash"), null);
  });

  test("sorted sets", async () => {
    assert.equal(await redis.zadd("z", { score: 1, member: "a" }, { score: 2.5, member: "b" }), 2);
    assert.equal(await redis.zincrby("z", 2, "a"), 3);
    assert.deepEqual(await redis.zrange("z", 0, -1), ["b", "a"]);
    assert.deepEqual(await redis.zrange("z", 0, -1, { withScores: true }), ["b", 2.5, "a", 3]);
    assert.equal(await redis.zscore("z", "b"), 2.5);
    assert.equal(await redis.zcard("z"), 2);
  });

  test("pipeline with a failing command", async () => {
    const p = redis.pipeline();
    p.set("p1", "1").incr("p1").hset("p1", { f: "v" }).get("p1");
    const res = await p.exec({ keepErrors: true });
    assert.equal(res[0].result, "OK");
    assert.equal(res[1].result, 2);
    assert.match(res[2].error, /WRONGTYPE/);
    assert.equal(res[3].result, 2);
    await assert.rejects(redis.pipeline().set("p2", "x").incr("p2").exec(), /not an integer/);
  });

  test("multi/exec transaction", async () => {
    const res = await redis.multi().set("t", 1).incr("t").get("t").exec();
    assert.deepEqual(res, ["OK", 2, 2]);
  });

  test("auto-pipelining batches concurrent commands", async () => {
    const auto = new Redis({ url: stack.url, token: stack.token, enableAutoPipelining: true });
    const results = await Promise.all(Array.from({ length: 50 }, () => auto.incr("ap")));
    assert.deepEqual(
      [...results].sort((a, b) => a - b),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    const [a, b] = await Promise.all([auto.set("ap2", "v"), auto.get("ap")]);
    assert.equal(a, "OK");
    assert.equal(b, 50);
    assert.ok(auto.pipelineCounter >= 1 && auto.pipelineCounter <= 4, `pipelines: ${auto.pipelineCounter}`);
  });

  test("eval, scriptLoad, evalsha and createScript", async () => {
    const src = "#!lua flags=allow-key-locking\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])";
    const sha = await redis.scriptLoad(src);
    assert.match(sha, /^[0-9a-f]{40}$/);
    assert.deepEqual(await redis.scriptExists(sha), [1]);
    assert.equal(await redis.evalsha(sha, ["e"], [5]), 5);
    assert.equal(await redis.eval(src, ["e"], [1]), 6);
    assert.equal(await redis.eval("return ARGV[1]", [], ["hi"]), "hi");

    // createScript tries EVALSHA and falls back to EVAL on NOSCRIPT.
    await redis.scriptFlush();
    const script = redis.createScript("#!lua flags=allow-key-locking\nreturn {KEYS[1], ARGV[1]}");
    assert.deepEqual(await script.exec(["k"], ["v"]), ["k", "v"]);
    assert.deepEqual(await script.exec(["k2"], ["v2"]), ["k2", "v2"]);
    await assert.rejects(redis.evalsha("0".repeat(40), [], []), /NOSCRIPT/);
  });

  test("wrong token is refused", async () => {
    const bad = new Redis({ url: stack.url, token: "wrong", retry: false });
    await assert.rejects(bad.get("s"), /Unauthorized/);
  });
});
