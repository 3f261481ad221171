#!/usr/bin/env bash
# Installs redis-server (and redis-cli / redis-benchmark, same Debian package
# family) when missing. Idempotent: does nothing when they are already there.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

apt_install redis-server=redis-server redis-cli=redis-tools redis-benchmark=redis-tools

# Debian's package starts a system instance on 6379; the tests never use it
# (they start their own on free ports), so it is left as the package set it.
redis-server --version
