#!/usr/bin/env bash
# What Redis Cluster costs and buys behind the gateway on one machine: the
# same limiter step (a fixed-window EVALSHA, as @upstash/ratelimit sends
# it) over 10,000 keys through the gateway, once in front of one
# redis-server and once in front of a three-master cluster (redis-cli
# --cluster create, no replicas), at concurrency 1, 10 and 100, with the
# Rust load generator (gateway/examples/loadgen.rs). All on loopback.
#
#   bash bench/gateway/cluster.sh      # ROUNDS=3 rounds, DURATION=5 s per cell
#
# Prints a Markdown table and writes it, with the command and the date, to
# bench/gateway/CLUSTER.md.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-1 10 100}"
KEYS="${KEYS:-10000}"
TOKEN="bench-token"
started=$(date +%s)

# shellcheck source=../lib.sh
source "$root/bench/lib.sh"
bash "$root/tools/ensure-redis.sh" >/dev/null
(cd "$root" && cargo build --locked --release -p edgelimit-gateway --bin edgelimit-gateway --example loadgen 2>&1 | tail -1)
gateway="$CARGO_TARGET_DIR/release/edgelimit-gateway"
loadgen="$CARGO_TARGET_DIR/release/examples/loadgen"

redis() {
  local port=$1
  shift
  start_redis "$port" "$work/$port" "$@"
}

# Starts a gateway in front of the Redis at port $1 (further arguments are
# its flags); its port is left in gw_port (not printed: a command
# substitution would lose the pid).
gateway_on() {
  gw_port="$(free_port)"
  EDGELIMIT_GATEWAY_LOG=warn "$gateway" --listen "127.0.0.1:$gw_port" \
    --redis-url "redis://127.0.0.1:$1" --token "$TOKEN" "${@:2}" \
    2>"$work/gateway-$gw_port.log" &
  pids+=($!)
  wait_port "$gw_port"
}

single_port="$(free_port)"
redis "$single_port"
gateway_on "$single_port"
single_gw="$gw_port"

cluster_ports=()
for _ in 1 2 3; do
  p="$(free_port 10000)"
  redis "$p" --cluster-enabled yes --cluster-config-file "$work/nodes-$p.conf"
  cluster_ports+=("$p")
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") \
  --cluster-replicas 0 --cluster-yes >/dev/null
for p in "${cluster_ports[@]}"; do
  until redis-cli -p "$p" CLUSTER INFO | grep -q cluster_state:ok; do sleep 0.1; done
done
gateway_on "${cluster_ports[0]}" --cluster
cluster_gw="$gw_port"

# The step @upstash/ratelimit's fixedWindow sends, with its shebang; loaded
# through the gateway (on every master of the cluster).
script=$'#!lua flags=allow-key-locking\nlocal n = redis.call("INCRBY", KEYS[1], 1)\nif n == 1 then redis.call("PEXPIRE", KEYS[1], ARGV[1]) end\nreturn n'
load_body="$(node -e 'process.stdout.write(JSON.stringify(["SCRIPT","LOAD",process.argv[1]]))' "$script")"
sha=""
for gw in "$single_gw" "$cluster_gw"; do
  got="$(curl -sf -H "Authorization: Bearer $TOKEN" -d "$load_body" "http://127.0.0.1:$gw/")"
  sha="$(sed -n 's/.*"result":"\([0-9a-f]*\)".*/\1/p' <<<"$got")"
  [ -n "$sha" ] || { echo "SCRIPT LOAD through the gateway returned $got" >&2; exit 1; }
done

num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
# Prints "rps p50_ms p99_ms".
measure() {
  local out e
  out="$("$loadgen" --port "$1" --method POST --path / \
    --header "Authorization: Bearer $TOKEN" --header "Content-Type: application/json" \
    --body "[\"EVALSHA\",\"$sha\",\"1\",\"bench:{key}\",\"60000\"]" --keys "$KEYS" \
    --expect result --concurrency "$2" --duration-secs "$DURATION")"
  e="$(num errors <<<"$out")"
  [ "$e" = "0" ] || echo "warning: $e failed requests" >&2
  echo "$(num rps <<<"$out") $(num p50_ms <<<"$out") $(num p99_ms <<<"$out")"
}

# Best of ROUNDS interleaved rounds (background load only lowers a result).
declare -A best
for round in $(seq 1 "$ROUNDS"); do
  for c in $CONCURRENCY; do
    for who in single cluster; do
      port="$single_gw"
      [ "$who" = cluster ] && port="$cluster_gw"
      r="$(measure "$port" "$c")"
      echo "round $round c=$c $who: $r" >&2
      keep_best "$who,$c" "$r"
    done
  done
done

table="| conc | one redis: req/s | p50 / p99 ms | 3-master cluster: req/s | p50 / p99 ms | cluster / one |
|---:|---:|---:|---:|---:|---:|"
for c in $CONCURRENCY; do
  read -r s_rps s_p50 s_p99 <<<"${best[single,$c]}"
  read -r k_rps k_p50 k_p99 <<<"${best[cluster,$c]}"
  table+=$'\n'"| $c | $s_rps | $s_p50 / $s_p99 | $k_rps | $k_p50 / $k_p99 | $(ratio "$k_rps" "$s_rps") |"
done

summary="EVALSHA (fixed-window step) over $KEYS keys through the gateway (release build, default flags), best of $ROUNDS rounds of ${DURATION}s per cell, $(nproc) cores, redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'). Runtime $(( $(date +%s) - started ))s."
echo
echo "$summary"
echo
echo "$table"
{
  echo "# The gateway in front of one Redis and of a Redis Cluster"
  echo
  echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC with \`bash bench/gateway/cluster.sh\`."
  echo
  echo "$summary"
  echo
  echo "$table"
} >"$root/bench/gateway/CLUSTER.md"
