#!/usr/bin/env bash
# Rate-limit decisions through the REST gateway, side by side in one run:
# edgelimit's npm package in Node (the Redis store) next to
# @upstash/ratelimit in Node (the same runtime: the comparison edge users
# make), and edgelimit's native Rust stores, blocking and async. Same
# algorithms and configurations, same gateway, same redis-server, all on
# loopback, at concurrency 1, 10 and 100.
#
#   bench/redis-store/run.sh     # ROUNDS=3 rounds, DURATION=3 seconds per cell
#   ROUNDS=1 DURATION=2 CONCURRENCY="1 10" WORKLOADS=spread bench/redis-store/run.sh
#
# Algorithms (identical on both sides):
#   token bucket   capacity 100, 10 tokens back every 1 s
#                  ours: TokenBucket::new(100, 10, "1 s") / Ratelimit.tokenBucket(10, "1 s", 100)
#                  theirs: Ratelimit.tokenBucket(10, "1 s", 100)
#   sliding window 100 calls per 10 s, Ratelimit.slidingWindow(100, "10 s") on both sides
# Workloads:
#   spread  calls cycle round-robin through 10000 keys: nearly every call
#           is allowed, no key is seen twice in a burst (batching is what
#           helps; caches cannot).
#   hot     calls cycle through 10 keys, far over their limits: nearly
#           every call is denied (the deny cache is what helps).
# Clients (JS ones: one Node process, N concurrent async loops; native:
# N threads, or N tokio tasks):
#   npm            edgelimit's package, calls made together batched (default)
#   npm-unbatched  the same with batch: false
#   npm-nocache    (hot) the same with denyCache: 0
#   npm-lease      (sliding window) the same with lease: { units: 10 }
#   upstash        @upstash/ratelimit, auto-pipelining on (its default);
#                  ephemeralCache off in spread, on (its default) in hot
#   upstash-nocache (hot) ephemeralCache off
#   native-async   examples/rest_bench.rs, AsyncRedisRestStore (batched)
#   native-blocking examples/rest_bench.rs, RedisRestStore, one thread per loop
# Redis is flushed before each cell. HTTP requests per decision are counted
# by a second gateway on the same Redis that logs each request, in a short
# separate pass per cell (its logging would slow the timed runs).
#
# Prints a Markdown table with ratios against @upstash/ratelimit and writes
# it, with the command and the date, to bench/redis-store/RESULTS.md (or
# to the file RESULTS names, relative to the repository root: a partial
# run then leaves the full table alone).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/bench/redis-store"
# One cargo workspace: both builds follow CARGO_TARGET_DIR when it is set.
gw_target="${CARGO_TARGET_DIR:-$root/target}"
bench_target="${CARGO_TARGET_DIR:-$root/target}"
DURATION="${DURATION:-3}"
ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-1 10 100}"
WORKLOADS="${WORKLOADS:-spread hot}"
WARMUP="${WARMUP:-0.5}"
COUNT_SECS="${COUNT_SECS:-1}"
ALGORITHMS="token-bucket sliding-window"
TOKEN="bench-token"
results="$root/${RESULTS:-bench/redis-store/RESULTS.md}"

command_line="bash bench/redis-store/run.sh"
for v in DURATION ROUNDS CONCURRENCY WORKLOADS WARMUP COUNT_SECS RESULTS INFLIGHT; do
  if printenv "$v" >/dev/null; then command_line="$v=\"${!v}\" $command_line"; fi
done
started=$SECONDS
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

bash "$root/tools/ensure-redis.sh" >/dev/null
(cd "$root" && CARGO_TARGET_DIR="$gw_target" \
  cargo build --locked --release -p edgelimit-gateway --bin edgelimit-gateway 2>&1 | tail -1)
(cd "$root" && CARGO_TARGET_DIR="$bench_target" \
  cargo build --locked --release --example rest_bench 2>&1 | tail -1)
[[ -f "$root/pkg/node.js" ]] || (cd "$root" && make --quiet pkg >/dev/null)
gateway="$gw_target/release/edgelimit-gateway"
native_bin="$bench_target/release/examples/rest_bench"
# shellcheck source=../lib.sh
source "$root/bench/lib.sh"
npm_deps ci "$here" >/dev/null

redis_port="$(free_port)"
start_redis "$redis_port" "$work"

