#!/usr/bin/env bash
# Loads the built package (pkg/, from `make pkg`) the way users do, with no
# init code of theirs: Node by package name through `exports`, Deno by
# package name and by path with no permission flag, and a Workers bundle (esbuild with wrangler's
# conditions) that must pick the workerd entry, run in workerd. Each runs
# tools/js/pkg-smoke.mjs; tools/js/pkg-types.ts type-checks index.d.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[[ -f pkg/package.json ]] || { echo "check-pkg: no pkg/; run make pkg first" >&2; exit 1; }
bash tools/ensure-tools-js.sh
bin=$root/tools/js/node_modules/.bin
smoke=$root/tools/js/pkg-smoke.mjs

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Install the packed tarball, not the folder: this also proves `files` is complete.
tarball=$(cd pkg && npm pack --silent --pack-destination "$tmp")
mkdir "$tmp/app"
cd "$tmp/app"
echo '{ "name": "app", "private": true, "type": "module" }' >package.json
npm install --silent --no-audit --no-fund --offline "$tmp/$tarball"
echo "packed: $tarball, $(wc -c <"$tmp/$tarball") B"

echo "== Node $(node --version): file path and package name"
node --input-type=module -e "
  import { smoke } from '$smoke';
  console.log('./pkg/node.js ->', await smoke(await import('$root/pkg/node.js')));
  console.log('edgelimit ->', import.meta.resolve('edgelimit').replace(/.*node_modules./, ''));
  console.log('  ', await smoke(await import('edgelimit')));
"

echo "== TypeScript $("$bin/tsc" --version | cut -d' ' -f2): index.d.ts through exports, nodenext and bundler resolution"
cp "$root/tools/js/pkg-types.ts" types.ts
# edgelimit/hono's typings name Hono's, as a Hono app has them.
ln -sfn "$root/tools/js/node_modules/hono" node_modules/hono
for resolution in nodenext bundler; do
  module=$([[ $resolution == bundler ]] && echo esnext || echo nodenext)
  cat >tsconfig.json <<JSON
{ "files": ["types.ts"], "compilerOptions": { "noEmit": true, "strict": true, "types": [],
  "lib": ["esnext", "dom"], "target": "es2022", "module": "$module", "moduleResolution": "$resolution" } }
JSON
  "$bin/tsc" -p tsconfig.json
  echo "$resolution: ok"
done
# A Workers project's tsconfig: lib es2022 with the Workers types, no skipLibCheck.
cp "$root/tools/js/pkg-types-workers.ts" workers.ts
mkdir -p node_modules/@cloudflare
ln -sfn "$root/tools/js/node_modules/@cloudflare/workers-types" node_modules/@cloudflare/workers-types
cat >tsconfig.json <<JSON
{ "files": ["workers.ts"], "compilerOptions": { "noEmit": true, "strict": true,
  "lib": ["es2022"], "types": ["@cloudflare/workers-types"], "target": "es2022",
  "module": "esnext", "moduleResolution": "bundler" } }
JSON
"$bin/tsc" -p tsconfig.json
echo "workers (lib es2022, @cloudflare/workers-types, no skipLibCheck): ok"

echo "== Deno: by package name and by path, no permission flags"
export DENO_DIR=$tmp/deno-dir DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
"$bin/deno" --version | head -1
cat >deno-npm.mjs <<JS
import { smoke } from "$smoke";
import * as m from "edgelimit";
console.log("edgelimit ->", import.meta.resolve("edgelimit").replace(/.*node_modules./, ""));
console.log("  ", await smoke(m));
JS
cat >deno-inline.mjs <<JS
import { smoke } from "$smoke";
import * as m from "$root/pkg/inline.js";
console.log("$root/pkg/inline.js ->", await smoke(m));
JS
# The `deno` condition selects inline.js: nothing to read, so no flag. The
# browser entry fetches the module from a file: URL, which needs --allow-read.
cat >deno-path.mjs <<JS
import { smoke } from "$smoke";
import * as m from "$root/pkg/browser.js";
console.log("$root/pkg/browser.js (--allow-read) ->", await smoke(m));
JS
for run in "deno-npm.mjs" "deno-inline.mjs" "--allow-read deno-path.mjs"; do
  # A console.warn about the module's MIME type means Deno fell back from
  # streaming compilation: treat any stderr as a failure. --no-prompt: a
  # permission the script lacks fails instead of asking.
  # shellcheck disable=SC2086
  "$bin/deno" run --no-prompt $run 2>deno.err
  if [[ -s deno.err ]]; then cat deno.err >&2; exit 1; fi
