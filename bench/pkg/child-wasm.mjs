// One fresh process: compiles and instantiates the package's wasm module the
// way the entries do (`new WebAssembly.Module` + the glue's `initSync`),
// timing each step. Reading the file and loading the glue are not counted.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pkgDir } from "./lib.mjs";

const { initSync } = await import(join(pkgDir, "edgelimit.js"));
const bytes = readFileSync(join(pkgDir, "edgelimit_bg.wasm"));

const t0 = process.hrtime.bigint();
const module = new WebAssembly.Module(bytes);
const t1 = process.hrtime.bigint();
initSync({ module });
const t2 = process.hrtime.bigint();

console.log(JSON.stringify({ compileMs: Number(t1 - t0) / 1e6, instantiateMs: Number(t2 - t1) / 1e6 }));
