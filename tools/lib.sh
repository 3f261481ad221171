# Shared by the project's scripts: source it. It only defines functions.

# npm_deps MODE [DIR] [LABEL]: installs the pinned npm packages of DIR (default:
# the current directory) when its node_modules is missing or older than its
# lockfile, and does nothing otherwise (offline after the first time). The
# sentinel is node_modules/.package-lock.json, which every npm install writes.
# MODE is `ci` (exactly the lockfile, which must list every platform's
# packages) or `install` (for a lockfile made here that lacks other
# platforms' optional packages, which `npm ci` rejects: `npm install` still
# installs exactly the locked versions and leaves the lockfile alone). With a
# LABEL, prints how long the install took as "npm MODE (LABEL): N ms".
npm_deps() {
  local mode=$1 dir=${2:-.} label=${3:-} t0
  case "$mode" in
    ci | install) ;;
    *) echo "npm_deps: mode must be ci or install, not '$mode'" >&2; return 2 ;;
  esac
  if [[ -f "$dir/node_modules/.package-lock.json" &&
    ! "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
    return 0
  fi
  t0=${EPOCHREALTIME/./}
  # npm may rewrite the lockfile it installed from (dropping other
  # platforms' entries): the tracked file is put back as it was, so a build
  # never changes the repository.
  local kept
  kept=$(mktemp)
  cp -p "$dir/package-lock.json" "$kept"
  (cd "$dir" && npm "$mode" --no-audit --no-fund --loglevel=error)
  cmp -s "$kept" "$dir/package-lock.json" || cp -p "$kept" "$dir/package-lock.json"
  rm -f "$kept"
  touch "$dir/node_modules/.package-lock.json"
  if [[ -n "$label" ]]; then
    echo "npm $mode ($label): $(((${EPOCHREALTIME/./} - t0) / 1000)) ms"
  fi
}

# apt_install COMMAND=PACKAGE...: when any COMMAND is not on PATH, installs
# every PACKAGE named, together (as root, or through sudo). Idempotent: does
# nothing when every command is there.
apt_install() {
  local missing="" pair sudo=""
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing=1
  done
  [ -n "$missing" ] || return 0
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  local packages
  mapfile -t packages < <(printf '%s\n' "${@#*=}" | sort -u)
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
}

# The wasm32 target of the pinned toolchain (quiet when already there).
ensure_wasm_target() {
  rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown
}

# The toolchain that builds the npm package's WebAssembly module: a pinned
# nightly, since only nightly rebuilds the standard library (rust-src) with
# the module's own size settings and panic=immediate-abort. A panic then
# traps without formatting a message, so the panic machinery and most of
# core::fmt stay out of the module: 4.5 KB gzip smaller than with the
# prebuilt standard library of stable (bench/pkg/wasm-breakdown.sh). Nothing
# in the module panics by design; a bug traps either way.
WASM_TOOLCHAIN=nightly-2026-05-20

# build_wasm_module: target/wasm32-unknown-unknown/wasm/edgelimit.wasm, as
# the `wasm` profile says; installs the toolchain above once (about 15 s).
build_wasm_module() {
  if ! rustup component list --toolchain "$WASM_TOOLCHAIN" --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup toolchain install "$WASM_TOOLCHAIN" --profile minimal --component rust-src >&2
  fi
  RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort" \
    cargo "+$WASM_TOOLCHAIN" rustc --quiet --lib --profile wasm \
    --target wasm32-unknown-unknown --crate-type cdylib -Zbuild-std=std,panic_abort
}

# free_port [OFFSET]: a loopback port nothing listens on (and, with an
# argument, whose port + OFFSET is free too: a Redis Cluster node's bus port).
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

# wait_port PORT: waits until something listens on 127.0.0.1:PORT (10 s).
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listening on port $1" >&2
  exit 1
}
