#!/usr/bin/env bash
# Lints and format-checks the repository's JavaScript and TypeScript with the
# pinned Biome (tools/js/package.json), as configured by biome.json at the
# root: `biome ci` changes nothing and fails on any finding or unformatted
# file. To apply the formatter and the safe fixes to some paths:
#   tools/js/node_modules/.bin/biome check --write PATH...
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/lib.sh
# `npm install`: the lockfile of tools/js lacks other platforms' binary
# packages (see tools/ensure-tools-js.sh).
npm_deps install tools/js
tools/js/node_modules/.bin/biome ci --colors=off \
  js tools/js worker-example browser-test next-test gateway/tests/node bench pkg-template
