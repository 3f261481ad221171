#!/usr/bin/env bash
# Installs redis-server (and redis-cli / redis-benchmark, same Debian package
# family) when missing. Idempotent: does nothing when they are already there.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)

if [ "${#need[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Debian's package starts a system instance on 6379; the tests never use it
# (they start their own on free ports), so it is left as the package set it.
redis-server --version
