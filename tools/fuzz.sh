#!/usr/bin/env bash
# `make fuzz`: runs every fuzz target for FUZZ_SECONDS seconds each (default
# 30) on nightly with cargo-fuzz (installed by tools/ensure-cargo-fuzz.sh).
# A crash leaves its input under <dir>/artifacts/<target>/ and fails the run:
# make it a regression test beside the code it broke.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${FUZZ_SECONDS:-30}
cargo_fuzz=$(bash tools/ensure-cargo-fuzz.sh)
export PATH="$(dirname "$cargo_fuzz"):$PATH"
for pair in "fuzz rest_reply" "gateway/fuzz json_command" "gateway/fuzz resp_reader"; do
  read -r dir target <<<"$pair"
  echo "== fuzz $target ($dir), ${seconds}s"
  (cd "$root/$dir" && cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048)
done
echo "fuzz: every target ran ${seconds}s without a crash"
