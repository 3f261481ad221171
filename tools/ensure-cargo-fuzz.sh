#!/usr/bin/env bash
# Installs cargo-fuzz (pinned) into .cache/cargo-fuzz-<version> and the
# nightly toolchain it needs (libFuzzer and the address sanitizer are
# nightly-only), and prints the binary's path. For `make fuzz` only.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.13.1
root="$PWD/.cache/cargo-fuzz-$version"
bin="$root/bin/cargo-fuzz"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal >&2
if ! [[ -x "$bin" ]]; then
  echo "ensure-cargo-fuzz: installing cargo-fuzz $version (a few minutes, once)" >&2
  mkdir -p "$root"
  cargo install --quiet cargo-fuzz --version "$version" --root "$root" >&2
fi
echo "$bin"
