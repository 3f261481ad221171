// A throwaway redis-server and edgelimit-gateway on free 127.0.0.1 ports,
// for the Redis store tests: the real programs, not mocks.
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { repoDir } from "./bundle.mjs";
import { stopOnExit } from "./workerd.mjs";

export const GATEWAY_TOKEN = "worker-test-token";

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "edgelimit-redis-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const server = start("redis-server", [
    "--port", String(port), "--bind", "127.0.0.1", "--dir", dir,
    "--save", "", "--appendonly", "no",
  ]);
  await waitFor(server, () => redisCommand(port, "PING").then((reply) => reply === "PONG"));
  return { ...server, port, command: (...args) => redisCommand(port, ...args) };
}

/** A gateway over the Redis at `redisPort`, on `port` (default: a free one). */
export async function startGateway(redisPort, port) {
  const bin = process.env.EDGELIMIT_GATEWAY_BIN ?? join(repoDir, "target/debug/edgelimit-gateway");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: \`make test-deps\` builds it`);
  port ??= await freePort();
  const url = `http://127.0.0.1:${port}`;
  const gateway = start(bin, [
    "--listen", `127.0.0.1:${port}`,
    "--redis-url", `redis://127.0.0.1:${redisPort}`,
    "--token", GATEWAY_TOKEN,
  ], { EDGELIMIT_GATEWAY_LOG: "warn" });
  await waitFor(gateway, () => fetch(`${url}/healthz`).then((r) => r.ok));
  return { ...gateway, port, url, token: GATEWAY_TOKEN };
}

/**
 * An HTTP proxy in front of `target` (a gateway) that counts the requests
 * it forwards: how many round trips a store makes.
 */
export async function startCountingProxy(target) {
  if (globalThis.Deno) return startCountingProxyDeno(target);
  const seen = [];
  const server = createHttpServer(async (request, response) => {
    const chunks = [];
    for await (const chunk of request) chunks.push(chunk);
    const body = Buffer.concat(chunks).toString();
    seen.push({ path: request.url, body });
    try {
      const forwarded = await fetch(`${target}${request.url}`, {
        method: request.method,
        headers: { authorization: request.headers.authorization ?? "", "content-type": "application/json" },
        body: request.method === "POST" ? body : undefined,
      });
      response.writeHead(forwarded.status, { "content-type": "application/json" });
      response.end(await forwarded.text());
    } catch (error) {
      response.writeHead(502);
      response.end(String(error));
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** The requests forwarded since the last call. */
    take: () => seen.splice(0),
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}

/**
 * The same proxy on Deno's own server: Deno's node:http server now and then
 * never ends a request body read with `for await`, which stalled a test for
 * a minute at a time.
 */
async function startCountingProxyDeno(target) {
  const seen = [];
  const { promise: listening, resolve } = Promise.withResolvers();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: resolve }, async (request) => {
    const url = new URL(request.url);
    const body = await request.text();
    seen.push({ path: url.pathname, body });
    try {
      const forwarded = await fetch(`${target}${url.pathname}`, {
        method: request.method,
        headers: { authorization: request.headers.get("authorization") ?? "", "content-type": "application/json" },
        body: request.method === "POST" ? body : undefined,
      });
      return new Response(await forwarded.text(), {
        status: forwarded.status,
        headers: { "content-type": "application/json" },
      });
    } catch (error) {
      return new Response(String(error), { status: 502 });
    }
  });
  const { port } = await listening;
  return {
    url: `http://127.0.0.1:${port}`,
    take: () => seen.splice(0),
    stop: () => server.shutdown(),
  };
}

function start(command, args, env = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
  stopOnExit(child);
  let stderr = "";
  let running = true;
  child.stderr.on("data", (d) => (stderr += d));
  // "error" instead of "exit" when it could not be started at all.
  const exited = new Promise((resolve) => {
    child.once("exit", resolve);
    child.once("error", (error) => resolve((stderr += `${error.message}\n`)));
  }).then(() => (running = false));
  return {
    name: command,
    running: () => running,
    stderr: () => stderr,
    stop: async () => {
      if (running) child.kill("SIGTERM");
      await exited;
    },
  };
}

async function waitFor(service, ready, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!service.running()) {
      throw new Error(`${service.name} exited at start: ${service.stderr()}`);
    }
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) {
      await service.stop();
      throw new Error(`${service.name} was not ready within ${ms} ms: ${service.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

// redis-cli comes with redis-server (tools/ensure-redis.sh installs both).
async function redisCommand(port, ...args) {
  const { stdout } = await promisify(execFile)("redis-cli", ["-p", String(port), ...args]);
  return stdout.trim();
}
