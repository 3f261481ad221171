#!/usr/bin/env bash
# Installs wasm-bindgen-cli at exactly the version of the wasm-bindgen crate in
# Cargo.lock (the CLI refuses modules built by any other version) into
# .cache/wasm-bindgen-<version>, and prints the binary's path.
# No --locked: the CLI's own lockfile can name crates newer than the index
# reachable here. Skipped when that exact version is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [[ -z "$version" ]]; then
  echo "ensure-wasm-bindgen: no wasm-bindgen crate in Cargo.lock" >&2
  exit 1
fi

# Absolute: cargo install resolves a relative --root elsewhere than here.
root="$PWD/.cache/wasm-bindgen-$version"
bin="$root/bin/wasm-bindgen"
if ! [[ -x "$bin" ]] || [[ "$("$bin" --version)" != "wasm-bindgen $version" ]]; then
  echo "ensure-wasm-bindgen: installing wasm-bindgen-cli $version (a few minutes, once)" >&2
  mkdir -p "$root"
  cargo install --quiet wasm-bindgen-cli --version "$version" --root "$root" >&2
fi
echo "$bin"
