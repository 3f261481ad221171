#!/usr/bin/env bash
# The JS suite (js/test/) against the built package: under Node's test
# runner, then the same files under Deno and under Bun (npm `deno` and
# `bun`, from tools/js).
# Needs pkg/ (`make pkg`), redis-server and the gateway (`make test-deps`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/ensure-tools-js.sh

echo "== JS suite in Node $(node --version)"
node --test js/test/

deno=tools/js/node_modules/.bin/deno
deno_dir=$(mktemp -d)
trap 'rm -rf "$deno_dir"' EXIT
export DENO_DIR=$deno_dir DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
echo "== JS suite in $("$deno" --version | head -1)"
# Loopback only; subprocesses for redis-server and the gateway.
"$deno" test --no-prompt --allow-read --allow-env --allow-run --allow-write="${TMPDIR:-/tmp}" \
  --allow-net=127.0.0.1 js/test/

bun=tools/js/node_modules/.bin/bun
echo "== JS suite in Bun $("$bun" --version)"
# Bun stops a test after 5 s by default; the Redis replays take longer on a
# busy machine (Node and Deno set no limit).
"$bun" test --timeout 60000 js/test/
