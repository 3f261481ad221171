#!/usr/bin/env bash
# Rate-limit decisions through the REST gateway: edgelimit's Redis REST store
# (Rust, examples/rest_bench.rs) next to @upstash/ratelimit (Node,
# upstash.mjs), same algorithm and configuration, same gateway, same
# redis-server, in one run, at concurrency 1, 10 and 100, all on loopback.
#
#   bench/redis-store/run.sh     # ROUNDS=3 rounds, DURATION=4 seconds per cell
#   ROUNDS=1 DURATION=3 CONCURRENCY="1 10" bench/redis-store/run.sh
#
# Algorithms (identical on both sides):
#   token bucket   capacity 100, 10 tokens back every 1 s
#                  ours: TokenBucket::new(100, 10, "1 s")
#                  theirs: Ratelimit.tokenBucket(10, "1 s", 100)
#   sliding window 100 calls per 10 s
#                  ours: SlidingWindow::new(100, "10 s")
#                  theirs: Ratelimit.slidingWindow(100, "10 s")
# Calls cycle round-robin through KEYS=10000 keys, so nearly every call is
# allowed (the summary prints the share); Redis is flushed before each cell.
#
# Prints a Markdown table with the ratios ours/theirs and writes it, with
# the command and the date, to bench/redis-store/RESULTS.md.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/bench/redis-store"
# The gateway is its own cargo workspace; both builds follow CARGO_TARGET_DIR
# when it is set, and each workspace's default otherwise.
gw_target="${CARGO_TARGET_DIR:-$root/gateway/target}"
bench_target="${CARGO_TARGET_DIR:-$root/target}"
DURATION="${DURATION:-4}"
ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-1 10 100}"
KEYS="${KEYS:-10000}"
WARMUP="${WARMUP:-0.5}"
COUNT_SECS="${COUNT_SECS:-1}"
# @upstash/redis batches concurrent commands into /pipeline requests by
# default; AUTO_PIPELINE=off measures it without.
AUTO_PIPELINE="${AUTO_PIPELINE:-on}"
ALGORITHMS="token-bucket sliding-window"
TOKEN="bench-token"

command_line="bash bench/redis-store/run.sh"
for v in DURATION ROUNDS CONCURRENCY KEYS WARMUP COUNT_SECS AUTO_PIPELINE; do
  if printenv "$v" >/dev/null; then command_line="$v=\"${!v}\" $command_line"; fi
done
started=$SECONDS

bash "$root/tools/ensure-redis.sh" >/dev/null
(cd "$root/gateway" && CARGO_TARGET_DIR="$gw_target" \
  cargo build --locked --release --bin edgelimit-gateway 2>&1 | tail -1)
(cd "$root" && CARGO_TARGET_DIR="$bench_target" \
  cargo build --locked --release --example rest_bench 2>&1 | tail -1)
gateway="$gw_target/release/edgelimit-gateway"
ours_bin="$bench_target/release/examples/rest_bench"
if [ ! -d "$here/node_modules" ] || [ "$here/package-lock.json" -nt "$here/node_modules" ]; then
  (cd "$here" && npm ci --no-audit --no-fund >/dev/null)
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

# The measured gateway, quiet.
gw_port="$(free_port)"
EDGELIMIT_GATEWAY_LOG=warn "$gateway" --listen "127.0.0.1:$gw_port" \
  --redis-url "redis://127.0.0.1:$redis_port" --token "$TOKEN" \
  2>"$work/gateway.log" &
pids+=($!)
wait_port "$gw_port"

# A second gateway on the same Redis logging one line per HTTP request: the
# request counter of the short counting pass (its logging would slow the
# timed runs, so they never use it).
count_port="$(free_port)"
EDGELIMIT_GATEWAY_LOG=debug "$gateway" --listen "127.0.0.1:$count_port" \
  --redis-url "redis://127.0.0.1:$redis_port" --token "$TOKEN" \
  2>"$work/count-gateway.log" &
pids+=($!)
wait_port "$count_port"

