#!/usr/bin/env bash
# Runs the example Worker in workerd, bundled by wrangler as it is deployed.
#   run.sh demo   a burst of requests against the in-memory store (make demo)
#   run.sh test   node --test against the memory and Redis stores (make test-worker)
# Needs pkg/ (make pkg); installs the pinned wrangler and workerd itself.
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:?usage: run.sh demo|test}

if [[ ! -f ../pkg/package.json ]]; then
  echo "pkg/ is missing: build the package first (make pkg)" >&2
  exit 1
fi

# shellcheck source=../tools/lib.sh
source ../tools/lib.sh
npm_deps ci . "wrangler, workerd"

case "$mode" in
  demo) exec node demo.mjs ;;
  test)
    # One bundle for every test file.
    bundle=$(mktemp -d)
    trap 'rm -rf "$bundle"' EXIT
    node lib/bundle.mjs "$bundle"
    WORKER_BUNDLE=$bundle node --test --test-reporter=spec test/*.test.mjs
    ;;
  *) echo "usage: run.sh demo|test" >&2; exit 2 ;;
esac
