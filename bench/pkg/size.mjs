// What a Worker ships: the same minimal Worker bundled with esbuild the way
// wrangler does it (workerd conditions, .wasm left as a module import),
// for edgelimit and for @upstash/ratelimit + @upstash/redis. Prints a
// Markdown section; exits 3 when ours is above the size ceiling.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { gz, here, kb, log, pkgDir, ratio } from "./lib.mjs";

// The hard bar for ours: JS bundle + .wasm, gzip -9.
const CEILING = 60_000;

const FLAGS = [
  "--bundle",
  "--format=esm",
  "--minify",
  "--conditions=workerd,worker,browser",
  "--external:*.wasm",
  "--log-level=warning",
];
const outDir = join(here, "out");
mkdirSync(outDir, { recursive: true });

// Bundles one worker; the .wasm files its bundle imports are found through
// esbuild's metafile (externals keep their source path), so a package that
// inlined its wasm instead would not be counted twice.
function bundle(name) {
  const out = join(outDir, `${name}.js`);
  const meta = join(outDir, `${name}.meta.json`);
  execFileSync(
    join(here, "node_modules", ".bin", "esbuild"),
    [`workers/${name}.mjs`, ...FLAGS, `--outfile=${out}`, `--metafile=${meta}`],
    { cwd: here, stdio: ["ignore", "inherit", "inherit"] },
  );
  const wasm = new Set();
  for (const [input, { imports }] of Object.entries(JSON.parse(readFileSync(meta, "utf8")).inputs)) {
    for (const i of imports) {
      if (i.external && i.path.endsWith(".wasm")) wasm.add(resolve(here, dirname(input), i.path));
    }
  }
  const js = readFileSync(out);
  const wasmFiles = [...wasm].map((f) => ({ file: f, raw: statSync(f).size, gz: gz(readFileSync(f)) }));
  const wasmGz = wasmFiles.reduce((s, w) => s + w.gz, 0);
  const wasmRaw = wasmFiles.reduce((s, w) => s + w.raw, 0);
  const r = { name, jsRaw: js.length, jsGz: gz(js), wasmRaw, wasmGz, wasmFiles };
  r.totalGz = r.jsGz + wasmGz;
  log(
    `size: ${name}: js ${r.jsGz} B gz, wasm ${wasmGz} B gz (${wasmFiles.map((w) => relative(here, w.file)).join(", ") || "none"})`,
  );
  return r;
}

const ours = ["edgelimit-memory", "edgelimit-redis"].map(bundle);
const peer = bundle("upstash");
for (const o of ours) {
  if (o.wasmFiles.length === 0) {
    log(`size: ${o.name}: the bundle imports no .wasm; is the workerd entry right?`);
    process.exit(1);
  }
}

const row = (label, r) =>
  `| ${label} | ${r.jsGz} | ${r.wasmGz || "-"} | **${r.totalGz}** (${kb(r.totalGz)} KB) | ${r.jsRaw} + ${r.wasmRaw} | ${ratio(r.totalGz, peer.totalGz)} |`;

// Every file of the built package, as published.
function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  );
}
const pkgFiles = files(pkgDir).sort();
const pkgRows = pkgFiles.map((f) => {
  const b = readFileSync(f);
  return `| ${relative(pkgDir, f)} | ${b.length} | ${gz(b)} |`;
});
const pkgTotal = pkgFiles.reduce((s, f) => s + statSync(f).size, 0);

const worst = Math.max(...ours.map((o) => o.totalGz));
const over = worst > CEILING;
console.log(`### Size: what a Worker ships

esbuild ${FLAGS.slice(0, -1).join(" ")}; gzip -9 bytes; ratio = total / @upstash's total.

| minimal Worker | JS gz | .wasm gz | total gz | raw JS + .wasm | ratio |
|---|---:|---:|---:|---:|---:|
${row("edgelimit, memory store (`workers/edgelimit-memory.mjs`)", ours[0])}
${row("edgelimit, Redis REST store (`workers/edgelimit-redis.mjs`)", ours[1])}
${row("@upstash/ratelimit + @upstash/redis (`workers/upstash.mjs`)", peer)}

Ceiling for ours: ${CEILING} B gz (${kb(CEILING)} KB); largest: ${worst} B, ${over ? "**ABOVE THE CEILING**" : `${((100 * worst) / CEILING).toFixed(0)}% of it`}.

Package files (\`pkg/\`, ${pkgFiles.length} files, ${pkgTotal} B raw):

| file | bytes | gzip -9 |
|---|---:|---:|
${pkgRows.join("\n")}
`);

if (over) {
  log(`\n*** SIZE CEILING BROKEN: ${worst} B gz > ${CEILING} B gz ***\n`);
  process.exit(3);
}
