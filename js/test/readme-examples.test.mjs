// Every JavaScript example of the README, run as written (its imports
// pointed at the built package) so the docs cannot drift. The Worker example
// runs in workerd (worker-example/test/round-trips.test.mjs) and the Deno one
// under `deno serve` (tools/check-pkg.sh); the ones that use Redis read
// UPSTASH_REDIS_REST_URL and _TOKEN, set here to a real gateway.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { startGateway, startRedis } from "../../tools/js/testkit.mjs";
import { asCloudflareWorkers } from "./edgelimit.mjs";
import { runExample } from "./readme.mjs";

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const blocks = [...README.matchAll(/```(js|ts)\n([\s\S]*?)```/g)].map(([, lang, code]) => ({ lang, code }));

// Where each example runs, by a line only it has.
const elsewhere = [
  ["export default { fetch: withRateLimit", "workerd: worker-example/test/round-trips.test.mjs"],
  ["deno serve main.ts", "deno serve: tools/check-pkg.sh"],
];
const asWorkers = ['from "edgelimit/hono"'];

let redis;
let gateway;
before(async () => {
  redis = await startRedis();
  gateway = await startGateway(redis.port);
  const env = { UPSTASH_REDIS_REST_URL: gateway.url, UPSTASH_REDIS_REST_TOKEN: gateway.token };
  for (const [name, value] of Object.entries(env)) {
    if (globalThis.Deno) Deno.env.set(name, value);
    else process.env[name] = value;
  }
});
after(async () => {
  await gateway?.stop();
  await redis?.stop();
});

test("the README has its examples", () => {
  assert.ok(blocks.length >= 8, `${blocks.length} examples`);
  for (const [marker] of elsewhere) {
    assert.equal(blocks.filter((b) => b.code.includes(marker)).length, 1, marker);
  }
});

for (const [i, { lang, code }] of blocks.entries()) {
  const place = elsewhere.find(([marker]) => code.includes(marker));
  const first = code.split("\n").find((line) => line.trim() && !line.startsWith("import")) ?? "";
  test(`README example ${i + 1} (${first.trim().slice(0, 50)}) runs as written`, { skip: place?.[1] }, async () => {
    assert.equal(lang, "js", "TypeScript examples run where their runtime is");
    const run = () => runExample(code);
    const module = asWorkers.some((marker) => code.includes(marker)) ? await asCloudflareWorkers(run) : await run();
    assert.ok(module !== undefined);
  });
}
