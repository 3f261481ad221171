#!/usr/bin/env bash
# The npm package next to its peers, in one run (`make bench-pkg` builds
# pkg/ first, then runs this):
#   1. size.mjs       what a minimal Worker ships, against @upstash/ratelimit
#                     + @upstash/redis; fails when ours is above the ceiling
#   2. startup.mjs    wasm compile + instantiate and library import time,
#                     fresh Node process per sample
#   3. decisions.mjs  in-memory decisions/s against rate-limiter-flexible and
#                     limiter
# Prints the Markdown report and writes it, with the command and the date,
# to bench/pkg/RESULTS.md.
#
#   bash bench/pkg/run.sh
#   RUNS=5 ROUNDS=1 DURATION_MS=300 bash bench/pkg/run.sh   # quick look
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$root/bench/pkg"
cd "$here"

command_line="bash bench/pkg/run.sh"
for v in RUNS ROUNDS DURATION_MS WARMUP_MS; do
  if printenv "$v" >/dev/null; then command_line="$v=\"${!v}\" $command_line"; fi
done
started=$SECONDS
# Other work on the machine lowers every figure: the load is part of the record.
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

if [ ! -f "$root/pkg/package.json" ]; then
  echo "bench-pkg: no built package in pkg/ (run \`make pkg\`)" >&2
  exit 1
fi
# shellcheck source=../../tools/lib.sh
source "$root/tools/lib.sh"
npm_deps ci . >/dev/null
# The package is imported by name, as users do, so that its conditional
# exports pick the entry (node in Node, workerd in the Worker bundle). npm ci
# empties node_modules, hence the link is made here, not in package.json.
ln -sfn ../../../pkg node_modules/edgelimit

status=0
size="$(node size.mjs)" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then exit "$status"; fi
startup="$(node startup.mjs)"
decisions="$(node decisions.mjs)"

v() { node -p "require('./node_modules/$1/package.json').version"; }
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
report="Node $(node --version), $(nproc) cores (${cpu:-unknown CPU}); load average $load_before at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end.
Peers: @upstash/ratelimit $(v @upstash/ratelimit) + @upstash/redis $(v @upstash/redis), rate-limiter-flexible $(v rate-limiter-flexible), limiter $(v limiter); esbuild $(v esbuild).
edgelimit $(v edgelimit) from pkg/ (built by \`make pkg\`).

$size

$startup

$decisions"
runtime=$((SECONDS - started))

echo "$report"
echo
echo "runtime ${runtime}s"

{
  echo "# npm package benchmark: edgelimit vs its JS peers"
  echo
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') with"
  echo
  echo '```sh'
  echo "$command_line"
  echo '```'
  echo
  echo "(from the repository root, after \`make pkg\`; \`make bench-pkg\` runs both). Runtime ${runtime}s."
  echo
  echo "$report"
  cat <<'NOTES'

Notes on method:
- Size: `workers/*.mjs` are the same minimal Worker (per-IP sliding window,
  rate-limit headers) written for each library, bundled by esbuild with the
  flags above; the `.wasm` the bundle imports stays a separate module, as
  wrangler uploads it, and is counted beside the JS. @upstash/ratelimit needs
  Redis, so the like-for-like edgelimit Worker is the Redis REST one.
- Start-up: each sample is a new `node` process; compile + instantiate is
  timed around `new WebAssembly.Module(bytes)` and the glue's `initSync`,
  the import around `await import(...)` of the library's Node entry
  (edgelimit's compiles and instantiates the wasm during that import).
- Decisions: one closed loop per fresh process, each call awaited when the
  API is async; edgelimit with its default memory store. limiter has no
  keys, so one `TokenBucket`/`RateLimiter` per key in a `Map`, the usual way
  to use it per client. rate-limiter-flexible's `RateLimiterMemory` is a
  fixed window; its denials reject (with a `RateLimiterRes`, not an Error).
- Every edgelimit decision crosses into WebAssembly once: the id is
  UTF-8-encoded into the module's memory, the core hashes it, finds the key
  and runs the algorithm in 64-bit integers, and the result comes back
  through shared slots into a fresh result object. The pure-JS peers do a
  `Map` lookup and a few float operations that V8 inlines into the loop, so
  much of the difference to them is that fixed per-call cost rather than
  the algorithms.
NOTES
} >RESULTS.md
echo "wrote bench/pkg/RESULTS.md" >&2

if [ "$status" -eq 3 ]; then
  echo "bench-pkg: FAILED: the Worker bundle is above the size ceiling (see above)" >&2
  exit 1
fi
