#!/usr/bin/env bash
# What a 100 MB reply costs each client build of the gateway (see
# clients.sh, which builds them): the answer to
# EVAL "return string.rep('x', 100*1024*1024)" with --max-reply-bytes 4 MiB,
# the time it took, and the gateway's peak resident memory (VmHWM).
#
#   bench/gateway/reply-cap.sh     # after bench/gateway/clients.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
bins="$CARGO_TARGET_DIR/clients-bench"
TOKEN="bench-token"
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"

redis_port="$(free_port)"
start_redis "$redis_port" "$work"

echo "| client | status | answer | seconds | peak RSS MB |"
echo "|---|---:|---|---:|---:|"
for c in own redis-rs fred; do
  port="$(free_port)"
  EDGELIMIT_GATEWAY_LOG=warn "$bins/$c" --listen "127.0.0.1:$port" \
    --redis-url "redis://127.0.0.1:$redis_port" --token "$TOKEN" \
    --max-reply-bytes 4194304 --request-timeout-ms 30000 2>"$work/gateway-$c.log" &
  pid=$!
  pids+=("$pid")
  wait_port "$port"
  start=$(date +%s.%N)
  out="$(curl -s -o "$work/body" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
    -d '["EVAL","return string.rep('"'"'x'"'"', 100*1024*1024)","0"]' "http://127.0.0.1:$port/")"
  took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  hwm=$(awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$pid/status")
  answer="$(head -c 70 "$work/body")"
  echo "| $c | $out | ${answer//|/\\|} | $took | $hwm |"
  kill "$pid"
done