flush() { redis-cli -p "$redis_port" FLUSHALL >/dev/null; }
num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
served() { grep -c 'edgelimit_gateway::http: request' "$work/count-gateway.log" || true; }

# run_ours|run_theirs PORT ALGORITHM CONCURRENCY SECONDS WARMUP: one JSON line.
run_ours() {
  timeout $(($(printf '%.0f' "$4") + 60)) "$ours_bin" --url "http://127.0.0.1:$1" --token "$TOKEN" \
    --algorithm "$2" --concurrency "$3" --duration-secs "$4" --warmup-secs "$5" --keys "$KEYS"
}
run_theirs() {
  (cd "$here" && timeout $(($(printf '%.0f' "$4") + 60)) node upstash.mjs \
    --url "http://127.0.0.1:$1" --token "$TOKEN" \
    --algorithm "$2" --concurrency "$3" --duration-secs "$4" --warmup-secs "$5" --keys "$KEYS" \
    --auto-pipeline "$AUTO_PIPELINE")
}

# Timed runs. Best of ROUNDS rounds (by decisions/s), the two clients
# interleaved cell by cell and taking turns going first: on a shared 2-core
# machine background load only ever lowers a result, so the best round is
# the least disturbed one.
declare -A best
declare -A allowed_total decisions_total errors_total
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="ours theirs"; else order="theirs ours"; fi
  for algo in $ALGORITHMS; do
    for c in $CONCURRENCY; do
      for who in $order; do
        flush
        out="$("run_$who" "$gw_port" "$algo" "$c" "$DURATION" "$WARMUP")"
        read -r rps p50 p99 d a e <<<"$(for f in rps p50_ms p99_ms decisions allowed errors; do
          num "$f" <<<"$out"; done | tr '\n' ' ')"
        extra=""
        [ "$who" = ours ] || extra=" fetch req/decision $(awk -v r="$(num requests <<<"$out")" \
          -v d="$d" -v e="$e" 'BEGIN { printf "%.3f", r / (d + e) }')"
        echo "round $round $algo c=$c $who: $rps/s p50 $p50 p99 $p99 ms, allowed $a/$d, errors $e$extra" >&2
        [ "$e" = 0 ] || echo "warning: $e failed decisions ($who $algo c=$c)" >&2
        allowed_total[$who]=$((${allowed_total[$who]:-0} + a))
        decisions_total[$who]=$((${decisions_total[$who]:-0} + d))
        errors_total[$who]=$((${errors_total[$who]:-0} + e))
        prev="${best[$who,$algo,$c]:-}"
        if [ -z "$prev" ] || [ "$rps" -gt "${prev%% *}" ]; then
          best[$who,$algo,$c]="$rps $p50 $p99"
        fi
      done
    done
  done
done

# Counting pass: HTTP requests per decision, counted by the gateway. A first
# short run per client teaches the counting gateway each script (the SHA map
# of @upstash/ratelimit's shebang scripts is per gateway process), so the
# counts are the steady state.
declare -A per_decision
for algo in $ALGORITHMS; do
  for who in ours theirs; do
    flush
    "run_$who" "$count_port" "$algo" 1 0.1 0 >/dev/null
  done
  for c in $CONCURRENCY; do
    for who in ours theirs; do
      flush
      before="$(served)"
      out="$("run_$who" "$count_port" "$algo" "$c" "$COUNT_SECS" 0)"
      sleep 0.2
      after="$(served)"
      calls=$(($(num decisions <<<"$out") + $(num errors <<<"$out")))
      per_decision[$who,$algo,$c]="$(awk -v r=$((after - before)) -v d="$calls" \
        'BEGIN { if (d > 0) printf "%.3f", r / d; else print "n/a" }')"
      echo "count $algo c=$c $who: $((after - before)) HTTP requests for $calls decisions" >&2
    done
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f%%", 100 * a / b; else print "n/a" }'; }
name() { case "$1" in token-bucket) echo "token bucket" ;; *) echo "sliding window" ;; esac; }
rows=()
for algo in $ALGORITHMS; do
  for c in $CONCURRENCY; do
    read -r o_rps o_p50 o_p99 <<<"${best[ours,$algo,$c]}"
    read -r t_rps t_p50 t_p99 <<<"${best[theirs,$algo,$c]}"
    rows+=("| $(name "$algo") | $c | $o_rps | $o_p50 / $o_p99 | ${per_decision[ours,$algo,$c]} | $t_rps | $t_p50 / $t_p99 | ${per_decision[theirs,$algo,$c]} | $(ratio "$o_rps" "$t_rps") | $(ratio "$o_p50" "$t_p50") | $(ratio "$o_p99" "$t_p99") |")
  done