# The measured gateway, quiet.
gw_port="$(free_port)"
EDGELIMIT_GATEWAY_LOG=warn "$gateway" --listen "127.0.0.1:$gw_port" \
  --redis-url "redis://127.0.0.1:$redis_port" --token "$TOKEN" \
  2>"$work/gateway.log" &
pids+=($!)
wait_port "$gw_port"

# A second gateway on the same Redis logging one line per HTTP request: the
# request counter of the short counting pass.
count_port="$(free_port)"
EDGELIMIT_GATEWAY_LOG=debug "$gateway" --listen "127.0.0.1:$count_port" \
  --redis-url "redis://127.0.0.1:$redis_port" --token "$TOKEN" \
  2>"$work/count-gateway.log" &
pids+=($!)
wait_port "$count_port"

flush() { redis-cli -p "$redis_port" FLUSHALL >/dev/null; }
num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
served() { grep -c 'edgelimit_gateway::http: request' "$work/count-gateway.log" || true; }

clients_of() {
  case "$1" in
    spread) echo "npm npm-unbatched npm-lease upstash native-async native-blocking" ;;
    hot) echo "npm npm-nocache npm-lease upstash upstash-nocache native-async" ;;
  esac
}
# Whether CLIENT runs ALGORITHM: quota leases are for windows only.
runs() { [ "$1" != npm-lease ] || [ "$2" = sliding-window ]; }
keys_of() { case "$1" in spread) echo 10000 ;; hot) echo 10 ;; esac; }

# run CLIENT WORKLOAD PORT ALGORITHM CONCURRENCY SECONDS WARMUP: one JSON line.
run() {
  local client=$1 workload=$2 port=$3 algo=$4 c=$5 secs=$6 warm=$7
  local keys cache=off limit=$(($(printf '%.0f' "$secs") + 60))
  keys=$(keys_of "$workload")
  [ "$workload" = hot ] && cache=on
  local common=(--url "http://127.0.0.1:$port" --token "$TOKEN" --algorithm "$algo"
    --concurrency "$c" --duration-secs "$secs" --warmup-secs "$warm" --keys "$keys")
  case "$client" in
    npm) (cd "$here" && timeout "$limit" node node-client.mjs --client edgelimit "${common[@]}" --deny-cache "$cache") ;;
    npm-unbatched) (cd "$here" && timeout "$limit" node node-client.mjs --client edgelimit "${common[@]}" --batch off) ;;
    npm-nocache) (cd "$here" && timeout "$limit" node node-client.mjs --client edgelimit "${common[@]}" --deny-cache off) ;;
    npm-lease) (cd "$here" && timeout "$limit" node node-client.mjs --client edgelimit "${common[@]}" --deny-cache "$cache" --lease 10) ;;
    upstash) (cd "$here" && timeout "$limit" node node-client.mjs --client upstash "${common[@]}" --deny-cache "$cache") ;;
    upstash-nocache) (cd "$here" && timeout "$limit" node node-client.mjs --client upstash "${common[@]}" --deny-cache off) ;;
    native-async) timeout "$limit" "$native_bin" --store async "${common[@]}" --deny-cache "$cache" ;;
    native-blocking) timeout "$limit" "$native_bin" --store blocking "${common[@]}" --deny-cache "$cache" ;;
  esac
}

# Timed runs: ROUNDS rounds, clients interleaved cell by cell, their order
# reversed every other round. Each figure is the median of its rounds, and
# each ratio the median of the rounds' own ratios (ours and theirs measured
# seconds apart in the same round), so that one disturbed round moves
# neither.
declare -A rounds allowed_total decisions_total errors_total
for round in $(seq 1 "$ROUNDS"); do
  for workload in $WORKLOADS; do
    order=$(clients_of "$workload")
    [ $((round % 2)) -eq 0 ] && order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
    for algo in $ALGORITHMS; do
      for c in $CONCURRENCY; do
        for client in $order; do
          runs "$client" "$algo" || continue
          flush
          out="$(run "$client" "$workload" "$gw_port" "$algo" "$c" "$DURATION" "$WARMUP")"
          read -r rps p50 p99 d a e <<<"$(for f in rps p50_ms p99_ms decisions allowed errors; do
            num "$f" <<<"$out"; done | tr '\n' ' ')"
          echo "round $round $workload $algo c=$c $client: $rps/s p50 $p50 p99 $p99 ms, allowed $a/$d, errors $e" >&2
          [ "$e" = 0 ] || echo "warning: $e failed decisions ($client $workload $algo c=$c)" >&2
          allowed_total[$workload]=$((${allowed_total[$workload]:-0} + a))
          decisions_total[$workload]=$((${decisions_total[$workload]:-0} + d))
          errors_total[$workload]=$((${errors_total[$workload]:-0} + e))
          keep_round "$client,$workload,$algo,$c" "$rps $p50 $p99"
        done
      done
    done
  done
