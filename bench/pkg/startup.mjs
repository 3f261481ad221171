// Start-up cost in Node, each sample in a fresh process (nothing compiled or
// cached yet, as in a cold isolate): wasm compile + instantiate, and the
// import of each library's entry. RUNS samples per case, cases interleaved
// so drifting background load hits all alike; medians reported.
import { child, log, median, ratio } from "./lib.mjs";

const RUNS = Number(process.env.RUNS ?? 20);
const imports = [
  "edgelimit",
  "@upstash/ratelimit",
  "@upstash/ratelimit + @upstash/redis",
  "rate-limiter-flexible",
  "limiter",
];

const wasm = [];
const imp = Object.fromEntries(imports.map((n) => [n, []]));
for (let i = 0; i < RUNS; i++) {
  wasm.push(child("child-wasm.mjs"));
  for (const n of imports) imp[n].push(child("child-import.mjs", n));
  if ((i + 1) % 5 === 0) log(`startup: ${i + 1}/${RUNS} rounds`);
}

const ms = (x) => (x == null ? "-" : x.toFixed(2));
// "median (min)": the median is the typical cold start, the min the least
// disturbed one on a shared machine.
const stat = (xs, f) => {
  const v = xs.map(f);
  return v[0] == null ? "-" : `${ms(median(v))} (${ms(Math.min(...v))})`;
};
const ours = median(imp.edgelimit.map((x) => x.importMs));

console.log(`### Instantiation and import time (Node, fresh process each, median (min) of ${RUNS})

| wasm module | ms |
|---|---:|
| \`new WebAssembly.Module(bytes)\` | ${stat(wasm, (x) => x.compileMs)} |
| \`initSync({ module })\` | ${stat(wasm, (x) => x.instantiateMs)} |
| both | ${stat(wasm, (x) => x.compileMs + x.instantiateMs)} |

| library | import ms | import + first decision ms | import medians: edgelimit / this |
|---|---:|---:|---:|
${imports
  .map((n) => {
    const a = median(imp[n].map((x) => x.importMs));
    const first = stat(imp[n], (x) => x.firstMs);
    const label = n.includes("redis") ? `${n} (first: construction only)` : n;
    return `| ${label} | ${stat(imp[n], (x) => x.importMs)} | ${first} | ${n === "edgelimit" ? "" : ratio(ours, a)} |`;
  })
  .join("\n")}

Last column below 1: edgelimit's entry (which compiles and instantiates the
wasm at import) loads faster than that library's.
`);