done

runtime=$((SECONDS - started))
table="$(
  echo "| algorithm | conc | ours dec/s | ours p50 / p99 ms | ours HTTP req/dec | theirs dec/s | theirs p50 / p99 ms | theirs HTTP req/dec | dec/s ours/theirs | p50 ours/theirs | p99 ours/theirs |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
)"
summary="$(
  cat <<EOF
Best of $ROUNDS interleaved rounds of ${DURATION}s per cell (after ${WARMUP}s unrecorded warm-up), $(nproc) cores, redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), node $(node --version), @upstash/ratelimit $(node -p 'require("'"$here"'/node_modules/@upstash/ratelimit/package.json").version') + @upstash/redis $(node -p 'require("'"$here"'/node_modules/@upstash/redis/package.json").version'), $KEYS keys round-robin, @upstash/redis auto-pipelining $AUTO_PIPELINE.
Allowed: ours $(pct "${allowed_total[ours]}" "${decisions_total[ours]}") of ${decisions_total[ours]} decisions, theirs $(pct "${allowed_total[theirs]}" "${decisions_total[theirs]}") of ${decisions_total[theirs]}; failed calls: ours ${errors_total[ours]}, theirs ${errors_total[theirs]}.
EOF
)"

echo
echo "$summary"
echo
echo "$table"
echo
echo "runtime ${runtime}s"

cat >"$here/RESULTS.md" <<EOF
# Redis store benchmark: edgelimit vs @upstash/ratelimit

Measured $(date -u '+%Y-%m-%d %H:%M UTC') with

\`\`\`sh
$command_line
\`\`\`

(from the repository root; \`make bench-redis\` runs the same). Runtime ${runtime}s.

$summary

$table

- Setup: one \`redis-server\` (no persistence) and one \`edgelimit-gateway\`
  (release build, default pool of 4 connections), everything on loopback
  and sharing the same cores with both load generators.
- Ours: \`examples/rest_bench.rs\`, N OS threads each with a blocking
  \`Limiter\` sharing one \`RedisRestStore\` (one reqwest connection pool),
  time from Redis \`TIME\`; one EVALSHA per decision.
- Theirs: \`upstash.mjs\`, N concurrent async loops in one Node process
  sharing one \`Ratelimit\` with \`ephemeralCache: false\` (every call reaches
  Redis) and analytics off; \`@upstash/redis\` with its defaults, where
  auto-pipelining is on: concurrent calls are batched into one
  \`/pipeline\` request, hence fewer than one HTTP request per decision at
  concurrency above 1 (\`AUTO_PIPELINE=off\` turns it off). Its scripts
  take the client's \`Date.now()\`.
- Token bucket: capacity 100, 10 tokens back every 1 s. Sliding window:
  100 per 10 s. Calls cycle round-robin through $KEYS keys and Redis is
  flushed before every cell, so nearly every call is allowed.
- Latency is per decision, measured around one \`limit()\` call, closed loop.
- HTTP req/dec: counted by a second gateway on the same Redis logging one
  line per request, in a separate ${COUNT_SECS}s pass per cell (steady state:
  scripts already cached).
- Ratios: dec/s above 1 and latency below 1 mean edgelimit is ahead.
EOF
echo "wrote ${here#"$root"/}/RESULTS.md" >&2
