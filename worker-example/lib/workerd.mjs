// Runs a bundled Worker in the npm `workerd` binary, the runtime Cloudflare
// deploys, on a free 127.0.0.1 port.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stopOnExit } from "../../tools/js/testkit.mjs";
import { exampleDir } from "./bundle.mjs";

const workerdBin = join(exampleDir, "node_modules/.bin/workerd");
let instances = 0;

/**
 * Starts workerd on `bundle` (from bundle.mjs) with `vars` as text bindings.
 * Resolves once the Worker has answered a request.
 * @returns {Promise<{url: string, logs: () => string, stop: () => Promise<void>}>}
 */
export async function startWorkerd(bundle, vars = {}) {
  // One config per instance: several may start at once from one bundle.
  const config = join(bundle.dir, `workerd-${process.pid}-${++instances}.capnp`);
  writeFileSync(config, capnpConfig(bundle, vars));

  // Port 0 plus --control-fd: workerd picks a free port and reports it,
  // so two instances never race for one.
  const child = spawn(workerdBin, ["serve", config, "--control-fd=3"], {
    stdio: ["ignore", "pipe", "pipe", "pipe"],
  });
  stopOnExit(child);
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => {
    child.once("exit", resolve);
    child.once("error", (error) => {
      output += `${error.message}\n`;
      resolve();
    });
  });

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid) child.kill("SIGTERM");
    await exited;
  };
  try {
    const port = await Promise.race([
      listeningPort(child.stdio[3]),
      exited.then(() => Promise.reject(new Error(`workerd ended at start (${child.exitCode ?? child.signalCode})`))),
      timeout(15000, "workerd did not listen within 15 s"),
    ]);
    const url = `http://127.0.0.1:${port}`;
    // Listening is not yet answering: wait for one request to get through.
    const health = await fetch(url, { headers: { "CF-Connecting-IP": "127.0.0.254" } });
    await health.arrayBuffer();
    return { url, logs: () => output, stop };
  } catch (error) {
    await stop();
    error.message += `\n--- workerd output ---\n${output}`;
    throw error;
  }
}

function capnpConfig(bundle, vars) {
  const str = (s) => JSON.stringify(String(s));
  const modules = bundle.modules.map((m) => `(name = ${str(m.name)}, ${m.type} = embed ${str(m.name)})`);
  const bindings = Object.entries(vars)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `(name = ${str(name)}, text = ${str(value)})`);
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    # Outgoing fetch(): loopback and private addresses only, so the Worker
    # can reach a Redis gateway on 127.0.0.1 (workerd refuses them by default).
    (name = "loopback", network = (allow = ["local", "private"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "main")],
);

const worker :Workerd.Worker = (
  modules = [${modules.join(", ")}],
  compatibilityDate = ${str(bundle.compatibilityDate)},
  compatibilityFlags = [${bundle.compatibilityFlags.map(str).join(", ")}],
  bindings = [${bindings.join(", ")}],
  globalOutbound = "loopback",
);
`;
}

// workerd writes one JSON line per socket: {"event":"listen","socket":"http","port":N}.
function listeningPort(control) {
  return new Promise((resolve) => {
    let buffered = "";
    control.on("data", (chunk) => {
      buffered += chunk;
      for (const line of buffered.split("\n").slice(0, -1)) {
        const message = JSON.parse(line);
        if (message.event === "listen" && message.socket === "http") resolve(message.port);
      }
      buffered = buffered.slice(buffered.lastIndexOf("\n") + 1);
    });
  });
}

function timeout(ms, message) {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(message)), ms).unref());
}
