#!/usr/bin/env bash
# EVALSHA throughput and latency: direct Redis (redis-benchmark, the
# ceiling), webdis and edgelimit-gateway, side by side in one run, at
# concurrency 1, 10 and 100, all on loopback against the same redis-server.
#
#   bench/gateway/run.sh     # ROUNDS=3 rounds, DURATION=5 seconds per cell
#   ROUNDS=1 DURATION=10 CONCURRENCY="1 10 100" bench/gateway/run.sh
#
# Prints a Markdown table with the ratios gateway/webdis and gateway/redis.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-1 10 100}"
POOL_SIZE="${POOL_SIZE:-}"   # empty: the gateway's default (one per serving thread)
GATEWAY_FLAGS="${GATEWAY_FLAGS:-}"   # extra gateway flags, e.g. "--threads 1"
TOKEN="bench-token"

bash "$root/tools/ensure-redis.sh" >/dev/null
bash "$root/tools/ensure-webdis.sh" >/dev/null
(cd "$root" && cargo build --locked --release -p edgelimit-gateway --bin edgelimit-gateway --example loadgen 2>&1 | tail -1)
gateway="$CARGO_TARGET_DIR/release/edgelimit-gateway"
loadgen="$CARGO_TARGET_DIR/release/examples/loadgen"

# shellcheck source=../lib.sh
source "$root/bench/lib.sh"

redis_port="$(free_port)"
start_redis "$redis_port" "$work"
redis_pid="${pids[-1]}"

gw_port="$(free_port)"
EDGELIMIT_GATEWAY_LOG=warn "$gateway" --listen "127.0.0.1:$gw_port" \
  --redis-url "redis://127.0.0.1:$redis_port" --token "$TOKEN" ${POOL_SIZE:+--pool-size "$POOL_SIZE"} $GATEWAY_FLAGS \
  2>"$work/gateway.log" &
gateway_pid=$!
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
webdis_pid=$!
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

# Each measurement prints "rps p50_ms p99_ms" (HTTP ones add the EVALSHA
# calls per Redis read and the CPU µs per request of the server and Redis).
run_redis() {
  local c=$1 n csv
  # A request count sized to roughly DURATION seconds.
  n=$(( c == 1 ? 25000 * DURATION : 60000 * DURATION ))
  csv="$(redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$c" -n "$n" --csv \
    EVALSHA "$sha" 1 bench:redis 60000 | tail -1 | tr -d '"')"
  echo "$(cut -d, -f2 <<<"$csv" | cut -d. -f1) $(cut -d, -f5 <<<"$csv") $(cut -d, -f7 <<<"$csv")"
}
report() {
  local out=$1 c=$2 e
  e="$(num errors <<<"$out")"
  [ "$e" = "0" ] || echo "warning: $e failed requests at concurrency $c" >&2
  echo "$(num rps <<<"$out") $(num p50_ms <<<"$out") $(num p99_ms <<<"$out")"
}
# Redis's own counters: EVALSHA calls and socket reads, "calls reads".
redis_counters() {
  redis-cli -p "$redis_port" INFO all | tr -d '\r' | awk -F'[:=,]' '
    $1 == "cmdstat_evalsha" { c = $3 }
    $1 == "total_reads_processed" { r = $2 }
    END { print c + 0, r + 0 }'
}
# CPU time a process has used, in clock ticks (user + system).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Runs a load generator (the arguments) against the HTTP server SERVER_PID
# and prints its "rps p50 p99", then, over its measured seconds, the EVALSHA
# calls Redis took in per socket read (how well the server gathered
# concurrent requests into shared writes) and the CPU time per request of
# the server and of Redis, in µs.
measured() {
  local c=$1 server=$2 before after cpu0 cpu1 out
  shift 2
  "$loadgen" "$@" --concurrency "$c" --duration-secs "$DURATION" >"$work/loadgen.out" &
  local lg=$!
  sleep 1 # the load generator's warm-up: it counts requests from here
  before="$(redis_counters)"
  cpu0="$(cpu_ticks "$server") $(cpu_ticks "$redis_pid")"
  wait "$lg"
  cpu1="$(cpu_ticks "$server") $(cpu_ticks "$redis_pid")"
  after="$(redis_counters)"
  out="$(cat "$work/loadgen.out")"
  echo "$(report "$out" "$c") $(awk -v b="$before" -v a="$after" -v c0="$cpu0" -v c1="$cpu1" \
    -v n="$(num requests <<<"$out")" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(b, x, " "); split(a, y, " "); split(c0, p, " "); split(c1, q, " ")
    if (y[2] > x[2]) printf "%.1f", (y[1] - x[1]) / (y[2] - x[2]); else printf "n/a"
    if (n > 0) printf " %.1f %.1f", (q[1] - p[1]) / hz * 1e6 / n, (q[2] - p[2]) / hz * 1e6 / n
    else printf " n/a n/a" }')"
}
run_webdis() {
  measured "$1" "$webdis_pid" --port "$webdis_port" --method GET \
    --path "/EVALSHA/$sha/1/bench:webdis/60000" --expect EVALSHA
}
run_gateway() {
  measured "$1" "$gateway_pid" --port "$gw_port" --method POST --path / \
    --header "Authorization: Bearer $TOKEN" --header "Upstash-Encoding: base64" \
    --header "Content-Type: application/json" \
    --body "[\"EVALSHA\",\"$orig_sha\",\"1\",\"bench:gateway\",\"60000\"]" --expect result
}

