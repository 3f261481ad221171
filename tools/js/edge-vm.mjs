// The package in Vercel's Edge Runtime VM (npm `edge-runtime`), as Next.js
// and Vercel run edge code: bundled with the `edge-light` condition, its
// `?module` WebAssembly import injected as a module compiled outside the VM
// (another realm, as Next's sandbox does), then the smoke test inside.
//   node edge-vm.mjs APP_DIR   (APP_DIR has node_modules/edgelimit)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { EdgeRuntime } from "edge-runtime";
import { build } from "esbuild";

const app = process.argv[2];
const smoke = new URL("./pkg-smoke.mjs", import.meta.url).pathname;
const injectWasm = {
  name: "wasm-module",
  setup(b) {
    b.onResolve({ filter: /\.wasm\?module$/ }, (args) => ({ path: args.path, namespace: "wasm-module" }));
    b.onLoad({ filter: /.*/, namespace: "wasm-module" }, () => ({
      contents: "export default globalThis.__edgelimit_wasm;",
      loader: "js",
    }));
  },
};
const bundled = await build({
  stdin: {
    contents: `import { smoke } from ${JSON.stringify(smoke)};
      import * as m from "edgelimit";
      globalThis.__smoke = smoke(m);`,
    resolveDir: app,
  },
  bundle: true,
  write: false,
  format: "iife",
  platform: "neutral",
  conditions: ["edge-light", "worker", "browser"],
  mainFields: ["module", "main"],
  plugins: [injectWasm],
  metafile: true,
  // (edgelimit.js's unused async init names import.meta, empty in an iife.)
  logLevel: "error",
});
const inputs = Object.keys(bundled.metafile.inputs);
if (!inputs.some((f) => f.endsWith("/edge-light.js"))) throw new Error(`edge-light.js not selected: ${inputs}`);

const runtime = new EdgeRuntime();
runtime.context.__edgelimit_wasm = new WebAssembly.Module(
  readFileSync(join(app, "node_modules/edgelimit/edgelimit_bg.wasm")),
);
runtime.evaluate(bundled.outputFiles[0].text);
console.log("edge-runtime ->", await runtime.evaluate("globalThis.__smoke"));