done
# The README's `deno serve` example, as written: type-checked, then served
# with no flag (deno serve may listen on its address), limiting per client.
node -e '
  const text = require("fs").readFileSync(process.argv[1], "utf8");
  const block = text.split("```ts\n").map((b) => b.split("```")[0]).find((b) => b.startsWith("// main.ts: `deno serve main.ts`"));
  if (!block) { console.error("check-pkg: the README has no deno serve example"); process.exit(1); }
  require("fs").writeFileSync("main.ts", block);
' "$root/README.md"
"$bin/deno" check main.ts 2>deno.err || { cat deno.err >&2; exit 1; }
source "$root/tools/lib.sh"
port=$(free_port)
"$bin/deno" serve --no-prompt --host 127.0.0.1 --port "$port" main.ts >deno-serve.log 2>&1 &
serve_pid=$!
statuses=$(node -e '
  const url = process.argv[1];
  (async () => {
    for (let i = 0; i < 100; i++) {
      try { await fetch(url); break; } catch { await new Promise((r) => setTimeout(r, 100)); }
    }
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await fetch(url)).status);
    console.log(codes.join(" "));
  })();
' "http://127.0.0.1:$port/") || true
kill "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
# The readiness probe took the first of the 2 calls a window allows.
[[ $statuses == "200 429 429" ]] ||
  { echo "check-pkg: deno serve answered '$statuses'" >&2; cat deno-serve.log >&2; exit 1; }
echo "README deno serve example: type-checked, served with no flag: $statuses"
grep -q '"deno": "./inline.js"' node_modules/edgelimit/package.json ||
  { echo "check-pkg: the deno condition must select inline.js" >&2; exit 1; }

echo "== edge-runtime $(node -p 'require("'"$root"'/tools/js/node_modules/edge-runtime/package.json").version'): the edge-light entry in Vercel's Edge Runtime VM"
node "$root/tools/js/edge-vm.mjs" "$PWD"

echo "== Bun $("$bin/bun" --version): by package name"
"$bin/bun" -e "
  import { smoke } from '$smoke';
  console.log('edgelimit ->', import.meta.resolve('edgelimit').replace(/.*node_modules./, ''));
  console.log('  ', await smoke(await import('edgelimit')));
"

echo "== Workers bundle: esbuild --conditions=workerd,worker,browser"
cat >worker.mjs <<JS
import { smoke } from "$smoke";
import * as m from "edgelimit";
export default { async test() { console.log("workerd ->", await smoke(m)); } };
JS
"$bin/esbuild" worker.mjs --bundle --format=esm --platform=neutral --log-level=warning \
  --conditions=workerd,worker,browser --external:'*.wasm' --metafile=meta.json --outfile=out/worker.js
entries=$(node -e '
  const m = JSON.parse(require("fs").readFileSync("meta.json"));
  console.log(Object.keys(m.inputs).filter(f => /node_modules\/edgelimit\/[a-z]+\.js$/.test(f)).map(f => f.split("/").pop()).join(" "))')
echo "edgelimit files in the bundle: $entries"
[[ " $entries " == *" workerd.js "* && " $entries " != *" browser.js "* && " $entries " != *" node.js "* ]] ||
  { echo "check-pkg: the Workers bundle did not select workerd.js" >&2; exit 1; }
grep -q 'from "./edgelimit_bg.wasm"' out/worker.js && grep -q 'initSync(' out/worker.js ||
  { echo "check-pkg: the Workers bundle lost the wasm import or its initSync" >&2; exit 1; }
echo "workerd.js selected; imports ./edgelimit_bg.wasm and calls initSync: $(wc -c <out/worker.js) B, $(gzip -9c out/worker.js | wc -c) B gz"


echo "== workerd $("$bin/workerd" --version | cut -d' ' -f2): the bundle, the module as a wasm module"
cp node_modules/edgelimit/edgelimit_bg.wasm out/
cat >out/config.capnp <<'CAPNP'
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (services = [(name = "main", worker = .worker)]);
const worker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "edgelimit_bg.wasm", wasm = embed "edgelimit_bg.wasm"),
  ],
  compatibilityDate = "2026-04-20",
);
CAPNP
# `workerd test` runs the worker's test() handler with no socket and fails
# when it throws; its own PASS/FAIL lines go to stderr.
"$bin/workerd" test out/config.capnp 2>workerd.err || { cat workerd.err >&2; exit 1; }

echo "check-pkg: all loaded"
