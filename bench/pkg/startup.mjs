// Start-up cost in Node, each sample in a fresh process (nothing compiled or
// cached yet, as in a cold isolate): wasm compile + instantiate, and the
// import of each library's entry. RUNS samples per case, cases interleaved
// so drifting background load hits all alike; medians reported.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { here, log, median, ratio } from "./lib.mjs";

const RUNS = Number(process.env.RUNS ?? 20);
const imports = [
  "edgelimit",
  "@upstash/ratelimit",
  "@upstash/ratelimit + @upstash/redis",
  "rate-limiter-flexible",
  "limiter",
];

const child = (script, ...args) =>
  JSON.parse(execFileSync(process.execPath, [join(here, script), ...args], { cwd: here, encoding: "utf8" }));

const wasm = [];
const imp = Object.fromEntries(imports.map((n) => [n, []]));
for (let i = 0; i < RUNS; i++) {
  wasm.push(child("child-wasm.mjs"));
  for (const n of imports) imp[n].push(child("child-import.mjs", n));
  if ((i + 1) % 5 === 0) log(`startup: ${i + 1}/${RUNS} rounds`);
}

const ms = (x) => (x == null ? "-" : x.toFixed(2));
const med = (xs, k) => (xs[0][k] == null ? null : median(xs.map((x) => x[k])));
const compile = med(wasm, "compileMs");
const inst = median(wasm.map((x) => x.instantiateMs));
const both = median(wasm.map((x) => x.compileMs + x.instantiateMs));
const ours = med(imp.edgelimit, "importMs");

console.log(`### Instantiation and import time (Node, fresh process each, median of ${RUNS})

| wasm module | ms |
|---|---:|
| \`new WebAssembly.Module(bytes)\` | ${ms(compile)} |
| \`initSync({ module })\` | ${ms(inst)} |
| both | ${ms(both)} |

| library | import ms | import + first decision ms | import: edgelimit / this |
|---|---:|---:|---:|
${imports
  .map((n) => {
    const a = med(imp[n], "importMs");
    const f = med(imp[n], "firstMs");
    return `| ${n} | ${ms(a)} | ${ms(f)}${n.includes("redis") ? " (construct only)" : ""} | ${n === "edgelimit" ? "" : ratio(ours, a)} |`;
  })
  .join("\n")}

Last column below 1: edgelimit's entry (which compiles and instantiates the
wasm at import) loads faster than that library's.
`);