done

# The native async store's batching: decisions/s by Batching::max_in_flight
# (spread workload, one round), to choose its default.
INFLIGHT="${INFLIGHT:-1 2 4 8}"
declare -A inflight_rps
for algo in $ALGORITHMS; do
  for c in $CONCURRENCY; do
    for m in $INFLIGHT; do
      flush
      out="$(timeout $(($(printf '%.0f' "$DURATION") + 60)) "$native_bin" --store async \
        --url "http://127.0.0.1:$gw_port" --token "$TOKEN" --algorithm "$algo" --concurrency "$c" \
        --duration-secs "$DURATION" --warmup-secs "$WARMUP" --keys 10000 --max-in-flight "$m")"
      inflight_rps[$algo,$c,$m]="$(num rps <<<"$out") ($(num p99_ms <<<"$out") ms p99)"
      echo "native-async $algo c=$c max_in_flight=$m: ${inflight_rps[$algo,$c,$m]}" >&2
    done
  done
done

# Counting pass: HTTP requests per decision, counted by the gateway. A first
# short run per client teaches the counting gateway each script, so the
# counts are the steady state.
declare -A per_decision
for workload in $WORKLOADS; do
  for algo in $ALGORITHMS; do
    for client in $(clients_of "$workload"); do
      runs "$client" "$algo" || continue
      flush
      run "$client" "$workload" "$count_port" "$algo" 2 0.1 0 >/dev/null
    done
    for c in $CONCURRENCY; do
      for client in $(clients_of "$workload"); do
        runs "$client" "$algo" || continue
        flush
        before="$(served)"
        out="$(run "$client" "$workload" "$count_port" "$algo" "$c" "$COUNT_SECS" 0)"
        sleep 0.2
        after="$(served)"
        calls=$(($(num decisions <<<"$out") + $(num errors <<<"$out")))
        per_decision[$client,$workload,$algo,$c]="$(awk -v r=$((after - before)) -v d="$calls" \
          'BEGIN { if (d > 0) printf "%.4f", r / d; else print "n/a" }')"
        echo "count $workload $algo c=$c $client: $((after - before)) HTTP requests for $calls decisions" >&2
      done
    done
  done
done

pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f%%", 100 * a / b; else print "n/a" }'; }
name() { case "$1" in token-bucket) echo "token bucket" ;; *) echo "sliding window" ;; esac; }
# The peer a client is compared with: upstash with the same cache setting.
peer_of() { case "$1" in *-nocache) echo upstash-nocache ;; *) echo upstash ;; esac; }
rows=()
for workload in $WORKLOADS; do
  for algo in $ALGORITHMS; do
    for c in $CONCURRENCY; do
      for client in $(clients_of "$workload"); do
        runs "$client" "$algo" || continue
        key="$client,$workload,$algo,$c"
        rps=$(median $(round_field "$key" 1))
        p50=$(median $(round_field "$key" 2))
        p99=$(median $(round_field "$key" 3))
        # Ratios only like for like: JS clients in the same Node. The
        # native clients run Rust, and have no Rust peer here.
        vs_rps="–" vs_p99="–"
        if [ "$client" = "$(peer_of "$client")" ]; then
          vs_rps="1.00" vs_p99="1.00"
        elif [ "${client#native}" = "$client" ]; then
          peer="$(peer_of "$client"),$workload,$algo,$c"
          rps_ratios=($(paste -d' ' <(round_field "$key" 1) <(round_field "$peer" 1) |
            while read -r a b; do ratio "$a" "$b"; echo; done))
          p99_ratios=($(paste -d' ' <(round_field "$key" 3) <(round_field "$peer" 3) |
            while read -r a b; do ratio "$a" "$b"; echo; done))
          read -r lo hi <<<"$(printf '%s\n' "${rps_ratios[@]}" | sort -g | sed -n '1p;$p' | tr '\n' ' ')"
          vs_rps="$(median "${rps_ratios[@]}") (${lo}–${hi:-$lo})"
          vs_p99=$(median "${p99_ratios[@]}")
        fi
        rows+=("| $workload | $(name "$algo") | $c | $client | $rps | $p50 / $p99 | ${per_decision[$key]} | $vs_rps | $vs_p99 |")
      done
    done
  done
