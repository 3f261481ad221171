// Deny and allow lists: decided before the store (memory and Redis through
// the real gateway), shared and changeable at run time, and the answers of
// withRateLimit and rateLimitHeaders for them.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { stackForTests } from "../../tools/js/testkit.mjs";
import {
  accessList,
  atTime,
  EdgelimitError,
  memoryStore,
  Ratelimit,
  rateLimitHeaders,
  redisStore,
  throttle,
  withRateLimit,
} from "./edgelimit.mjs";

const stack = stackForTests({ before, after });

const T0 = 1_700_000_000_000;
const numbers = (r) => [r.success, r.remaining, r.retryAfter, r.reset, r.reason];

test("listed ids are decided without the store and nothing is counted", () =>
  atTime({ now: T0 }, () => {
    const lists = accessList({ deny: ["203.0.113.0/24", "user:bad"], allow: ["203.0.113.9", "user:ops"] });
    const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(2, "1 m"), accessList: lists });
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(numbers(rl.limitSync("203.0.113.7")), [false, 0, Infinity, Infinity, "denyList"]);
      assert.deepEqual(numbers(rl.limitSync("user:ops", { cost: 2 })), [true, 2, 0, T0, "allowList"]);
    }
    assert.equal(rl.limitSync("203.0.113.9").reason, "allowList", "the more specific entry decides");
    // Unlisted: the window's own numbers (fixed windows end on the minute).
    assert.deepEqual(numbers(rl.limitSync("user:x")), [true, 1, 0, Math.ceil(T0 / 60_000) * 60_000, undefined]);
    lists.clear();
    assert.equal(lists.size, 0);
    for (const id of ["203.0.113.7", "user:ops"]) assert.equal(rl.limitSync(id).remaining, 1, id);
  }));

test("lists are shared by limiters and change at run time", async () => {
  const lists = accessList();
  const a = new Ratelimit({ limiter: Ratelimit.slidingWindow(1, "1 h"), accessList: lists });
  const b = new Ratelimit({ limiter: Ratelimit.gcra(1, "1 h"), accessList: lists });
  assert.equal((await a.limit("2001:db8:1:2::/64")).success, true);
  assert.equal((await a.limit("2001:db8:1:2::/64")).success, false);
  assert.equal(lists.allow("2001:db8::/32"), lists, "chainable");
  assert.equal(lists.check("2001:db8:1:2::/64"), "allow");
  assert.equal((await a.limit("2001:db8:1:2::/64")).reason, "allowList");
  lists.deny("2001:db8:1::/48");
  for (const rl of [a, b]) assert.equal((await rl.limit("2001:db8:1:2::/64")).reason, "denyList");
  assert.equal(lists.check("2001:db8:2::1"), "allow");
  assert.equal(lists.check("user:1"), undefined);
  assert.equal(lists.remove("2001:db8:1::/48"), true);
  assert.equal(lists.remove("2001:db8:1::/48"), false);
  assert.equal(lists.size, 1);
});

test("waiting forms give up at once on a deny-listed id instead of waiting forever", async () => {
  const lists = accessList({ deny: ["user:bad"] });
  const rl = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 h"), accessList: lists });
  const started = Date.now();
  const outcome = await rl.blockUntilReady("user:bad", 60_000);
  assert.deepEqual([outcome.success, outcome.reason], [false, "denyList"]);
  let calls = 0;
  const run = throttle(() => ++calls, rl, { key: "user:bad" });
  await assert.rejects(run(), { code: "DENY_LISTED" });
  assert.equal(calls, 0);
  assert.ok(Date.now() - started < 5_000, "neither waited");
  // The throttle goes on for keys that are not listed.
  assert.equal(await throttle(() => "ran", rl, { key: "user:ok" })(), "ran");
});

