#!/usr/bin/env bash
# Installs cargo-mutants at a pinned version into .cache/cargo-mutants-<version>
# and prints the binary's path. Pinned: its mutant names, which
# .cargo/mutants.toml excludes by pattern, change between releases.
# Skipped when that exact version is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0

# Absolute: cargo install resolves a relative --root elsewhere than here.
root="$PWD/.cache/cargo-mutants-$version"
bin="$root/bin/cargo-mutants"
if ! [[ -x "$bin" ]] || [[ "$("$bin" mutants --version)" != "cargo-mutants $version" ]]; then
  echo "ensure-cargo-mutants: installing cargo-mutants $version (a few minutes, once)" >&2
  mkdir -p "$root"
  cargo install --quiet cargo-mutants --version "$version" --locked --root "$root" >&2
fi
echo "$bin"
