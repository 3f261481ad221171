#!/usr/bin/env bash
# Builds the npm package into pkg/: the Rust core as WebAssembly, the
# wasm-bindgen glue, wasm-opt, then the hand-written JS entries and typings.
# Installs what it needs (wasm32 target, wasm-bindgen-cli, tools/js).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
wasm_bindgen=$(bash tools/ensure-wasm-bindgen.sh)

bash tools/ensure-tools-js.sh

# The `wasm` profile strips only debug info: full stripping would drop the
# target_features section, from which wasm-bindgen learns which wasm
# features (reference types) it may use; wasm-opt drops the rest below.
cargo rustc --quiet --lib --profile wasm --target wasm32-unknown-unknown --crate-type cdylib

rm -rf pkg
# --target web is the one output that loads in Node, Deno, workerd and
# browsers alike; our own index.d.ts replaces the generated typings.
"$wasm_bindgen" target/wasm32-unknown-unknown/wasm/edgelimit.wasm \
  --target web --out-name edgelimit --out-dir pkg --no-typescript

# The features rustc 1.95 enables by default for wasm32-unknown-unknown, named
# so that wasm-opt accepts them even without a target_features section (it
# rejects memory.copy otherwise); that section and producers are then dropped.
node tools/js/node_modules/binaryen/bin/wasm-opt -Oz \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  --strip-producers --strip-target-features \
  pkg/edgelimit_bg.wasm -o pkg/edgelimit_bg.wasm
# Fail here, not in a user's runtime, if the optimised module does not compile.
node -e 'new WebAssembly.Module(require("fs").readFileSync("pkg/edgelimit_bg.wasm"))'

for f in js/*.js js/index.d.ts; do
  case "$f" in *.test.js | *.spec.js | */test*) continue ;; esac
  cp "$f" pkg/
done
cp pkg-template/* pkg/
# The crate's version is the package's: one source of truth.
version=$(cargo metadata --no-deps --format-version 1 |
  node -e 'const m = JSON.parse(require("fs").readFileSync(0)); console.log(m.packages.find(p => p.name === "edgelimit").version)')
node -e '
  const fs = require("fs"), [file, version] = process.argv.slice(1);
  const p = JSON.parse(fs.readFileSync(file)); p.version = version;
  fs.writeFileSync(file, JSON.stringify(p, null, 2) + "\n");
' pkg/package.json "$version"

echo "pkg/: edgelimit@$version built in $((SECONDS - start)) s; gzip -9 sizes:"
raw=0 gz=0
for f in pkg/edgelimit_bg.wasm pkg/*.js; do
  r=$(wc -c <"$f") g=$(gzip -9c "$f" | wc -c)
  raw=$((raw + r)) gz=$((gz + g))
  printf '  %-24s %8d B  %8d B gz\n' "${f#pkg/}" "$r" "$g"
done
printf '  %-24s %8d B  %8d B gz\n' "total" "$raw" "$gz"
