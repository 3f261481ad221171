# Shared by the benchmark scripts: free loopback ports, waiting for a
# server, and stopping every process a script started. Source it, then add
# each server's pid to `pids` and put scratch files under "$work".

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

# A port nothing listens on (and, with an argument, whose port + that
# offset is free too: a Redis Cluster node's bus port).
free_port() {
  local p offset="${1:-}"
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 35000))
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi
    if [ -n "$offset" ] && (exec 3<>"/dev/tcp/127.0.0.1/$((p + offset))") 2>/dev/null; then continue; fi
    echo "$p"
    return
  done
  echo "no free port found" >&2
  exit 1
}

# Waits until something listens on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listening on port $1" >&2
  exit 1
}
