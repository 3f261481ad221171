#!/usr/bin/env bash
# Installs webdis (a C HTTP->Redis gateway used as a benchmark peer) when
# missing. Idempotent.
set -euo pipefail

if ! command -v webdis >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq webdis >/dev/null
fi
command -v webdis
