// What every Worker test needs: the bundle, requests as a client, and what
// the rate-limit headers must say for the example's 5 per sliding 10 s.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundle, describeBundle } from "../lib/bundle.mjs";

export const LIMIT = 5;
export const WINDOW_S = 10;

/** The Worker bundled by wrangler: the one `run.sh test` made, or a new one. */
export async function workerBundle() {
  if (process.env.WORKER_BUNDLE) return describeBundle(process.env.WORKER_BUNDLE);
  const dir = mkdtempSync(join(tmpdir(), "edgelimit-worker-"));
  // At exit, not in an after() hook: the bundle serves every suite of the file.
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  return bundle(dir);
}

/** A distinct client address per call, so tests never share usage by accident. */
let clients = 0;
export const newClient = () => `198.51.100.${++clients}`;

/** One request as `client`; the body read, so the connection is reusable. */
export async function hit(worker, client) {
  const response = await fetch(worker.url, { headers: { "CF-Connecting-IP": client } });
  let body = await response.text();
  // A 500 is an exception in the Worker: workerd printed why.
  if (response.status >= 500) body += `\n--- workerd output ---\n${worker.logs()}`;
  return { status: response.status, headers: response.headers, body };
}

/** `parameters('"default";q=5;w=10')` is `{q: 5, w: 10}`. */
function parameters(field) {
  assert.match(field ?? "", /^"default"(;[a-z]+=\d+)+$/, `structured field ${field}`);
  return Object.fromEntries(
    field
      .split(";")
      .slice(1)
      .map((p) => p.split("="))
      .map(([k, v]) => [k, Number(v)]),
  );
}

/** The headers of any limited response, checked against each other and the limit. */
function assertHeaders(res, remaining) {
  const h = res.headers;
  assert.deepEqual(parameters(h.get("RateLimit-Policy")), { q: LIMIT, w: WINDOW_S });
  const { r, t } = parameters(h.get("RateLimit"));
  assert.equal(r, remaining, "RateLimit r= is the remaining count");
  assert.equal(h.get("X-RateLimit-Limit"), String(LIMIT));
  assert.equal(h.get("X-RateLimit-Remaining"), String(remaining));
  // A sliding window that has been used is fully reset at most two windows on.
  assert.ok(t >= 1 && t <= 2 * WINDOW_S, `RateLimit t=${t} within two windows`);
  // X-RateLimit-Reset is the same instant as t, in Unix seconds (±2: three roundings up).
  const reset = Number(h.get("X-RateLimit-Reset"));
  const expected = Math.ceil(Date.now() / 1000) + t;
  assert.ok(Math.abs(reset - expected) <= 2, `X-RateLimit-Reset ${reset} is now + t (${expected})`);
  return { t };
}

/** A 200 from the example's handler, with exactly `remaining` left. */
export function assertAdmitted(res, remaining, store) {
  assert.equal(res.status, 200, `expected 200, got ${res.status}: ${res.body}`);
  assert.deepEqual(JSON.parse(res.body), { message: "Hello from behind the rate limiter", store });
  assert.equal(res.headers.get("Retry-After"), null, "no Retry-After on an admitted request");
  assertHeaders(res, remaining);
}

/** A 429 with Retry-After: whole seconds, at least 1, no later than the full reset. */
export function assertDenied(res) {
  assert.equal(res.status, 429, `expected 429, got ${res.status}: ${res.body}`);
  const { t } = assertHeaders(res, 0);
  const retryAfter = res.headers.get("Retry-After");
  assert.match(retryAfter ?? "", /^\d+$/, "Retry-After is delta-seconds");
  assert.ok(Number(retryAfter) >= 1 && Number(retryAfter) <= t, `Retry-After ${retryAfter} in [1, ${t}]`);
}

/** LIMIT requests admitted with remaining LIMIT-1 … 0, then `denied` more refused. */
export async function assertBurst(worker, client, store, denied = 2) {
  for (let remaining = LIMIT - 1; remaining >= 0; remaining--) {
    assertAdmitted(await hit(worker, client), remaining, store);
  }
  for (let i = 0; i < denied; i++) assertDenied(await hit(worker, client));
}
