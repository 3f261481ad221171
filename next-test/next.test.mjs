// The package in a Next.js app as users write one: an edge middleware and
// an edge route handler (next-test/), built with `next build` (Turbopack,
// and webpack) and served by `next start` on 127.0.0.1, whose edge runtime
// is where the module must load (and where Next's own build evaluates it). run.sh puts the built package (pkg/) in
// node_modules/edgelimit first.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePort } from "../tools/js/testkit.mjs";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const NEXT = `${HERE}node_modules/next/dist/bin/next`;
const ENV = { ...process.env, NEXT_TELEMETRY_DISABLED: "1" };

/** `next start` in `cwd` of the build in `distDir`; resolves once it answers. */
async function start(cwd, distDir) {
  const port = await freePort();
  const child = spawn(process.execPath, [NEXT, "start", "-H", "127.0.0.1", "-p", String(port)], {
    cwd,
    env: { ...ENV, NEXT_DIST_DIR: distDir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const stop = () =>
    new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", resolve);
      child.kill("SIGTERM");
    });
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`next start exited:\n${output}`);
    try {
      await fetch(`${url}/`);
      return { url, stop, output: () => output };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await stop();
  throw new Error(`next start did not answer:\n${output}`);
}

/** Runs `next build` with `args` in `cwd` into `distDir`. */
function build(cwd, distDir, args = []) {
  const built = spawnSync(process.execPath, [NEXT, "build", ...args], {
    cwd,
    env: { ...ENV, NEXT_DIST_DIR: distDir },
  });
  assert.equal(built.status, 0, `next build failed:\n${built.stdout}\n${built.stderr}`);
}

/** The edge route handler: 2 calls per minute and id. */
async function checkRoute(server) {
  const route = [];
  for (let i = 0; i < 3; i++) {
    const response = await fetch(`${server.url}/api/limit?id=alice`);
    route.push([response.status, (await response.json()).remaining, response.headers.get("x-ratelimit-limit")]);
  }
  assert.deepEqual(
    route,
    [
      [200, 1, "2"],
      [200, 0, "2"],
      [429, 0, "2"],
    ],
    server.output(),
  );
  assert.equal((await fetch(`${server.url}/api/limit?id=bob`)).status, 200, "another id has its own limit");
}

/** The edge middleware: 3 per minute and client, on /limited only. */
async function checkMiddleware(server) {
  const statuses = [];
  for (let i = 0; i < 4; i++) {
    const response = await fetch(`${server.url}/limited`, { headers: { "x-test-client": "carol" } });
    statuses.push(response.status);
    assert.match(response.headers.get("ratelimit") ?? "", /r=\d+/, server.output());
    await response.arrayBuffer();
  }
  assert.deepEqual(statuses, [200, 200, 200, 429], server.output());
  const home = await fetch(`${server.url}/`, { headers: { "x-test-client": "carol" } });
  assert.equal(home.status, 200);
  assert.equal(home.headers.get("ratelimit"), null, "the middleware only matches /limited");
}

test("next build (Turbopack) + next start: the edge middleware and route handler limit", async () => {
  build(HERE, ".next-turbopack");
  const server = await start(HERE, ".next-turbopack");
  try {
    await checkRoute(server);
    await checkMiddleware(server);
  } finally {
    await server.stop();
  }
});

// Next 16.4's webpack build fails on any edge route handler, ours or an
// empty one ("Failed to collect page data": a missing client reference
// manifest), so the webpack build is of a copy of the app without it.
test("next build --webpack + next start: the edge middleware limits", async () => {
  const copy = mkdtempSync(join(tmpdir(), "edgelimit-next-webpack-"));
  try {
    for (const part of ["app", "middleware.js", "next.config.mjs", "package.json"]) {
      cpSync(join(HERE, part), join(copy, part), { recursive: true });
    }
    rmSync(join(copy, "app", "api"), { recursive: true });
    symlinkSync(join(HERE, "node_modules"), join(copy, "node_modules"));
    build(copy, ".next-webpack", ["--webpack"]);
    const server = await start(copy, ".next-webpack");
    try {
      await checkMiddleware(server);
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
});
