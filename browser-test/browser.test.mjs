// The built package in headless Chromium: page.html runs scenarios against
// pkg/browser.js and reports what it measured; the assertions are here.
// The page is loaded once, then the browser and the server are stopped
// before any assertion runs, whatever happened.

import assert from "node:assert/strict";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { CHROMIUM, serve } from "./server.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
// Scheduling slack between the limiter's clock (Date.now) and the page's
// (performance.now), both read to the millisecond.
const SLACK_MS = 5;

let results;
let wasmType;
const problems = [];

before(async () => {
  const server = await serve(ROOT);
  let browser;
  try {
    // launch() gives each browser a fresh temporary profile.
    browser = await chromium.launch(CHROMIUM);
    const page = await browser.newPage();
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    // wasm-bindgen warns, then falls back, when the MIME type is wrong.
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") problems.push(message.text());
    });
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
      if (response.url().endsWith(".wasm")) wasmType = response.headers()["content-type"];
    });
    await page.goto(`${server.url}/browser-test/page.html`);
    try {
      await page.waitForFunction(() => window.results !== undefined, null, { timeout: 30_000 });
    } catch (error) {
      throw new Error(`the page reported nothing: ${problems.join("; ") || error.message}`);
    }
    results = await page.evaluate(() => window.results);
  } finally {
    await browser?.close();
    await server.close();
  }
});

/** A part of the results, failing with the page's own error if it threw. */
function part(name) {
  const value = results[name];
  assert.equal(value.failed, undefined, `${name} threw in the page:\n${value.failed}`);
  return value;
}

test("the module loads with no console error or warning, wasm served as application/wasm", () => {
  assert.match(results.userAgent, /HeadlessChrome|Chrome/);
  assert.equal(wasmType, "application/wasm");
  assert.deepEqual(problems, []);
});

test("throttle runs calls in order, spaced by the limiter", (t) => {
  const { intervalMs, burst, ran, values, completed } = part("spacing");
  t.diagnostic(`completed at ${completed.map((c) => c.ms.toFixed(1)).join(", ")} ms`);
  assert.equal(intervalMs, 100);
  assert.equal(burst, 2);
  assert.deepEqual(ran, [0, 1, 2, 3, 4, 5], "admitted in call order");
  assert.deepEqual(values, [0, 10, 20, 30, 40, 50]);
  assert.deepEqual(
    completed.map((c) => c.i),
    [0, 1, 2, 3, 4, 5],
    "completed in call order",
  );
  const ms = completed.map((c) => c.ms);
  // The burst goes at once.
  assert.ok(ms[1] - ms[0] < intervalMs / 2, `burst: ${ms}`);
  // GCRA with a burst of 2 guarantees j - i - 1 intervals between calls i
  // and j: consecutive calls may come closer only to catch up after a late
  // timer, never ahead of the schedule.
  for (let i = 0; i < ms.length; i++) {
    for (let j = i + 2; j < ms.length; j++) {
      const least = (j - i - 1) * intervalMs - SLACK_MS;
      assert.ok(ms[j] - ms[i] >= least, `calls ${i} and ${j}: ${ms[j] - ms[i]} ms < ${least} ms (${ms})`);
    }
  }
  // And no call waits far past its turn (4 intervals after the burst).
  assert.ok(ms[5] - ms[0] < 4 * intervalMs + 600, `too slow: ${ms}`);
});

test("aborting the signal rejects waiting calls with its reason", () => {
  const { ran, outcomes, settledMs, afterAbort } = part("abort");
  assert.deepEqual(ran, [0], "only the first call ran");
  assert.deepEqual(outcomes[0], { value: 0 });
  for (const waiting of outcomes.slice(1)) {
    assert.deepEqual(waiting, { sameReason: true, message: "user left the page" });
  }
  // At once, not when the minute is up.
  assert.ok(settledMs < 1000, `rejections took ${settledMs} ms`);
  assert.deepEqual(afterAbort, { sameReason: true, message: "user left the page" });
});

test("limitSync decides in the page", () => {
  const { now, results: calls, otherId } = part("sync");
  assert.deepEqual(
    calls.map((r) => [r.success, r.limit, r.remaining]),
    [
      [true, 2, 1],
      [true, 2, 0],
      [false, 2, 0],
    ],
  );
  // A fixed window of a minute ends on the next whole minute.
  const end = calls[0].reset;
  assert.equal(end % 60_000, 0);
  assert.ok(end > now && end <= now + 60_000 + SLACK_MS, `reset ${end}, now ${now}`);
  assert.deepEqual(
    calls.map((r) => r.reset),
    [end, end, end],
  );
  assert.equal(calls[0].retryAfter, 0);
  assert.ok(calls[2].retryAfter > 0 && calls[2].retryAfter <= end - now, `${calls[2].retryAfter}`);
  assert.ok(calls.every((r) => r.pendingIsPromise));
  assert.equal(otherId, 1, "another id has its own count");
});

test("errors are EdgelimitError with a code, from the core and from JS", () => {
  const errors = part("errors");
  const coded = (code) => ({
    thrown: true,
    isEdgelimitError: true,
    isError: true,
    name: "EdgelimitError",
    code,
  });
  assert.deepEqual(errors.zeroLimit, coded("INVALID_CONFIG"));
  assert.deepEqual(errors.badDuration, coded("INVALID_DURATION"));
  assert.deepEqual(errors.costAboveLimit, coded("COST_EXCEEDS_LIMIT"));
  assert.deepEqual(errors.noLimiter, coded("INVALID_ARGUMENT"));
  assert.deepEqual(errors.constructed, coded("UNSUPPORTED"));
  assert.equal(errors.plainErrorIsEdgelimitError, false);
});
