// `make demo`: the example Worker in workerd, a burst of requests from one
// client, and what the rate limiter answered to each.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundle } from "./lib/bundle.mjs";
import { startWorkerd } from "./lib/workerd.mjs";

const BURST = 8;
const CLIENT = "203.0.113.7";
const SHOWN = [
  "RateLimit-Policy",
  "RateLimit",
  "Retry-After",
  "X-RateLimit-Limit",
  "X-RateLimit-Remaining",
  "X-RateLimit-Reset",
];

const seconds = (since) => `${((performance.now() - since) / 1000).toFixed(1)} s`;
const dir = mkdtempSync(join(tmpdir(), "edgelimit-demo-"));
let worker;
try {
  let started = performance.now();
  const built = await bundle(dir);
  const sizes = built.modules.map((m) => `${m.name.replace(/^[0-9a-f]{40}-/, "")} ${kb(join(dir, m.name))}`);
  console.log(`Bundled worker-example/src/index.js with wrangler in ${seconds(started)}: ${sizes.join(", ")}`);

  started = performance.now();
  worker = await startWorkerd(built);
  console.log(`workerd serves it at ${worker.url} (started in ${seconds(started)}), in-memory store`);
  console.log(`The limit: 5 requests per sliding 10 s per client IP (CF-Connecting-IP).\n`);

  console.log(`${BURST} requests from ${CLIENT} in a row:\n`);
  const rows = [];
  let firstBody, deniedBody;
  for (let i = 1; i <= BURST; i++) {
    const response = await fetch(worker.url, { headers: { "CF-Connecting-IP": CLIENT } });
    const body = await response.text();
    if (response.ok) firstBody ??= body;
    else deniedBody ??= body;
    rows.push([`#${i}`, `${response.status}`, ...SHOWN.map((h) => response.headers.get(h) ?? "-")]);
  }
  printTable(["", "status", ...SHOWN], rows);
  console.log(`
  RateLimit-Policy  q= requests allowed per w= seconds
  RateLimit         r= requests remaining, t= seconds until fully reset
  Retry-After       on a 429: seconds until a request can pass again
  X-RateLimit-*     the same as the older, widespread headers (Reset in Unix seconds)`);

  console.log(`\nBody of a 200: ${firstBody}`);
  console.log(`Body of a 429: ${deniedBody?.trim()}`);
  const other = await fetch(worker.url, { headers: { "CF-Connecting-IP": "198.51.100.20" } });
  await other.arrayBuffer();
  console.log(
    `\nAnother client (198.51.100.20) meanwhile: ${other.status}, ` +
      `X-RateLimit-Remaining ${other.headers.get("X-RateLimit-Remaining")}: each client has its own usage.`,
  );
} finally {
  await worker?.stop();
  rmSync(dir, { recursive: true, force: true });
}
console.log("workerd stopped.");

function kb(path) {
  return `${(statSync(path).size / 1024).toFixed(1)} KiB`;
}

function printTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const padded = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  const line = (cells) => `  ${padded(cells).trimEnd()}`;
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}
