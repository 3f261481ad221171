#!/usr/bin/env bash
# Runs the gateway's Node tests, driving the unmodified @upstash/redis and
# @upstash/ratelimit clients against the real gateway binary and a real
# redis-server. Its Rust tests are workspace tests: `cargo test --workspace`
# (`make test-rust`) runs them.
# Installs what is missing (redis-server, npm packages) first.
# Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/../target}"

bash "$here/../tools/ensure-redis.sh"

cd "$here/.."
cargo build --locked -p edgelimit-gateway --bin edgelimit-gateway

cd "$here/tests/node"
# shellcheck source=../tools/lib.sh
source "$here/../tools/lib.sh"
npm_deps ci
GATEWAY_BIN="$CARGO_TARGET_DIR/debug/edgelimit-gateway" node --test --test-concurrency=1 ./*.test.mjs