# ROUNDS interleaved rounds. A figure is the median of its rounds; a ratio
# the median of the rounds' own ratios (both sides measured seconds apart in
# the same round), with the lowest and highest round: one disturbed round
# moves neither.
declare -A rounds
for round in $(seq 1 "$ROUNDS"); do
  for c in $CONCURRENCY; do
    for who in redis webdis gateway; do
      r="$("run_$who" "$c")"
      echo "round $round c=$c $who: $r" >&2
      keep_round "$who,$c" "$r"
    done
  done
done

# The median and range of the per-round ratios of A's rps to B's at C.
paired() {
  local -a a b ratios=()
  mapfile -t a < <(round_field "$1,$3" 1)
  mapfile -t b < <(round_field "$2,$3" 1)
  for i in "${!a[@]}"; do ratios+=("$(ratio "${a[$i]}" "${b[$i]}")"); done
  local sorted
  sorted="$(printf '%s\n' "${ratios[@]}" | sort -g | tr '\n' ' ')"
  echo "$(median "${ratios[@]}") (${sorted%% *}–$(awk '{ print $NF }' <<<"$sorted"))"
}
cell() { # WHO C: "rps | p50 / p99", medians
  echo "$(median $(round_field "$1,$2" 1)) | $(median $(round_field "$1,$2" 2)) / $(median $(round_field "$1,$2" 3))"
}
per_read() { # WHO C: EVALSHA calls per Redis read while WHO was measured, median
  median $(round_field "$1,$2" 4 | grep -v n/a)
}
cpu() { # WHO C: CPU µs per request of WHO + of Redis, medians
  echo "$(median $(round_field "$1,$2" 5 | grep -v n/a)) + $(median $(round_field "$1,$2" 6 | grep -v n/a))"
}

rows=()
for c in $CONCURRENCY; do
  rows+=("| $c | $(cell redis "$c") | $(cell webdis "$c") | $(cell gateway "$c") | $(paired gateway webdis "$c") | $(paired gateway redis "$c") | $(per_read webdis "$c") / $(per_read gateway "$c") | $(cpu webdis "$c") / $(cpu gateway "$c") |")
done

echo
echo "EVALSHA (fixed-window step), medians of $ROUNDS interleaved rounds of ${DURATION}s per cell, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), gateway pool ${POOL_SIZE:-default} $GATEWAY_FLAGS"
echo
echo "| conc | redis req/s | redis p50/p99 ms | webdis req/s | webdis p50/p99 ms | gateway req/s | gateway p50/p99 ms | gateway/webdis (rounds) | gateway/redis (rounds) | EVALSHA per Redis read, webdis / gateway | CPU µs per request, server + Redis, webdis / gateway |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
