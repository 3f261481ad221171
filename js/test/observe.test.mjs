// onDecision and dryRun: every decision and failure is reported with what
// was decided and how long the store took; a dry run reports denials but
// never denies. Memory store here, the Redis store through the real gateway.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { stackForTests } from "../../tools/js/testkit.mjs";
import { memoryStore, Ratelimit, redisStore } from "./edgelimit.mjs";
import { readmeExample, runExample } from "./readme.mjs";

const stack = stackForTests({ before, after });

test("onDecision sees each decision; a dry run never denies", async () => {
  const events = [];
  for (const dryRun of [false, true]) {
    events.length = 0;
    const rl = new Ratelimit({
      limiter: Ratelimit.fixedWindow(1, "1 m"),
      store: memoryStore(),
      prefix: "obs:",
      onDecision: (event) => events.push(event),
      dryRun,
    });
    const first = await rl.limit("u");
    const second = rl.limitSync("u", { cost: 1 });
    assert.equal(first.success, true);
    assert.equal(second.success, dryRun, "a dry run admits what the limit denies");
    assert.equal(second.reason, dryRun ? "dryRun" : undefined);
    assert.equal(second.remaining, 0);
    assert.deepEqual(
      events.map(({ id, cost, prefix, algorithm, success, remaining, storeMs }) => ({
        id,
        cost,
        prefix,
        algorithm,
        success,
        remaining,
        storeMs,
      })),
      [
        { id: "u", cost: 1, prefix: "obs:", algorithm: "fixedWindow", success: true, remaining: 0, storeMs: 0 },
        { id: "u", cost: 1, prefix: "obs:", algorithm: "fixedWindow", success: false, remaining: 0, storeMs: 0 },
      ],
    );
    assert.ok(events.every((e) => e.dryRun === dryRun));
  }
});

test("onDecision reports the store's latency and failures; its own errors change nothing", async () => {
  const events = [];
  const rl = new Ratelimit({
    limiter: Ratelimit.slidingWindow(5, "1 m"),
    store: redisStore({ url: stack.gateway.url, token: stack.gateway.token }),
    prefix: `obs${process.pid}:`,
    onDecision: (event) => events.push(event),
  });
  assert.equal((await rl.limit("a")).remaining, 4);
  assert.equal(events.length, 1);
  assert.ok(events[0].storeMs > 0 && events[0].storeMs < 2_000, `storeMs ${events[0].storeMs}`);

  const down = new Ratelimit({
    limiter: Ratelimit.slidingWindow(5, "1 m"),
    store: redisStore({ url: "http://127.0.0.1:9", token: "t", retries: 0 }),
    onDecision: (event) => events.push(event),
  });
  // Refused (node:http tells) or unavailable (fetch does not say why).
  const thrown = await down.limit("b").then(
    () => undefined,
    (error) => error,
  );
  assert.match(thrown?.code ?? "", /^STORE_UNREACHABLE|STORE_UNAVAILABLE$/);
  assert.equal(events.at(-1).error, thrown);
  assert.equal(events.at(-1).success, undefined);

  // A throwing observer is reported, and the decision stands.
  const reported = [];
  const realReport = globalThis.reportError;
  const realConsole = console.error;
  globalThis.reportError = (error) => reported.push(error);
  console.error = (...args) => reported.push(args.at(-1));
  try {
    const loud = new Ratelimit({
      limiter: Ratelimit.fixedWindow(2, "1 m"),
      onDecision: () => {
        throw new Error("observer bug");
      },
    });
    assert.equal((await loud.limit("c")).success, true);
    assert.equal(reported.at(-1).message, "observer bug");
  } finally {
    globalThis.reportError = realReport;
    console.error = realConsole;
  }
});

test("onDecision and dryRun are checked", () => {
  const limiter = Ratelimit.fixedWindow(1, "1 m");
  assert.throws(() => new Ratelimit({ limiter, onDecision: "log" }), { code: "INVALID_ARGUMENT" });
  assert.throws(() => new Ratelimit({ limiter, dryRun: "yes" }), { code: "INVALID_ARGUMENT" });
});

test("the README's observability example runs as written", async () => {
  const { counts, ratelimit } = await runExample(readmeExample("dryRun: true"), "export { counts, ratelimit };");
  assert.deepEqual(counts, { allowed: 2, denied: 1, failed: 0 });
  const fourth = await ratelimit.limit("203.0.113.7");
  assert.deepEqual([fourth.success, fourth.reason], [true, "dryRun"]);
});
