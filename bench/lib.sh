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
trap 'exit 130' INT
trap 'exit 143' TERM
