# Shared by the benchmark scripts: free loopback ports and waiting for a
# server (free_port, wait_port, npm_deps: tools/lib.sh), and stopping every
# process a script started. Source it, then add each server's pid to `pids`
# and put scratch files under "$work".

# shellcheck source=../tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start_redis PORT DIR [ARGS...]: a throwaway redis-server on 127.0.0.1:PORT
# (no persistence, its files in DIR), stopped on exit; returns once it listens.
start_redis() {
  local port=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" "$@" &
  pids+=($!)
  wait_port "$port"
}

# Rounds of a benchmark: in the caller's associative array `best`, keeps
# under KEY the result "rps p50 p99" with the most requests per second (on a
# shared machine, background load only ever lowers a result).
keep_best() {
  local key="$1" result="$2" prev="${best[$1]:-}"
  if [ -z "$prev" ] || [ "${result%% *}" -gt "${prev%% *}" ] 2>/dev/null; then
    best[$key]="$result"
  fi
}

# Rounds of a benchmark, for medians: in the caller's associative array
# `rounds`, appends under KEY one round's result ("rps p50 p99").
keep_round() { rounds[$1]="${rounds[$1]:+${rounds[$1]};}$2"; }

# The median of the numbers given as arguments (the lower middle one of an
# even count), or n/a when there is none.
median() {
  [ "$#" -gt 0 ] || { echo n/a; return; }
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# Field N (1: rps, 2: p50, 3: p99) of every round kept under KEY, one per line.
round_field() { tr ';' '\n' <<<"${rounds[$1]}" | awk -v n="$2" 'NF { print $n }'; }

# A / B to two decimals, or n/a when B is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
trap 'exit 130' INT
trap 'exit 143' TERM
