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

test("without CF-Connecting-IP a request is refused; X-Forwarded-For buys nothing", async () => {
  const client = newClient();
  await assertBurst(worker, client, "memory");
  for (const forwarded of ["192.0.2.50", client, `${client}, 10.0.0.1`]) {
    const response = await fetch(worker.url, { headers: { "X-Forwarded-For": forwarded } });
    assert.equal(response.status, 400, forwarded);
    assert.match(await response.text(), /cannot be identified/);
  }
  // Rotating the header next to Cloudflare's changes nothing either.
  const rotated = await fetch(worker.url, { headers: { "CF-Connecting-IP": client, "X-Forwarded-For": "192.0.2.51" } });
  await rotated.arrayBuffer();
  assert.equal(rotated.status, 429);
});