done

inflight_table="$(
  echo "| algorithm | conc |$(for m in $INFLIGHT; do printf ' max_in_flight %s |' "$m"; done)"
  echo "|---|---:|$(for m in $INFLIGHT; do printf -- '---:|'; done)"
  for algo in $ALGORITHMS; do
    for c in $CONCURRENCY; do
      echo "| $(name "$algo") | $c |$(for m in $INFLIGHT; do printf ' %s |' "${inflight_rps[$algo,$c,$m]}"; done)"
    done
  done
)"
runtime=$((SECONDS - started))
table="$(
  echo "| workload | algorithm | conc | client | dec/s | p50 / p99 ms | HTTP req/dec | dec/s vs upstash (rounds) | p99 vs upstash |"
  echo "|---|---|---:|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
)"
summary="$(
  echo "Load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end."
  echo "Medians of $ROUNDS interleaved rounds of ${DURATION}s per cell (after ${WARMUP}s unrecorded warm-up), $(nproc) cores, redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), node $(node --version), @upstash/ratelimit $(node -p 'require("'"$here"'/node_modules/@upstash/ratelimit/package.json").version') + @upstash/redis $(node -p 'require("'"$here"'/node_modules/@upstash/redis/package.json").version')."
  for workload in $WORKLOADS; do
    echo "$workload: allowed $(pct "${allowed_total[$workload]}" "${decisions_total[$workload]}") of ${decisions_total[$workload]} decisions, ${errors_total[$workload]} failed calls."
  done
)"

echo
echo "$summary"
echo
echo "$table"
echo
echo "runtime ${runtime}s"

cat >"$results" <<EOF
# Redis store benchmark: edgelimit vs @upstash/ratelimit

Measured $(date -u '+%Y-%m-%d %H:%M UTC') with

\`\`\`sh
$command_line
\`\`\`

(from the repository root; \`make bench-redis\` runs the same). Runtime ${runtime}s.

$summary

$table

- Setup: one \`redis-server\` (no persistence) and one \`edgelimit-gateway\`
  (release build, default pool), everything on loopback and sharing the
  same cores with the load generator.
- npm: \`node-client.mjs --client edgelimit\`, edgelimit's package from
  \`pkg/\` (its Node entry, whose requests go over kept-alive sockets), one
  \`Ratelimit\` on one \`redisStore\` shared by N async loops in one
  process; time from Redis. Calls made together share one request: one call
  of the batch script, or one EVALSHA each with \`npm-unbatched\`.
  \`npm-lease\` adds quota leases of 10 units (sliding window only): a
  call that reaches Redis takes up to 10 units of its key's window, spent
  by that key's next calls without a request. In spread, each key comes
  back once per 10000 calls, so leases pay off from the second pass over
  the keys.
- upstash: \`node-client.mjs --client upstash\`, one \`Ratelimit\` on one
  \`@upstash/redis\` client with its defaults (auto-pipelining on), analytics
  off, its ephemeral cache off in spread and on (its default) in hot. Its
  scripts take the client's \`Date.now()\`.
- native: \`examples/rest_bench.rs\`, \`AsyncRedisRestStore\` in tokio
  (batched), or \`RedisRestStore\` with one OS thread per loop.
- Latency is per decision, measured around one \`limit()\` call, closed loop.
- The native async store's \`Batching::max_in_flight\` (its default is 4),
  spread workload, one round, decisions/s (p99):

$inflight_table

- HTTP req/dec: counted by a second gateway on the same Redis logging one
  line per request, in a separate ${COUNT_SECS}s pass per cell (scripts
  already cached).
- Ratios: the npm package against upstash in the same Node, with the same
  cache setting (npm-nocache against upstash-nocache); dec/s above 1 and p99
  below 1 mean edgelimit is ahead. Each ratio is the median of the rounds'
  ratios (each round measures both clients seconds apart), with the lowest
  and highest round in brackets; dec/s and latencies are medians of the
  rounds. The native rows have no ratio: they run
  Rust, and a Rust client would be their peer; they show what the same
  gateway and Redis serve without Node.
EOF
echo "wrote ${results#"$root"/}" >&2
