#!/usr/bin/env bash
# Runs tests/wasm/ (the WebAssembly bindings called as the JS side calls
# them) with the pinned wasm-bindgen-test-runner: under Node, then in
# headless Chromium. Both runs must pass the same, non-zero number of tests:
# a runner that finds no tests (a browser run without WASM_BINDGEN_USE_BROWSER
# reports "0 passed") would otherwise look green.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

source tools/lib.sh
ensure_wasm_target
# The runner must be the wasm-bindgen version the crate links; it is
# installed next to the pinned wasm-bindgen CLI.
wasm_bindgen=$(bash tools/ensure-wasm-bindgen.sh)
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="${wasm_bindgen%/*}/wasm-bindgen-test-runner"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Runs the suite under `label` with the given environment changes; prints
# how many tests passed.
passed() {
  local label=$1
  shift
  echo "== tests/wasm in $label" >&2
  env "$@" "${CARGO:-cargo}" test --target wasm32-unknown-unknown --test wasm >"$log" 2>&1 || {
    cat "$log" >&2
    return 1
  }
  grep -E '^test |^test result:|^Running headless' "$log" >&2
  sed -nE 's/^test result: ok\. ([0-9]+) passed.*/\1/p' "$log"
}

# Unset, not empty: the runner picks the browser when the variable exists.
node_count=$(passed Node -u WASM_BINDGEN_USE_BROWSER)
node_secs=$((SECONDS - start))
# The capabilities file adds the flags Chromium needs on a closed network
# (no background connections, no component updates); chromedriver gives
# each session a fresh profile.
browser_count=$(passed Chromium WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER=/usr/bin/chromedriver \
  WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/browser-test/webdriver.json")

if [[ -z "$node_count" || "$node_count" -eq 0 || "$browser_count" != "$node_count" ]]; then
  echo "test-wasm: Node passed ${node_count:-none}, Chromium passed ${browser_count:-none}" >&2
  exit 1
fi
echo "test-wasm: $node_count tests passed under Node and in Chromium ($node_secs s, $((SECONDS - start)) s in all)"
