// `await using` releases a permit at the end of its block. Deno runs this
// file (TypeScript, explicit resource management); Node 20 cannot parse
// the syntax yet, and its runner skips .ts files.
import assert from "node:assert/strict";
import { test } from "node:test";
// biome-ignore lint/suspicious/noTsIgnore: whether this import errors depends on the checker (Deno infers the JS module's types), so @ts-expect-error would fail where it does not.
// @ts-ignore: the helper module is untyped JavaScript.
import { Concurrency } from "./edgelimit.mjs";

test("await using releases the permit", async () => {
  const leases = new Concurrency({ max: 1, leaseTtl: "1 m" });
  {
    await using permit = await leases.acquire("k");
    assert.ok(permit.acquired);
    assert.equal((await leases.acquire("k")).acquired, false, "held inside the block");
  }
  assert.deepEqual(await leases.getRemaining("k"), { remaining: 1, limit: 1 });
});
