// Starts a real redis-server and the real gateway binary on free loopback
// ports for the client tests; stop() always ends both.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const TOKEN = "node-test-token-5c4b";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(check, what, limitMs = 10_000) {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not start within ${limitMs} ms`);
}

export async function startStack() {
  const bin = process.env.GATEWAY_BIN;
  if (!bin) throw new Error("GATEWAY_BIN must point to the edgelimit-gateway binary");
  const dir = mkdtempSync(join(tmpdir(), "edgelimit-gw-node-"));
  const children = [];
  const stop = () => {
    for (const c of children) {
      if (c.exitCode === null) c.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Also on a crash of the test process itself.
  process.once("exit", stop);
  try {
    const redisPort = await freePort();
    const redis = spawn(
      "redis-server",
      ["--bind", "127.0.0.1", "--port", String(redisPort), "--save", "", "--appendonly", "no", "--dir", dir],
      { stdio: "ignore" },
    );
    children.push(redis);
    await waitFor(
      () => execFileSync("redis-cli", ["-p", String(redisPort), "ping"]).toString().trim() === "PONG",
      "redis-server",
    );
    const gwPort = await freePort();
    const gw = spawn(
      bin,
      ["--listen", `127.0.0.1:${gwPort}`, "--redis-url", `redis://127.0.0.1:${redisPort}`, "--token", TOKEN],
      { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, EDGELIMIT_GATEWAY_LOG: "warn" } },
    );
    children.push(gw);
    const url = `http://127.0.0.1:${gwPort}`;
    await waitFor(async () => (await fetch(`${url}/healthz`)).ok, "gateway");
    const cli = (...args) => execFileSync("redis-cli", ["-p", String(redisPort), ...args]).toString().trim();
    return { url, token: TOKEN, cli, stop };
  } catch (e) {
    stop();
    throw e;
  }
}

// Waits until at least `marginMs` remain in the current window of
// `windowMs`, so a burst never straddles a window boundary.
export async function awayFromBoundary(windowMs, marginMs = 3000) {
  const left = windowMs - (Date.now() % windowMs);
  if (left < marginMs) await new Promise((r) => setTimeout(r, left + 50));
}
