#!/usr/bin/env bash
# The gateway on its own Redis client (src/conn.rs, pool.rs, resp.rs) against
# the same gateway built on redis-rs and on fred
# (RUSTFLAGS='--cfg edgelimit_gateway_client="redis-rs"' or "fred"; see
# gateway/Cargo.toml), in one run, interleaved, against one redis-server:
# EVALSHA of a fixed-window limiter step (as bench/gateway/run.sh) and a
# 10-command pipeline of INCRs, at each concurrency.
#
#   bench/gateway/clients.sh   # ROUNDS=3 DURATION=3 CONCURRENCY="10 100"
#
# Builds three release binaries (one per client; the library ones in target
# directories of their own, since their RUSTFLAGS differ) under
# $CARGO_TARGET_DIR (BUILD=0: use the ones a previous run built).
# Prints the median of the rounds per cell, and each library's ratio to
# the gateway's own client within the same run.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
DURATION="${DURATION:-3}"
ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-10 100}"
POOL_SIZE="${POOL_SIZE:-}"   # empty: the gateway's default (one per serving thread)
TOKEN="bench-token"

bash "$root/tools/ensure-redis.sh" >/dev/null
bins="$CARGO_TARGET_DIR/clients-bench"
mkdir -p "$bins"
build() { # client [cfg value]
  local dir="$CARGO_TARGET_DIR" flags="${RUSTFLAGS:-}"
  if [ -n "${2:-}" ]; then
    dir="$CARGO_TARGET_DIR/client-$1"
    flags="$flags --cfg edgelimit_gateway_client=\"$2\""
  fi
  (cd "$root" && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$dir" cargo build --locked --release \
    -p edgelimit-gateway --bin edgelimit-gateway --example loadgen 2>&1 | tail -1)
  cp "$dir/release/edgelimit-gateway" "$bins/$1"
}
if [ "${BUILD:-1}" != 0 ]; then
  build own
  build redis-rs redis-rs
  build fred fred
fi
loadgen="$CARGO_TARGET_DIR/release/examples/loadgen"

# shellcheck source=../lib.sh
source "$root/bench/lib.sh"

redis_port="$(free_port)"
start_redis "$redis_port" "$work"

clients=(own redis-rs fred)
declare -A port
for c in "${clients[@]}"; do
  port[$c]="$(free_port)"
  EDGELIMIT_GATEWAY_LOG=warn "$bins/$c" --listen "127.0.0.1:${port[$c]}" \
    --redis-url "redis://127.0.0.1:$redis_port" --token "$TOKEN" ${POOL_SIZE:+--pool-size "$POOL_SIZE"} \
    2>"$work/gateway-$c.log" &
  pids+=($!)
  wait_port "${port[$c]}"
done

body=$'\nlocal n = redis.call("INCRBY", KEYS[1], 1)\nif n == 1 then redis.call("PEXPIRE", KEYS[1], ARGV[1]) end\nreturn n'
shebang="#!lua flags=allow-key-locking$body"
orig_sha="$(printf '%s' "$shebang" | sha1sum | cut -d' ' -f1)"
load_body="$(printf '["SCRIPT","LOAD",%s]' "$(printf '%s' "$shebang" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.stringify(s)))')")"
for c in "${clients[@]}"; do
  got="$(curl -sf -H "Authorization: Bearer $TOKEN" -d "$load_body" "http://127.0.0.1:${port[$c]}/")"
  [[ "$got" == *"$orig_sha"* ]] || { echo "$c: SCRIPT LOAD returned $got" >&2; exit 1; }
done
pipeline="[$(for i in 0 1 2 3 4 5 6 7 8 9; do printf '["INCR","bench:p%s"]\n' "$i"; done | paste -sd,)]"

num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
measure() { # client workload concurrency
  local out e path body expect
  if [ "$2" = evalsha ]; then
    path=/ body="[\"EVALSHA\",\"$orig_sha\",\"1\",\"bench:$1\",\"60000\"]" expect=result
  else
    path=/pipeline body="$pipeline" expect=result
  fi
  out="$("$loadgen" --port "${port[$1]}" --method POST --path "$path" \
    --header "Authorization: Bearer $TOKEN" --header "Upstash-Encoding: base64" \
    --header "Content-Type: application/json" --body "$body" --expect "$expect" \
    --concurrency "$3" --duration-secs "$DURATION")"
  e="$(num errors <<<"$out")"
  [ "$e" = "0" ] || echo "warning: $1 $2 c=$3: $e failed requests" >&2
  echo "$(num rps <<<"$out" | cut -d. -f1) $(num p50_ms <<<"$out") $(num p99_ms <<<"$out")"
}

declare -A rounds
for round in $(seq 1 "$ROUNDS"); do
  for w in evalsha pipeline; do
    for c in $CONCURRENCY; do
      for who in "${clients[@]}"; do
        r="$(measure "$who" "$w" "$c")"
        echo "round $round $w c=$c $who: $r" >&2
        keep_round "$who,$w,$c" "$r"
      done
    done
  done
done

echo
echo "Median of $ROUNDS interleaved rounds of ${DURATION}s per cell, $(nproc) cores, redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), pool ${POOL_SIZE:-default}"
echo
echo "| workload | conc | client | req/s | p50 ms | p99 ms | req/s vs own | p99 vs own |"
echo "|---|---:|---|---:|---:|---:|---:|---:|"
for w in evalsha pipeline; do
  for c in $CONCURRENCY; do
    own_rps="$(median $(round_field "own,$w,$c" 1))"
    own_p99="$(median $(round_field "own,$w,$c" 3))"
    for who in "${clients[@]}"; do
      rps="$(median $(round_field "$who,$w,$c" 1))"
      p50="$(median $(round_field "$who,$w,$c" 2))"
      p99="$(median $(round_field "$who,$w,$c" 3))"
      echo "| $w | $c | $who | $rps | $p50 | $p99 | $(ratio "$rps" "$own_rps") | $(ratio "$p99" "$own_p99") |"
    done
  done
done
