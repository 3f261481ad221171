// The example Worker in workerd with the Redis store: a real redis-server
// behind the real edgelimit-gateway, reached over loopback HTTP.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startGateway, startRedis } from "../../tools/js/testkit.mjs";
import { startWorkerd } from "../lib/workerd.mjs";
import { assertAdmitted, assertBurst, assertDenied, hit, newClient, workerBundle } from "./helpers.mjs";

let bundle, redis, gateway;
const running = [];
async function worker(gw, vars = {}) {
  const started = await startWorkerd(bundle, { REDIS_URL: gw.url, REDIS_TOKEN: gw.token, ...vars });
  running.push(started);
  return started;
}

before(async () => {
  bundle = await workerBundle();
  redis = await startRedis();
  gateway = await startGateway(redis.port);
});
after(async () => {
  await Promise.all(running.map((w) => w.stop()));
  await gateway?.stop();
  await redis?.stop();
});

describe("Redis store", () => {
  let a, b;
  before(async () => {
    [a, b] = await Promise.all([worker(gateway), worker(gateway)]);
  });

  test("5 requests pass with exact remaining counts, then 429 with Retry-After", async () => {
    await assertBurst(a, newClient(), "redis");
  });

  test("the counts are in Redis, under the limiter's prefix", async () => {
    const client = newClient();
    assertAdmitted(await hit(a, client), 4, "redis");
    const keys = await redis.command("--scan", "--pattern", `*${client}*`);
    assert.match(keys, /edgelimit/, `a key for ${client} in Redis: ${JSON.stringify(keys)}`);
  });

  test("clients do not share usage", async () => {
    const [first, second] = [newClient(), newClient()];
    await assertBurst(a, first, "redis");
    assertAdmitted(await hit(a, second), 4, "redis");
    assertDenied(await hit(b, first));
  });

  test("two workerd processes share one limit", async () => {
    const client = newClient();
    assertAdmitted(await hit(a, client), 4, "redis");
    assertAdmitted(await hit(b, client), 3, "redis");
    assertAdmitted(await hit(a, client), 2, "redis");
    assertAdmitted(await hit(b, client), 1, "redis");
    assertAdmitted(await hit(b, client), 0, "redis");
    assertDenied(await hit(a, client));
    assertDenied(await hit(b, client));
  });
});

describe("with the gateway stopped", () => {
  let down, open, closed;
  before(async () => {
    // A gateway of their own, so stopping it leaves the other tests theirs.
    down = await startGateway(redis.port);
    [open, closed] = await Promise.all([worker(down, { FAILURE: "open" }), worker(down, { FAILURE: "closed" })]);
    // Both were using Redis before it went away.
    assertAdmitted(await hit(open, newClient()), 4, "redis");
    assertAdmitted(await hit(closed, newClient()), 4, "redis");
    await down.stop();
  });
  after(() => down?.stop());

  test("FAILURE=open lets requests through", async () => {
    const client = newClient();
    for (let i = 0; i < 7; i++) {
      const res = await hit(open, client);
      assert.equal(res.status, 200, res.body);
      assert.equal(JSON.parse(res.body).store, "redis");
    }
  });

  test("FAILURE=closed answers 429, retry after 1 s", async () => {
    const res = await hit(closed, newClient());
    assert.equal(res.status, 429, res.body);
    assert.equal(res.headers.get("Retry-After"), "1");
  });

  test("both recover when the gateway is back", async () => {
    // On the same port: the Workers' REDIS_URL still points there.
    down = await startGateway(redis.port, { port: down.port });
    assertAdmitted(await hit(open, newClient()), 4, "redis");
    assertAdmitted(await hit(closed, newClient()), 4, "redis");
    await down.stop();
  });
});