test("bad entries are INVALID_ARGUMENT and list nothing; bad options are refused", () => {
  const lists = accessList({ deny: ["10.0.0.0/8"] });
  // A mistyped address, or a line read with its "\r", would otherwise be
  // an id no request ever has: a list entry that silently never matches.
  for (const bad of ["10.0.0.1/8", "10.0.0.0/33", "::/129", "10.0.0.256", "10.0.0.0/8\r", " user:1", "", 42, null]) {
    for (const call of [() => lists.deny(bad), () => lists.allow(bad), () => lists.remove(bad)]) {
      assert.throws(call, (error) => error instanceof EdgelimitError && error.code === "INVALID_ARGUMENT", String(bad));
    }
  }
  assert.equal(lists.size, 1);
  assert.throws(() => accessList({ deny: ["1.2.3.4", "1.2.3.4/8"] }), { code: "INVALID_ARGUMENT" });
  assert.throws(() => accessList({ deny: "1.2.3.4" }), { code: "INVALID_ARGUMENT" });
  assert.throws(() => accessList({ block: [] }), { code: "INVALID_CONFIG" });
  assert.throws(() => new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 s"), accessList: ["1.2.3.4"] }), {
    code: "INVALID_ARGUMENT",
  });
  // A Set works as well as an array.
  assert.equal(accessList({ allow: new Set(["a", "b"]) }).size, 2);
});

test("on Redis a listed id makes no request, and a failing store does not matter to it", async () => {
  const lists = accessList({ deny: ["10.0.0.0/8"], allow: ["user:ops"] });
  const prefix = `acl${process.pid}:`;
  const rl = new Ratelimit({
    limiter: Ratelimit.fixedWindow(1, "1 h"),
    store: redisStore({ url: stack.gateway.url, token: stack.gateway.token }),
    prefix,
    accessList: lists,
  });
  const answers = await Promise.all(["10.0.0.1", "user:a", "user:ops", "user:a"].map((id) => rl.limit(id)));
  assert.deepEqual(
    answers.map((r) => [r.success, r.reason]),
    [
      [false, "denyList"],
      [true, undefined],
      [true, "allowList"],
      [false, undefined],
    ],
  );
  const keys = await fetch(`${stack.gateway.url}/keys/${encodeURIComponent(`${prefix}*`)}`, {
    headers: { authorization: `Bearer ${stack.gateway.token}` },
  }).then((r) => r.json());
  assert.deepEqual(keys.result, [`${prefix}fw:3600000:{user:a}`], "only the unlisted id reached Redis");

  const down = new Ratelimit({
    limiter: Ratelimit.fixedWindow(1, "1 h"),
    store: redisStore({ url: "http://127.0.0.1:9", token: "t", retries: 0, timeout: 500 }),
    accessList: lists,
  });
  assert.equal((await down.limit("10.9.9.9")).reason, "denyList");
  assert.equal((await down.limit("user:ops")).reason, "allowList");
  // (Deno's fetch does not say whether a refused request was sent.)
  await assert.rejects(down.limit("user:other"), (error) =>
    ["STORE_UNREACHABLE", "STORE_UNAVAILABLE"].includes(error.code),
  );
});

test("withRateLimit answers 403 without Retry-After for the deny list; headers advertise no usage", async () => {
  const lists = accessList({ deny: ["user:bad"], allow: ["user:ops"] });
  const limiter = new Ratelimit({ limiter: Ratelimit.fixedWindow(1, "1 m"), store: memoryStore(), accessList: lists });
  const handler = withRateLimit(() => new Response("ok"), {
    limiter,
    key: (request) => request.headers.get("x-user"),
  });
  const call = (user) => handler(new Request("http://x/", { headers: { "x-user": user } }));
  const denied = await call("user:bad");
  assert.equal(denied.status, 403);
  assert.equal(denied.headers.get("Retry-After"), null);
  assert.equal(denied.headers.get("RateLimit"), null);
  assert.match(denied.headers.get("RateLimit-Policy"), /q=1/);
  for (let i = 0; i < 3; i++) assert.equal((await call("user:ops")).status, 200);
  assert.equal((await call("user:x")).status, 200);
  const limited = await call("user:x");
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get("Retry-After") !== null, true);
  const headers = rateLimitHeaders(limiter.algorithm, await limiter.limit("user:ops"));
  assert.equal(headers.get("X-RateLimit-Remaining"), null);
});
