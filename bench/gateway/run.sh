#!/usr/bin/env bash
# EVALSHA throughput and latency: direct Redis (redis-benchmark, the
# ceiling), webdis and edgelimit-gateway, side by side in one run, at
# concurrency 1, 10 and 100, all on loopback against the same redis-server.
#
#   bench/gateway/run.sh            # DURATION=5 seconds per measurement
#   DURATION=10 CONCURRENCY="1 10 100" bench/gateway/run.sh
#
# Prints a Markdown table with the ratios gateway/webdis and gateway/redis.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
gw_dir="$root/gateway"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$gw_dir/target}"
DURATION="${DURATION:-5}"
CONCURRENCY="${CONCURRENCY:-1 10 100}"
POOL_SIZE="${POOL_SIZE:-4}"
TOKEN="bench-token"

bash "$root/tools/ensure-redis.sh" >/dev/null
bash "$root/tools/ensure-webdis.sh" >/dev/null
(cd "$gw_dir" && cargo build --locked --release --bin edgelimit-gateway --example loadgen 2>&1 | tail -1)
gateway="$CARGO_TARGET_DIR/release/edgelimit-gateway"
loadgen="$CARGO_TARGET_DIR/release/examples/loadgen"

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "no free port found" >&2
  exit 1
}

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listening on port $1" >&2
  exit 1
}

redis_port="$(free_port)"
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
  --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
wait_port "$redis_port"

gw_port="$(free_port)"
EDGELIMIT_GATEWAY_LOG=warn "$gateway" --listen "127.0.0.1:$gw_port" \
  --redis-url "redis://127.0.0.1:$redis_port" --token "$TOKEN" --pool-size "$POOL_SIZE" \
  2>"$work/gateway.log" &
pids+=($!)
wait_port "$gw_port"

webdis_port="$(free_port)"
cat >"$work/webdis.json" <<JSON
{
  "redis_host": "127.0.0.1", "redis_port": $redis_port,
  "http_host": "127.0.0.1", "http_port": $webdis_port,
  "threads": 2, "daemonize": false, "database": 0,
  "verbosity": 0, "logfile": "$work/webdis.log"
}
JSON
webdis "$work/webdis.json" &
pids+=($!)
wait_port "$webdis_port"

# A fixed-window limiter step, as @upstash/ratelimit sends it: with the
# Upstash-only shebang for the gateway, without it for the peers (which
# cannot run it). Both bodies hash to the script Redis actually runs.
body=$'\nlocal n = redis.call("INCRBY", KEYS[1], 1)\nif n == 1 then redis.call("PEXPIRE", KEYS[1], ARGV[1]) end\nreturn n'
shebang="#!lua flags=allow-key-locking$body"
sha="$(redis-cli -p "$redis_port" SCRIPT LOAD "$body")"
orig_sha="$(printf '%s' "$shebang" | sha1sum | cut -d' ' -f1)"
load_body="$(printf '["SCRIPT","LOAD",%s]' "$(printf '%s' "$shebang" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.stringify(s)))')")"
got="$(curl -sf -H "Authorization: Bearer $TOKEN" -d "$load_body" "http://127.0.0.1:$gw_port/")"
[[ "$got" == *"$orig_sha"* ]] || { echo "gateway SCRIPT LOAD returned $got" >&2; exit 1; }

num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

rows=()
for c in $CONCURRENCY; do
  # redis-benchmark: a request count sized to roughly DURATION seconds.
  n=$(( c == 1 ? 25000 * DURATION : 60000 * DURATION ))
  csv="$(redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$c" -n "$n" --csv \
    EVALSHA "$sha" 1 bench:redis 60000 | tail -1 | tr -d '"')"
  r_rps="$(cut -d, -f2 <<<"$csv" | cut -d. -f1)"
  r_p50="$(cut -d, -f5 <<<"$csv")"
  r_p99="$(cut -d, -f7 <<<"$csv")"

  w="$("$loadgen" --port "$webdis_port" --method GET \
    --path "/EVALSHA/$sha/1/bench:webdis/60000" --expect EVALSHA \
    --concurrency "$c" --duration-secs "$DURATION")"

  g="$("$loadgen" --port "$gw_port" --method POST --path / \
    --header "Authorization: Bearer $TOKEN" --header "Upstash-Encoding: base64" \
    --header "Content-Type: application/json" \
    --body "[\"EVALSHA\",\"$orig_sha\",\"1\",\"bench:gateway\",\"60000\"]" --expect result \
    --concurrency "$c" --duration-secs "$DURATION")"

  w_rps="$(num rps <<<"$w")"; g_rps="$(num rps <<<"$g")"
  for e in "$(num errors <<<"$w")" "$(num errors <<<"$g")"; do
    [ "$e" = "0" ] || echo "warning: $e failed requests at concurrency $c" >&2
  done
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
  rows+=("| $c | $r_rps | $r_p50 / $r_p99 | $w_rps | $(num p50_ms <<<"$w") / $(num p99_ms <<<"$w") | $g_rps | $(num p50_ms <<<"$g") / $(num p99_ms <<<"$g") | $(ratio "$g_rps" "$w_rps") | $(ratio "$g_rps" "$r_rps") |")
done

echo
echo "EVALSHA (fixed-window step), ${DURATION}s per cell, $(nproc) cores, redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), gateway pool $POOL_SIZE"
echo
echo "| conc | redis req/s | redis p50/p99 ms | webdis req/s | webdis p50/p99 ms | gateway req/s | gateway p50/p99 ms | gateway/webdis | gateway/redis |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
