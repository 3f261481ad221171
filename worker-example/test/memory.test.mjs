// The example Worker in workerd with its default in-memory store.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startWorkerd } from "../lib/workerd.mjs";
import { assertAdmitted, assertBurst, assertDenied, hit, newClient, workerBundle } from "./helpers.mjs";

let worker;
before(async () => {
  worker = await startWorkerd(await workerBundle());
});
after(() => worker?.stop());

test("5 requests pass with exact remaining counts, then 429 with Retry-After", async () => {
  await assertBurst(worker, newClient(), "memory", 3);
});

test("clients do not share usage", async () => {
  const [first, second] = [newClient(), newClient()];
  await assertBurst(worker, first, "memory");
  assertAdmitted(await hit(worker, second), 4, "memory");
  assertDenied(await hit(worker, first));
  assertAdmitted(await hit(worker, second), 3, "memory");
});

test("without CF-Connecting-IP, X-Forwarded-For's first address is the client", async () => {
  const headers = { "X-Forwarded-For": "192.0.2.50, 10.0.0.1" };
  const first = await fetch(worker.url, { headers });
  await first.arrayBuffer();
  assert.equal(first.headers.get("X-RateLimit-Remaining"), "4");
  // The same client seen through CF-Connecting-IP has used one already.
  assertAdmitted(await hit(worker, "192.0.2.50"), 3, "memory");
});
