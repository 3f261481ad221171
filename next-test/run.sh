#!/usr/bin/env bash
# The package in a Next.js app (next.test.mjs): installs the pinned next,
# react and react-dom (only when the lockfile changed), puts the
# built package (pkg/) in node_modules/edgelimit, then builds and serves.
set -euo pipefail
cd "$(dirname "$0")"
start=$SECONDS
if [[ ! -f ../pkg/edge-light.js ]]; then
  echo "test-next: pkg/ is not built; run make pkg" >&2
  exit 1
fi
# `npm install`, not `npm ci`: the lockfile made here lacks optional
# packages for other platforms, which `npm ci` rejects; this still
# installs exactly the locked versions and leaves the lockfile alone.
# shellcheck source=../tools/lib.sh
source ../tools/lib.sh
npm_deps install
rm -rf node_modules/edgelimit
cp -r ../pkg node_modules/edgelimit
node --test next.test.mjs
echo "test-next: passed in $((SECONDS - start)) s"
