#!/usr/bin/env bash
# The built package (pkg/) in headless Chromium: installs the pinned
# playwright-core (only when the lockfile changed), then runs
# browser.test.mjs, which serves page.html and pkg/ on 127.0.0.1 and drives
# Debian's Chromium (tools/ensure-chromium.sh installs it).
set -euo pipefail
cd "$(dirname "$0")"
start=$SECONDS

if [[ ! -f ../pkg/browser.js ]]; then
  echo "test-browser: pkg/ is not built; run make pkg" >&2
  exit 1
fi
# `npm install`, not `npm ci`: the lockfile made here lacks optional
# packages for other platforms, which `npm ci` rejects; this still
# installs exactly the locked versions and leaves the lockfile alone.
# shellcheck source=../tools/lib.sh
source ../tools/lib.sh
npm_deps install
node --test browser.test.mjs bundlers.test.mjs
echo "test-browser: passed in $((SECONDS - start)) s"
