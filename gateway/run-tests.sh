#!/usr/bin/env bash
# Runs every gateway test: Rust unit and integration tests (real
# redis-server, real gateway binary) and the Node tests driving the
# unmodified @upstash/redis and @upstash/ratelimit clients.
# Installs what is missing (redis-server, npm packages) first.
# Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"

bash "$here/../tools/ensure-redis.sh"

cd "$here"
cargo build --locked --bin edgelimit-gateway
cargo test --locked

cd "$here/tests/node"
# shellcheck source=../tools/lib.sh
source "$here/../tools/lib.sh"
npm_deps ci
GATEWAY_BIN="$CARGO_TARGET_DIR/debug/edgelimit-gateway" node --test --test-concurrency=1 ./*.test.mjs
