#!/usr/bin/env bash
# Installs the pinned build tools of tools/js (binaryen, esbuild, deno, biome...)
# when node_modules is missing or older than the lockfile; offline after that.
# `npm install` rather than `npm ci`: the registry reachable here serves only
# deno's linux-x64 binary package, so the lockfile cannot list the other
# platforms' and `npm ci` rejects it; `npm install` still installs exactly the
# locked versions and integrity hashes, and leaves the lockfile as it is.
set -euo pipefail
cd "$(dirname "$0")"
source ./lib.sh
npm_deps install js
