// Bundles the Worker with the pinned wrangler, exactly as `wrangler deploy`
// would upload it: the script plus the .wasm module it imports, in `outDir`.
import { execFile } from "node:child_process";
import { copyFileSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const exampleDir = join(dirname(fileURLToPath(import.meta.url)), "..");
export const repoDir = join(exampleDir, "..");
const wranglerToml = join(repoDir, "wrangler.toml");

// No telemetry, no update check, no account lookups: bundling stays offline.
const quietWrangler = {
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  WRANGLER_HIDE_BANNER: "true",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};

/**
 * @typedef {{dir: string, modules: {name: string, type: string}[],
 *   compatibilityDate: string, compatibilityFlags: string[]}} Bundle
 * @returns {Promise<Bundle>}
 */
export async function bundle(outDir) {
  const hadWranglerDir = readdirSync(repoDir).includes(".wrangler");
  try {
    await promisify(execFile)(
      join(exampleDir, "node_modules/.bin/wrangler"),
      ["deploy", "--dry-run", "--config", wranglerToml, "--outdir", outDir],
      {
        cwd: exampleDir,
        env: { ...process.env, ...quietWrangler, WRANGLER_LOG_PATH: join(outDir, "logs") },
      },
    );
  } catch (error) {
    throw new Error(`wrangler could not bundle the Worker:\n${error.stdout}${error.stderr}`);
  } finally {
    // wrangler leaves an empty .wrangler/tmp beside wrangler.toml.
    if (!hadWranglerDir) {
      for (const dir of [".wrangler/tmp", ".wrangler"]) {
        try {
          rmdirSync(join(repoDir, dir));
        } catch {}
      }
    }
  }
  return describeBundle(outDir);
}

/**
 * Bundles another Worker (`entry`, a test fixture) as wrangler would: esbuild
 * with the Workers export conditions, the .wasm kept as a module beside it.
 * @returns {Promise<Bundle>}
 */
export async function bundleWorker(entry, outDir) {
  const esbuild = join(exampleDir, "node_modules/.bin/esbuild");
  await promisify(execFile)(
    esbuild,
    [
      entry,
      "--bundle",
      "--format=esm",
      "--platform=neutral",
      "--log-level=warning",
      "--conditions=workerd,worker,browser",
      "--external:*.wasm",
      `--outfile=${join(outDir, "index.js")}`,
    ],
    { cwd: exampleDir },
  );
  copyFileSync(join(exampleDir, "node_modules/edgelimit/edgelimit_bg.wasm"), join(outDir, "edgelimit_bg.wasm"));
  return describeBundle(outDir);
}

/** What workerd needs to know of a bundle made by `bundle()`. */
export function describeBundle(dir) {
  // The entry first: workerd treats the first module as the main one.
  const types = { ".js": "esModule", ".mjs": "esModule", ".wasm": "wasm" };
  const modules = readdirSync(dir)
    .map((name) => ({ name, type: types[name.slice(name.lastIndexOf("."))] }))
    .filter((m) => m.type)
    .sort((a, b) => (b.name === "index.js") - (a.name === "index.js"));
  return { dir, modules, ...compatibility() };
}

// The runtime settings wrangler deploys with, from the same wrangler.toml.
function compatibility() {
  const toml = readFileSync(wranglerToml, "utf8");
  const date = toml.match(/^compatibility_date\s*=\s*"([^"]+)"/m);
  const flags = toml.match(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m);
  if (!date) throw new Error(`no compatibility_date in ${wranglerToml}`);
  return {
    compatibilityDate: date[1],
    compatibilityFlags: flags ? [...flags[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]) : [],
  };
}

// `node lib/bundle.mjs <dir>`: bundle once for several test files.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = performance.now();
  const { modules } = await bundle(process.argv[2]);
  const names = modules.map((m) => m.name).join(" + ");
  console.log(`bundled ${names} with wrangler in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
