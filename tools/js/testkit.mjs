// The project's test kit: a throwaway redis-server and edgelimit-gateway on
// free 127.0.0.1 ports (the real programs, not mocks), a proxy counting the
// requests a store makes, and child processes that never outlive the test
// process. Node built-ins only, so that any npm project of the repository
// (js/test, worker-example, gateway/tests/node...) imports it by relative
// path; it runs under Node, Deno and Bun.
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/** The repository's root directory. */
export const repoDir = join(dirname(fileURLToPath(import.meta.url)), "../..");

/** The token of the gateways `startGateway` starts, unless told another. */
export const GATEWAY_TOKEN = "edgelimit-test-token";

/** A 127.0.0.1 port nothing listens on (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** Resolves once something accepts connections on 127.0.0.1:`port`. */
export async function waitForPort(port, ms = 10_000) {
  const accepts = () =>
    new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
  const deadline = Date.now() + ms;
  while (!(await accepts())) {
    if (Date.now() > deadline) throw new Error(`nothing listened on port ${port} within ${ms} ms`);
    await sleep(25);
  }
}

// A child must not outlive this process, whatever ends it.
const children = new Set();
/** Kills `child` (SIGKILL) when this process exits, if it still runs then. */
export function stopOnExit(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
}
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => process.exit(128 + (signal === "SIGINT" ? 2 : 15)));
}

/** A redis-server on a free port, in a scratch directory, without persistence. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "edgelimit-redis-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const server = start("redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--save",
    "",
    "--appendonly",
    "no",
  ]);
  await waitFor(server, () => redisCommand(port, "PING").then((reply) => reply === "PONG"));
  /** `command(...args)`: one redis-cli command, its reply trimmed. */
  return { ...server, port, command: (...args) => redisCommand(port, ...args) };
}

/**
 * The gateway binary: EDGELIMIT_GATEWAY_BIN, else GATEWAY_BIN, else the
 * debug build `make test-deps` makes.
 */
export function gatewayBin() {
  const bin =
    process.env.EDGELIMIT_GATEWAY_BIN ?? process.env.GATEWAY_BIN ?? join(repoDir, "target/debug/edgelimit-gateway");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: \`make test-deps\` builds it`);
  return bin;
}

/**
 * A gateway over the Redis at `redisPort`, on `port` (default: a free one),
 * accepting `token` (default: GATEWAY_TOKEN).
 */
export async function startGateway(redisPort, { port, token = GATEWAY_TOKEN } = {}) {
  const bin = gatewayBin();
  port ??= await freePort();
  const url = `http://127.0.0.1:${port}`;
  const gateway = start(
    bin,
    ["--listen", `127.0.0.1:${port}`, "--redis-url", `redis://127.0.0.1:${redisPort}`, "--token", token],
    { EDGELIMIT_GATEWAY_LOG: "warn" },
  );
  await waitFor(gateway, () => fetch(`${url}/healthz`).then((r) => r.ok));
  return { ...gateway, port, url, token };
}

/**
 * A redis-server and a gateway in front of it: `{ redis, gateway, url,
 * token, stop }`; stop() ends both (the gateway first).
 */
export async function startStack(options = {}) {
  const redis = await startRedis();
  try {
    const gateway = await startGateway(redis.port, options);
    const stop = async () => {
      await gateway.stop();
      await redis.stop();
    };
    return { redis, gateway, url: gateway.url, token: gateway.token, stop };
  } catch (error) {
    await redis.stop();
    throw error;
  }
}

/**
 * A redis-server and a gateway for one test file: started by the file's
 * `before` hook and stopped by its `after` hook (pass node:test's own). The
 * object returned holds `redis` and `gateway` once `before` has run.
 */
export function stackForTests({ before, after }) {
  const stack = {};
  before(async () => {
    stack.redis = await startRedis();
    stack.gateway = await startGateway(stack.redis.port);
  });
  after(async () => {
    await stack.gateway?.stop();
    await stack.redis?.stop();
  });
  return stack;
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

/** `command` as a child stopped on exit; its stderr kept for error messages. */
function start(command, args, env = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
  stopOnExit(child);
  let stderr = "";
  let running = true;
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  // "error" instead of "exit" when it could not be started at all.
  const exited = new Promise((resolve) => {
    child.once("exit", resolve);
    child.once("error", (error) => {
      stderr += `${error.message}\n`;
      resolve();
    });
  }).then(() => {
    running = false;
  });
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

/** Polls `ready` until it resolves to true; fails early when `service` exits. */
async function waitFor(service, ready, ms = 10_000) {
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
    await sleep(25);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// redis-cli comes with redis-server (tools/ensure-redis.sh installs both).
async function redisCommand(port, ...args) {
  const { stdout } = await promisify(execFile)("redis-cli", ["-p", String(port), ...args]);
  return stdout.trim();
}
