#!/usr/bin/env bash
# Builds the WebAssembly module as tools/build-pkg.sh does (same profile,
# wasm-bindgen, wasm-opt -Oz) but keeping the function names, into a
# temporary directory, and prints where its bytes go (wasm-breakdown.mjs).
#
#   bash bench/pkg/wasm-breakdown.sh [largest functions to list]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
wasm_bindgen=$(bash tools/ensure-wasm-bindgen.sh)
bash tools/ensure-tools-js.sh
source tools/lib.sh
build_wasm_module
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$wasm_bindgen" target/wasm32-unknown-unknown/wasm/edgelimit.wasm \
  --target web --out-name edgelimit --out-dir "$out" --no-typescript --keep-debug
# The flags of build-pkg.sh, with -g: names kept.
node tools/js/node_modules/binaryen/bin/wasm-opt -Oz -g \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  --strip-producers --strip-target-features \
  "$out/edgelimit_bg.wasm" -o "$out/named.wasm"
node bench/pkg/wasm-breakdown.mjs "$out/named.wasm" "${1:-25}"
